"""Fixtures: a fresh app, database and content per test, plus factories for the domain."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app
from app.content import load_reference
from app.extensions import db
from app.models import Municipality, Role, User
from app.services import accounts
from app.services import questions as question_service
from config import TestingConfig

PASSWORD = "correct-horse-battery"
_counter = itertools.count(1)


class IsolatedClient(FlaskClient):
    """Every request gets its own application context (its own ``g`` and database session), as
    on a real server; the test's own session then sees what the request committed."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()
        return response


@pytest.fixture
def app(tmp_path: Path):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'test.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "index")

    app = create_app(Config)
    app.test_client_class = IsolatedClient
    with app.app_context():
        db.create_all()
        load_reference(Path(app.config["CONTENT_DIR"]))
        db.session.commit()
        yield app
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture(scope="session")
def postgres_base_url():
    """A PostgreSQL server for the tests that run on both databases: ``TEST_POSTGRES_URL``, or a
    throwaway cluster of the machine's PostgreSQL (skipped when there is neither)."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        yield url
        return
    from tests.pg_cluster import server_bin_dir, throwaway_cluster

    if server_bin_dir() is None:
        pytest.skip("no PostgreSQL here: set TEST_POSTGRES_URL or install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed")
    with throwaway_cluster() as base:
        yield base


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def municipality(name: str) -> Municipality:
    return db.session.scalar(select(Municipality).where(Municipality.name == name))


@pytest.fixture
def make_user(app):
    def factory(role: str | Role = Role.MUNICIPAL, municipality: str | Municipality | None = "呉市",
                username: str | None = None, password: str = PASSWORD) -> User:
        role = Role(role)
        target = municipality
        if isinstance(municipality, str):
            target = globals()["municipality"](municipality)
        if role not in (Role.MUNICIPAL, Role.VIEWER):
            target = None
        user = accounts.create_user(username or f"{role.value}{next(_counter)}", password, role.value, target)
        db.session.commit()
        return user

    return factory


@pytest.fixture
def make_question(app):
    def factory(asker: User, **fields) -> object:
        data = {"title": "VPN がつながらない", "body": "テレワーク用の VPN に接続できません。", "category": "network"}
        data.update(fields)
        question = question_service.ask_question(asker, data)
        db.session.commit()
        return question

    return factory


@pytest.fixture
def token_for(app):
    def factory(user: User) -> dict[str, str]:
        token = accounts.create_token(user)
        db.session.commit()
        return {"Authorization": f"Bearer {token}"}

    return factory


@pytest.fixture
def login(client):
    def do_login(user: User, password: str = PASSWORD):
        client.post("/logout")
        response = client.post("/login", data={"username": user.username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return do_login

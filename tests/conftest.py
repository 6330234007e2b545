"""Fixtures: a fresh app, database and content per test, plus factories for the domain."""
from __future__ import annotations

import itertools
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select

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


# `make test-pg`: every test on PostgreSQL (TEST_DATABASE_URL, or a throwaway cluster).
ON_POSTGRES = os.environ.get("HELPDESK_TEST_DATABASE") == "postgres"


def _testing_config(database_uri: str, tmp_path: Path) -> type[TestingConfig]:
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = database_uri
        SEARCH_INDEX_DIR = str(tmp_path / "index")
        ATTACHMENT_DIR = str(tmp_path / "attachments")

    return Config


@contextmanager
def recorded_statements():
    """The SQL statements the database is sent inside the block (``with recorded_statements() as s``)."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _many):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def _build_template(database_uri: str, folder: Path) -> None:
    """The schema and the reference data in ``database_uri``: what every test's database starts from."""
    template_app = create_app(_testing_config(database_uri, folder))
    with template_app.app_context():
        db.create_all()
        load_reference(Path(template_app.config["CONTENT_DIR"]))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory):
    """PostgreSQL mode: one database with the schema and the reference data, copied for each test
    (``CREATE DATABASE ... TEMPLATE``, much faster than creating the tables every time)."""
    if not ON_POSTGRES:
        yield None
        return
    from tests.pg_cluster import database_url, server_bin_dir, throwaway_cluster

    base = os.environ.get("TEST_DATABASE_URL") or os.environ.get("TEST_POSTGRES_URL")
    cluster = None
    if not base:
        if server_bin_dir() is None:
            pytest.exit("make test-pg: no TEST_DATABASE_URL and no PostgreSQL server here", returncode=2)
        cluster = throwaway_cluster()
        base = cluster.__enter__()
    from sqlalchemy import create_engine

    name = f"helpdesk_tmpl_{os.getpid()}"
    from sqlalchemy.pool import NullPool

    # A new connection each time: tests/test_faults.py restarts the server, which ends pooled ones.
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    _build_template(database_url(base, name), tmp_path_factory.mktemp("template"))
    try:
        yield {"base": base, "template": name, "admin": admin}
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
        if cluster is not None:
            cluster.__exit__(None, None, None)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory, postgres_template) -> Path | None:
    """SQLite mode: one database file with the schema and the reference data, copied for each test
    (creating the tables and loading the reference data took most of a short test's time)."""
    if postgres_template is not None:
        return None
    folder = tmp_path_factory.mktemp("sqlite-template")
    _build_template(f"sqlite:///{folder / 'template.db'}", folder)
    return folder / "template.db"


@pytest.fixture
def app(tmp_path: Path, postgres_template, sqlite_template):
    if postgres_template is None:
        shutil.copyfile(sqlite_template, tmp_path / "test.db")
        app = create_app(_testing_config(f"sqlite:///{tmp_path / 'test.db'}", tmp_path))
        app.test_client_class = IsolatedClient
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()
        return
    from tests.pg_cluster import database_url

    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = postgres_template["admin"]
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {postgres_template['template']}")
    app = create_app(_testing_config(database_url(postgres_template["base"], name), tmp_path))
    app.test_client_class = IsolatedClient
    try:
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_base_url(postgres_template):
    """A PostgreSQL server for the tests that run on both databases: ``TEST_POSTGRES_URL``, or a
    throwaway cluster of the machine's PostgreSQL (skipped when there is neither)."""
    if postgres_template is not None:
        yield postgres_template["base"]
        return
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

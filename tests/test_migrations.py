"""Migrations build exactly the schema the models describe, on SQLite and (if here) PostgreSQL."""
from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect

from app import create_app
from app.extensions import db
from config import TestingConfig


def migrated_app(uri: str):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = uri

    return create_app(Config)


def assert_schema_matches_models(app):
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
        assert diff == []
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        db.engine.dispose()


def test_sqlite_upgrade_matches_models_and_downgrades(tmp_path):
    assert_schema_matches_models(migrated_app(f"sqlite:///{tmp_path / 'm.db'}"))


def _postgres_url() -> str | None:
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        return url
    return None


@pytest.mark.skipif(_postgres_url() is None, reason="set TEST_POSTGRES_URL to run migrations on PostgreSQL")
def test_postgres_upgrade_matches_models_and_downgrades():
    base = _postgres_url()
    name = f"helpdesk_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        assert_schema_matches_models(migrated_app(base.rsplit("/", 1)[0] + f"/{name}"))
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()

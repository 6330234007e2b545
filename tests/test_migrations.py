"""Migrations build exactly the schema the models describe, on SQLite and (if here) PostgreSQL."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

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


def test_postgres_upgrade_matches_models_and_downgrades(postgres_base_url):
    from tests.pg_cluster import fresh_database

    with fresh_database(postgres_base_url) as url:
        app = migrated_app(url)
        assert_schema_matches_models(app)

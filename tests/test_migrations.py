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



def test_postgres_index_migrations_finish_a_run_that_stopped_half_way(postgres_base_url):
    """0013 and 0014 build their indexes CONCURRENTLY, outside a transaction: a run that stopped
    after some statements (the old index dropped, or the new one left INVALID by a failed build)
    is finished by the next run instead of failing."""
    from sqlalchemy import text

    from tests.pg_cluster import fresh_database

    with fresh_database(postgres_base_url) as url:
        app = migrated_app(url)
        with app.app_context():
            if not db.session.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
                pytest.skip("marking an index invalid (pg_index) needs a superuser (the throwaway cluster's)")
            db.session.rollback()
            upgrade(revision="0012_articles")
            with db.engine.begin() as connection:   # 0013 half done: new index made, old one dropped
                connection.execute(text("CREATE INDEX ix_cases_kind_state ON cases (kind, state)"))
                connection.execute(text("DROP INDEX ix_cases_kind"))
            upgrade(revision="0013_cases_kind_state_index")
            with db.engine.begin() as connection:   # 0014's build failed: an INVALID index is left
                connection.execute(text("CREATE INDEX ix_cases_state_scope ON cases (state)"))
                connection.execute(text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
                                        "'ix_cases_state_scope'::regclass"))
            upgrade()
            with db.engine.connect() as connection:
                valid = connection.execute(text(
                    "SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'ix_cases_%'")).all()
                diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
            assert diff == []
            assert all(row.indisvalid for row in valid), valid
            scope = next(row for row in valid if row.relname == "ix_cases_state_scope")
            assert "INCLUDE" in scope.pg_get_indexdef and "sharing_consent" in scope.pg_get_indexdef
            db.engine.dispose()

def test_existing_threads_survive_the_upgrade_to_statuses_that_say_whose_move_it_is(tmp_path):
    """0006: open -> new, answered -> in_progress, the first help-desk reply becomes the first response."""
    from sqlalchemy import text

    app = migrated_app(f"sqlite:///{tmp_path / 'old.db'}")
    with app.app_context():
        upgrade(revision="0005")
        connection = db.engine.connect()
        connection.execute(text("INSERT INTO categories (id, slug, name, sort_order) VALUES (1, 'network', 'ネットワーク', 1)"))
        connection.execute(text("INSERT INTO municipalities (id, code, name, kind, prefecture, is_observer, roman_names) "
                                "VALUES (1, '342025', '呉市', '市', '広島県', 0, 'kure')"))
        for user_id, role in ((1, "municipal"), (2, "helpdesk")):
            connection.execute(text("INSERT INTO users (id, username, display_name, password_hash, role, municipality_id, "
                                    "is_enabled, created_at, session_token) VALUES (:id, :name, '', 'x', :role, :m, 1, "
                                    "'2026-01-01 00:00:00', 't')"),
                               {"id": user_id, "name": f"u{user_id}", "role": role, "m": 1 if role == "municipal" else None})
        for qid, status in ((1, "open"), (2, "answered"), (3, "resolved")):
            connection.execute(text("INSERT INTO questions (id, title, body, category_id, asker_id, municipality_id, status, "
                                    "sharing_consent, created_at, updated_at) VALUES (:id, 't', 'b', 1, 1, 1, :s, 'private', "
                                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"), {"id": qid, "s": status})
        connection.execute(text("INSERT INTO answers (id, question_id, author_id, body, created_at) "
                                "VALUES (1, 2, 2, 'a', '2026-01-01 03:00:00')"))
        connection.commit()
        connection.close()
        upgrade()
        rows = db.session.execute(text("SELECT id, status, first_response_at, priority, kind FROM questions ORDER BY id")).all()
        assert [(r.id, r.status) for r in rows] == [(1, "new"), (2, "in_progress"), (3, "resolved")]
        assert rows[0].first_response_at is None and str(rows[1].first_response_at).startswith("2026-01-01 03:00")
        assert {(r.priority, r.kind) for r in rows} == {("normal", "question")}
        db.session.remove()
        db.engine.dispose()


def test_comments_made_by_earlier_merges_learn_their_merged_question_on_upgrade(tmp_path):
    """0015: a merge's comment names the question it came from; comments made before are found by
    the marker the merge wrote, with the merged question's author (a look-alike is not)."""
    from pathlib import Path

    from sqlalchemy import select, text

    from app.content import load_reference
    from app.models import Comment, Municipality
    from app.services import accounts
    from app.services import questions as question_service

    app = migrated_app(f"sqlite:///{tmp_path / 'old.db'}")
    with app.app_context():
        upgrade()
        load_reference(Path(app.config["CONTENT_DIR"]))
        kure = db.session.scalar(select(Municipality).where(Municipality.name == "呉市"))
        staff = accounts.create_user("kure", "correct-horse-battery", "municipal", kure)
        other = accounts.create_user("kure2", "correct-horse-battery", "municipal", kure)
        desk = accounts.create_user("desk", "correct-horse-battery", "helpdesk", None)
        ask = {"body": "パスワード Zx9!secret", "category": "network"}
        source = question_service.ask_question(staff, {**ask, "title": "統合元"})
        target = question_service.ask_question(staff, {**ask, "title": "統合先"})
        question_service.merge_into(desk, source, target.id)
        source_id = source.id
        question_service.post_comment(other, target, {"body": f"（統合された相談 #{source_id}「統合元」）\n\nまねただけ"})
        db.session.commit()
        db.session.execute(text("UPDATE comments SET merged_from_id = NULL"))   # as before 0015
        db.session.commit()
        db.session.remove()
        downgrade(revision="0014_cases_state_scope_index")
        upgrade()
        rows = {c.author.username: c.merged_from_id for c in db.session.scalars(select(Comment))}
        assert rows == {"kure": source_id, "kure2": None}
        db.session.remove()
        db.engine.dispose()

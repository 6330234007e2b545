"""Several servers on one database, each with its own index directory: work queued through one
server reaches every server's index (SQLite and PostgreSQL). Before, queued work was marked applied
once for everybody, so a case imported through server A stayed missing from server B's index."""
from __future__ import annotations

import threading
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app
from app.content import load_reference
from app.extensions import db
from app.models import Case, CaseState, Category, Municipality, SearchConsumer, SearchOutbox
from app.search import sync
from app.search.index import SearchIndex
from config import TestingConfig


@pytest.fixture(params=["sqlite", "postgres"])
def two_servers(request, tmp_path: Path):
    """Two apps (servers A and B) on one database, each with its own index directory."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            uri = f"sqlite:///{tmp_path / 'shared.db'}"
        else:
            from tests.pg_cluster import fresh_database

            uri = stack.enter_context(fresh_database(request.getfixturevalue("postgres_base_url")))
        apps = []
        for name in ("a", "b"):
            class Config(TestingConfig):
                SQLALCHEMY_DATABASE_URI = uri
                SEARCH_INDEX_DIR = str(tmp_path / f"index-{name}")
            apps.append(create_app(Config))
        with apps[0].app_context():
            db.create_all()
            load_reference(Path(apps[0].config["CONTENT_DIR"]))
            db.session.commit()
        for app in apps:
            with app.app_context():
                sync.reindex()
        yield apps
        for app in apps:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        with apps[0].app_context():
            db.drop_all()
            db.engine.dispose()


def add_cases(titles: list[str]) -> list[int]:
    network = db.session.scalar(select(Category).where(Category.slug == "network"))
    kure = db.session.scalar(select(Municipality).where(Municipality.name == "呉市"))
    cases = []
    for title in titles:
        case = Case(title=title, issue="症状", resolution="対応", category=network, municipality=kure,
                    state=CaseState.PUBLISHED.value, visibility="all", sharing_consent="all")
        db.session.add(case)
        db.session.flush()
        sync.queue_case(case)
        cases.append(case)
    db.session.commit()
    return [c.id for c in cases]


def test_a_case_written_through_server_a_reaches_server_b(two_servers):
    server_a, server_b = two_servers
    with server_a.app_context():
        (case_id,) = add_cases(["サーバーAから登録した事例"])
        assert sync.apply_pending() == 1
        assert sync.check().ok
    with server_b.app_context():
        report = sync.check()
        assert report.missing == [case_id] and report.pending == 1
        runner = server_b.test_cli_runner()
        result = runner.invoke(args=["search", "sync"])
        assert "1 件" in result.output, result.output
        assert sync.check().ok and sync.check().pending == 0
    with server_a.app_context():   # A is not asked to apply it again
        assert sync.pending_count() == 0
        names = db.session.scalars(select(SearchConsumer.name)).all()
        assert len(names) == 2


def test_a_search_on_server_b_applies_what_server_a_queued(two_servers):
    server_a, server_b = two_servers
    with server_a.app_context():
        add_cases(["ファイアウォールの更新手順"])
        sync.apply_pending()
    with server_b.app_context():
        from app.search.service import SearchParams, search_cases
        from app.services import accounts

        desk = accounts.create_user("desk-b", "server-password-1", "helpdesk")
        db.session.commit()
        # older than the grace period in which a search leaves the work to the request that queued it
        db.session.execute(SearchOutbox.__table__.update().values(created_at=sync.utcnow() - timedelta(seconds=10)))
        db.session.commit()
        hits = search_cases(desk, SearchParams(q="ファイアウォール"), log_misses=False).hits
        assert [h.case.title for h in hits] == ["ファイアウォールの更新手順"]


def test_rebuilding_one_servers_index_leaves_the_others_position_alone(two_servers):
    server_a, server_b = two_servers
    with server_a.app_context():
        add_cases([f"事例 {n}" for n in range(5)])
        sync.apply_pending()
    with server_b.app_context():
        sync.reindex()                 # B rebuilds from the database: everything is in it
        assert sync.check().ok and sync.pending_count() == 0
        add_cases(["Bで登録した事例"])
        sync.apply_pending()
    with server_a.app_context():
        assert sync.pending_count() == 1
        sync.apply_pending()
        assert sync.check().ok


def test_changes_while_an_index_is_rebuilt_are_not_lost(two_servers):
    """Writes through A go on while B rebuilds; afterwards B has them all."""
    server_a, server_b = two_servers
    with server_a.app_context():
        add_cases([f"既存の事例 {n}" for n in range(200)])
    stop = threading.Event()
    written = []

    def writer():
        with server_a.app_context():
            n = 0
            while not stop.is_set():
                written.extend(add_cases([f"再構築中の事例 {n}"]))
                n += 1
            db.session.remove()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with server_b.app_context():
            sync.reindex(batch=20)
    finally:
        stop.set()
        thread.join()
    assert written
    with server_b.app_context():
        sync.apply_pending()
        report = sync.check()
        assert report.ok, (report.missing[:5], report.stale[:5])


def test_old_work_is_removed_only_after_every_live_index_passed_it(two_servers):
    server_a, server_b = two_servers
    with server_a.app_context():
        add_cases(["古い作業"])
        sync.apply_pending()
        db.session.execute(SearchOutbox.__table__.update().values(created_at=sync.utcnow() - sync.RETENTION * 2))
        db.session.commit()
        sync._forget_old_work()
        assert db.session.scalar(select(func.count()).select_from(SearchOutbox)) == 1   # B has not applied it
    with server_b.app_context():
        sync.apply_pending()
        assert db.session.scalar(select(func.count()).select_from(SearchOutbox)) == 0


def test_each_index_directory_keeps_its_own_name(tmp_path):
    first = SearchIndex(tmp_path / "one")
    second = SearchIndex(tmp_path / "two")
    assert sync.consumer_name(first) == sync.consumer_name(SearchIndex(tmp_path / "one"))
    assert sync.consumer_name(first) != sync.consumer_name(second)

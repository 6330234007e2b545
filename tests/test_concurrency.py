"""Two requests at once on the same case, on SQLite and on PostgreSQL: every read-decide-write is
atomic, so the invariant visibility <= consent holds in every committed state."""
from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from app import create_app
from app.content import load_reference
from app.extensions import db
from app.models import Case, CaseState, Category, Municipality, Visibility
from app.services import accounts
from config import TestingConfig
from tests.conftest import IsolatedClient

PAIRS = 20


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_app(request, tmp_path: Path):
    with ExitStack() as stack:
        if request.param == "sqlite":
            uri = f"sqlite:///{tmp_path / 'race.db'}"
        else:
            from tests.pg_cluster import fresh_database

            uri = stack.enter_context(fresh_database(request.getfixturevalue("postgres_base_url")))

        class Config(TestingConfig):
            SQLALCHEMY_DATABASE_URI = uri
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


def _people(app):
    kure = db.session.scalar(select(Municipality).where(Municipality.name == "呉市"))
    staff = accounts.create_user("kure-staff", "race-password-1", "municipal", kure)
    desk = accounts.create_user("desk", "race-password-1", "helpdesk")
    db.session.commit()
    tokens = {name: {"Authorization": f"Bearer {accounts.create_token(user)}"} for name, user in
              (("staff", staff), ("desk", desk))}
    db.session.commit()
    return kure, tokens


def _draft(kure, n: int, consent: str = "all") -> int:
    network = db.session.scalar(select(Category).where(Category.slug == "network"))
    case = Case(title=f"同時操作の事例 {n}", issue="症状", resolution="対応", category=network,
                municipality=kure, state=CaseState.DRAFT.value, sharing_consent=consent)
    db.session.add(case)
    db.session.commit()
    return case.id


def _at_once(app, *requests):
    """Run each (method, url, json, headers) from its own thread, released together."""
    barrier = threading.Barrier(len(requests))
    statuses: list[int | None] = [None] * len(requests)

    def run(index, method, url, body, headers):
        client = app.test_client()
        with app.app_context():
            barrier.wait()
            statuses[index] = client.open(url, method=method, json=body, headers=headers).status_code

    threads = [threading.Thread(target=run, args=(i, *r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def _state(case_id: int) -> Case:
    db.session.expire_all()
    return db.session.get(Case, case_id)


def test_publishing_wide_while_the_owner_narrows_consent_never_shares_beyond_consent(any_db_app):
    kure, tokens = _people(any_db_app)
    outcomes = set()
    for n in range(PAIRS):
        case_id = _draft(kure, n)
        publish, narrow = _at_once(
            any_db_app,
            ("POST", f"/api/v1/cases/{case_id}/publish", {"visibility": "all"}, tokens["desk"]),
            ("POST", f"/api/v1/cases/{case_id}/consent", {"visibility": "private"}, tokens["staff"]),
        )
        case = _state(case_id)
        assert {publish, narrow} <= {200, 409}, (publish, narrow)
        assert narrow == 200  # narrowing consent always succeeds: it narrows a published case too
        assert case.sharing_consent == "private"
        assert Visibility(case.visibility).width <= Visibility(case.sharing_consent).width, (n, publish, narrow)
        if publish == 200:
            assert case.state == "published" and case.visibility == "private"
        else:
            assert case.state == "draft"
        outcomes.add(publish)
    assert outcomes  # each pair ended in one of the two serial orders


def test_changing_visibility_while_the_owner_narrows_consent_keeps_the_invariant(any_db_app):
    kure, tokens = _people(any_db_app)
    for n in range(PAIRS):
        case_id = _draft(kure, n)
        client = any_db_app.test_client()
        assert client.post(f"/api/v1/cases/{case_id}/publish", json={"visibility": "private"},
                           headers=tokens["desk"]).status_code == 200
        widen, narrow = _at_once(
            any_db_app,
            ("POST", f"/api/v1/cases/{case_id}/consent", {"visibility": "neighbours"}, tokens["staff"]),
            ("PATCH", f"/api/v1/cases/{case_id}", {"title": f"同時操作の事例 {n}（改）"}, tokens["desk"]),
        )
        assert {widen, narrow} == {200}
        case = _state(case_id)
        assert case.sharing_consent == "neighbours" and case.title.endswith("（改）")


def test_archiving_while_the_owner_changes_consent_ends_in_a_serial_order(any_db_app):
    kure, tokens = _people(any_db_app)
    for n in range(PAIRS // 2):
        case_id = _draft(kure, n)
        archive, consent = _at_once(
            any_db_app,
            ("POST", f"/api/v1/cases/{case_id}/archive", None, tokens["desk"]),
            ("POST", f"/api/v1/cases/{case_id}/consent", {"visibility": "neighbours"}, tokens["staff"]),
        )
        case = _state(case_id)
        assert archive == 200 and case.state == "archived"
        # Either the consent came first (200), or it found the case archived: already gone for the
        # municipality (404) or archived while it waited for the lock (409); nothing changed then.
        assert (consent, case.sharing_consent) in ((200, "neighbours"), (409, "all"), (404, "all"))


def test_two_digest_runs_at_once_never_put_a_notification_in_two_mails(any_db_app):
    """Two servers' morning timers fire together: each digest notification goes out once."""
    from app.models import MailOutbox, Notification
    from app.services import notifications

    kure, _tokens = _people(any_db_app)
    readers = []
    for n in range(6):
        reader = accounts.create_user(f"reader{n}", "race-password-1", "municipal", kure)
        reader.email = f"reader{n}@example.lg.jp"
        readers.append(reader)
    db.session.commit()
    for reader in readers:
        notifications.set_channels(reader, {"case_published": "digest"})
        for _ in range(3):
            db.session.add(Notification(user_id=reader.id, kind="case_published", case_id=_draft(kure, reader.id)))
    db.session.commit()
    barrier = threading.Barrier(2)
    queued = [0, 0]

    def run(index):
        with any_db_app.app_context():
            barrier.wait()
            queued[index] = notifications.queue_digests()
            db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.session.expire_all()
    mailed = [nid for (ids,) in db.session.execute(select(MailOutbox.digest_ids)) for nid in ids.split(",")]
    assert len(mailed) == len(set(mailed)) == 18
    assert sum(queued) == len(db.session.scalars(select(MailOutbox)).all())

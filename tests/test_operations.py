"""Running the app in production: health check, structured logs, secret key file, backup and restore."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app
from app.backup import BackupError, backup, restore, verify
from app.content import load_reference
from app.extensions import db
from app.models import Answer, Attachment, Question, SearchOutbox, utcnow
from app.search import sync
from app.services import cases as case_service
from app.services import questions as question_service
from config import TestingConfig
from tests.conftest import PASSWORD, recorded_statements


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


# --- /healthz -----------------------------------------------------------------------------------

def test_health_reports_every_part_to_the_local_monitor(client, app):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert set(body) >= {"database", "search", "attachments", "mail"}
    assert body["database"]["ok"] and body["database"]["backend"] in ("sqlite", "postgresql")
    assert body["search"]["generation"] and body["search"]["pending"] == 0
    assert body["mail"]["pending"] == 0
    assert response.headers["Cache-Control"] == "no-store"


def test_health_from_elsewhere_says_only_ok_or_not(client):
    response = client.get("/healthz", environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def _published_case(make_user, make_question, title="VPN がつながらない"):
    asker, desk = make_user("municipal", "呉市"), make_user("helpdesk")
    question = make_question(asker, title=title, sharing_consent="all")
    answer = question_service.post_answer(desk, question, {"body": "回答"})
    db.session.commit()
    case = question_service.resolve_question(desk, question, answer.id)
    case_service.publish_case(desk, case, "all")
    db.session.commit()
    return asker, desk, case


def test_a_deleted_index_is_reported_searches_say_so_writes_go_on_and_reindex_restores(
        client, app, login, make_user, make_question, token_for):
    import shutil

    asker, desk, case = _published_case(make_user, make_question)
    sync.apply_pending()
    db.session.execute(SearchOutbox.__table__.delete())   # the old work was forgotten long ago
    db.session.commit()
    shutil.rmtree(sync.current_index().root)               # an operator's mistake, a disk fault

    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy" and not body["search"]["ok"] and body["database"]["ok"]
    assert "reindex" in body["search"]["problem"]

    login(asker)
    page = client.get("/search?q=VPN")
    assert page.status_code == 200 and "検索索引が見つからない" in page.get_data(as_text=True)
    api = client.get("/api/v1/cases?q=VPN", headers=token_for(asker))
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "search_unavailable"
    assert client.get(f"/cases/{case.id}").status_code == 200   # the case itself still reads

    _, _, second = _published_case(make_user, make_question, title="プリンタが動かない")   # writes succeed
    assert sync.pending_count() >= 1                                        # and stay queued
    assert not sync.check().ok

    report = sync.reindex()
    assert report.documents == 2
    assert sync.check().ok
    assert client.get("/healthz").status_code == 200
    assert "プリンタ" in client.get("/search?q=プリンタ").get_data(as_text=True)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # Whoosh leaks the damaged file
def test_a_damaged_index_gives_a_message_not_an_error_and_reindex_repairs_it(client, app, login, make_user,
                                                                            make_question):
    asker, _, _ = _published_case(make_user, make_question)
    sync.apply_pending()
    index = sync.current_index()
    generation = index.root / index.current_generation()
    for path in generation.iterdir():
        if path.suffix in (".seg", ".toc") or path.name.startswith("_"):
            path.write_bytes(b"\x00garbage")
    from app.search.index import forget_indexes

    forget_indexes()   # as a newly started worker would open it
    login(asker)
    page = client.get("/search?q=VPN")
    assert page.status_code == 200
    assert "検索索引を読めない" in page.get_data(as_text=True)
    sync.reindex()
    assert sync.check().ok
    assert "VPN がつながらない" in client.get("/search?q=VPN").get_data(as_text=True)
    import gc

    forget_indexes()
    gc.collect()   # the handle Whoosh left open on the damaged file is closed within this test


def test_health_counts_index_work_that_waits_too_long(client, app, make_user, make_question):
    client.get("/healthz")
    _published_case(make_user, make_question)   # outside a request nothing applies it: as if the request died
    db.session.execute(SearchOutbox.__table__.update().values(created_at=utcnow().replace(year=2020)))
    db.session.commit()
    body = client.get("/healthz").get_json()
    assert body["search"]["pending"] >= 1 and body["search"]["oldest_pending_seconds"] > 300
    assert not body["search"]["ok"] and body["status"] == "unhealthy"
    sync.apply_pending()
    assert client.get("/healthz").get_json()["status"] == "ok"


# --- logs -----------------------------------------------------------------------------------------

def test_each_request_writes_one_json_line_with_who_where_and_how_long(client, app, make_user, login, capsys):
    user = make_user("municipal", "呉市")
    login(user)
    capsys.readouterr()
    response = client.get("/search?q=秘密の検索語", headers={"X-Request-ID": "req-from-nginx-0001"})
    assert response.headers["X-Request-ID"] == "req-from-nginx-0001"
    lines = [line for line in json_lines(capsys.readouterr().err) if line["message"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "req-from-nginx-0001"
    assert line["user_id"] == user.id and line["municipality"] == user.municipality.code
    assert line["route"] == "/search" and line["method"] == "GET" and line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert "秘密の検索語" not in json.dumps(line, ensure_ascii=False)   # no query text in the log


def test_a_malformed_request_id_is_replaced(client, capsys):
    for hostile in ("bad id with spaces", "x" * 500, "<script>", "短い日本語のID"):
        response = client.get("/login", headers={"X-Request-ID": hostile.encode().decode("latin-1")})
        assert len(response.headers["X-Request-ID"]) == 32 and response.headers["X-Request-ID"] != hostile


def test_logins_are_logged_on_success_and_failure(client, make_user, capsys):
    user = make_user("municipal", "呉市")
    capsys.readouterr()
    client.post("/login", data={"username": user.username, "password": "wrong-password-1"})
    client.post("/login", data={"username": user.username, "password": PASSWORD})
    events = [line for line in json_lines(capsys.readouterr().err) if line.get("event") == "login"]
    assert [e["outcome"] for e in events] == ["failure", "success"]
    assert all(e["username"] == user.username and e["address"] for e in events)
    assert events[1]["user_id"] == user.id
    assert all("wrong-password-1" not in json.dumps(e) for e in events)


def test_an_unexpected_error_shows_no_stack_trace_and_is_logged_with_the_request_id(app, client, capsys,
                                                                                     monkeypatch):
    from app.library import routes as library_routes

    def broken(*_args, **_kwargs):
        raise RuntimeError("database exploded at /srv/secret/path")

    monkeypatch.setitem(app.view_functions, "auth.login", broken)
    capsys.readouterr()
    response = client.get("/login")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Traceback" not in page and "exploded" not in page and "/srv/secret" not in page
    assert "サーバーでエラーが発生しました" in page
    lines = json_lines(capsys.readouterr().err)
    errors = [line for line in lines if line["level"] == "error" and "exception" in line]
    assert errors and "exploded" in errors[0]["exception"]
    assert errors[0]["request_id"] == response.headers["X-Request-ID"]
    assert library_routes  # the module is loaded (the monkeypatched endpoint is real)


def test_api_errors_show_no_stack_trace_either(app, client, monkeypatch, make_user, token_for):
    def broken(*_args, **_kwargs):
        raise ValueError("internal detail")

    endpoint = next(e for e in app.view_functions if e.startswith("api.") and "questions" in e)
    monkeypatch.setitem(app.view_functions, endpoint, broken)
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    path = rule.rule.replace("<int:question_id>", "1")
    response = client.get(path, headers=token_for(make_user("municipal", "呉市")))
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "internal detail" not in response.get_data(as_text=True)


# --- secret key -----------------------------------------------------------------------------------

def test_the_secret_key_can_come_from_a_file(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("k" * 48 + "\n", encoding="utf-8")

    class Production(TestingConfig):
        REQUIRE_SECRET_KEY = True
        SECRET_KEY = None
        SECRET_KEY_FILE = str(key_file)
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'p.db'}"

    assert create_app(Production).config["SECRET_KEY"] == "k" * 48
    Production.SECRET_KEY_FILE = str(tmp_path / "missing")
    with pytest.raises(RuntimeError, match="cannot be read"):
        create_app(Production)


# --- backup and restore ---------------------------------------------------------------------------

def _instance(tmp_path: Path, uri: str, name: str):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = uri
        SEARCH_INDEX_DIR = str(tmp_path / name / "index")
        ATTACHMENT_DIR = str(tmp_path / name / "attachments")

    return create_app(Config)


def _thread_with_attachment(asker, desk, n: int) -> None:
    from app.services.attachments import Upload

    question = question_service.ask_question(asker, {
        "title": f"バックアップ中の相談 {n}", "body": f"本文 {n}", "category": "network", "sharing_consent": "all"},
        uploads=[Upload(f"log{n}.txt", f"ログ {n}\n".encode())])
    answer = question_service.post_answer(desk, question, {"body": f"回答 {n}"})
    db.session.flush()
    case = question_service.resolve_question(desk, question, answer.id)
    case_service.publish_case(desk, case, "all")
    db.session.commit()


def _backup_while_writing(source_app, tmp_path: Path) -> Path:
    from app.models import User

    with source_app.app_context():
        from app.services import accounts

        asker = accounts.create_user("kure-backup", PASSWORD, "municipal", accounts.find_municipality("呉市"))
        desk = accounts.create_user("desk-backup", PASSWORD, "helpdesk", None)
        db.session.commit()
        for n in range(5):
            _thread_with_attachment(asker, desk, n)
        asker_id, desk_id = asker.id, desk.id
    stop = threading.Event()
    written = []
    errors = []

    def writer():
        with source_app.app_context():
            asker, desk = db.session.get(User, asker_id), db.session.get(User, desk_id)
            n = 100
            while not stop.is_set():
                try:
                    _thread_with_attachment(asker, desk, n)
                    written.append(n)
                except Exception as error:   # pragma: no cover - reported below
                    errors.append(error)
                    db.session.rollback()
                n += 1
            db.session.remove()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 3 and thread.is_alive():
            stop.wait(0.05)
        with source_app.app_context():
            destination = tmp_path / "backup"
            report = backup(destination)
        assert report.attachments >= 5 and not report.missing_attachments
    finally:
        stop.set()
        thread.join()
    assert not errors and len(written) >= 3
    assert verify(destination) == []
    return destination


def _assert_restored(target_app, source_backup: Path) -> None:
    manifest = json.loads((source_backup / "manifest.json").read_text(encoding="utf-8"))
    with target_app.app_context():
        result = restore(source_backup)
        assert result["counts"] == manifest["counts"]
        # nothing half-written: every question has its answer, every attachment its file
        questions = db.session.scalar(select(func.count()).select_from(Question))
        answered = db.session.scalar(select(func.count(func.distinct(Answer.question_id))))
        assert questions == answered
        from app.storage import attachment_store

        store = attachment_store()
        for attachment in db.session.scalars(select(Attachment)):
            assert store.exists(attachment.storage_key)
        report = sync.reindex()
        assert report.documents == manifest["counts"]["cases"]
        check = sync.check()
        assert check.ok, (check.missing[:3], check.extra[:3], check.stale[:3])
        # a restored instance refuses a second restore on top of its data
        with pytest.raises(BackupError, match="空ではありません"):
            restore(source_backup)


def test_backup_while_writes_go_on_restores_into_an_empty_instance_sqlite(tmp_path):
    source = _instance(tmp_path, f"sqlite:///{tmp_path / 'source.db'}", "source")
    with source.app_context():
        db.create_all()
        load_reference(Path(source.config["CONTENT_DIR"]))
        db.session.commit()
    destination = _backup_while_writing(source, tmp_path)
    target = _instance(tmp_path, f"sqlite:///{tmp_path / 'target.db'}", "target")
    _assert_restored(target, destination)


def test_backup_while_writes_go_on_restores_into_an_empty_instance_postgres(tmp_path, postgres_base_url):
    from tests.pg_cluster import fresh_database

    with fresh_database(postgres_base_url) as source_url, fresh_database(postgres_base_url) as target_url:
        source = _instance(tmp_path, source_url, "source")
        with source.app_context():
            db.create_all()
            load_reference(Path(source.config["CONTENT_DIR"]))
            db.session.commit()
        destination = _backup_while_writing(source, tmp_path)
        target = _instance(tmp_path, target_url, "target")
        _assert_restored(target, destination)
        for app in (source, target):
            with app.app_context():
                db.engine.dispose()


def test_a_damaged_backup_is_refused(tmp_path, app):
    destination = tmp_path / "backup"
    backup(destination)
    database = destination / json.loads((destination / "manifest.json").read_text())["database_file"]
    database.write_bytes(database.read_bytes()[:-10] + b"0123456789")
    assert verify(destination)
    with pytest.raises(BackupError, match="壊れています"):
        restore(destination)


def test_backup_refuses_a_folder_that_is_not_empty(tmp_path, app):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(BackupError, match="空ではありません"):
        backup(tmp_path / "busy")


def test_backup_and_restore_commands(runner, tmp_path, app, make_user):
    make_user("municipal", "呉市")
    result = runner.invoke(args=["backup", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "バックアップを" in result.output
    config = json.loads((tmp_path / "b" / "config.json").read_text(encoding="utf-8"))
    assert "SECRET_KEY" not in config and "MAIL_PASSWORD" not in config
    result = runner.invoke(args=["restore", str(tmp_path / "b")])
    assert result.exit_code == 1 and "空ではありません" in result.output   # this instance has data


def test_health_with_the_postgres_search_backend_reports_it(tmp_path, postgres_base_url):
    from tests.pg_cluster import fresh_database

    with fresh_database(postgres_base_url) as url:
        class Config(TestingConfig):
            SQLALCHEMY_DATABASE_URI = url
            SEARCH_BACKEND = "postgres"
            SEARCH_INDEX_DIR = str(tmp_path / "index")
            ATTACHMENT_DIR = str(tmp_path / "attachments")

        app = create_app(Config)
        with app.app_context():
            db.create_all()
            load_reference(Path(app.config["CONTENT_DIR"]))
            db.session.commit()
            body = app.test_client().get("/healthz").get_json()
            if body["search"]["outdated"]:   # not built yet: a reindex builds the table
                sync.reindex()
                body = app.test_client().get("/healthz").get_json()
            assert body["search"]["backend"] == "postgres" and body["search"]["ok"], body
            assert body["status"] == "ok"
            db.session.remove()
            db.engine.dispose()


def test_the_log_line_names_the_user_without_reading_the_database(app, make_user):
    """A log line written while the request's transaction is rolled back must not load the
    (expired) user row: the id comes from the identity map's key."""
    from app.request_log import _user_id

    user = make_user("municipal", "呉市")
    db.session.commit()
    user_id = user.id
    db.session.expire(user)
    from flask_login import AnonymousUserMixin

    with recorded_statements() as statements:
        assert _user_id(user) == user_id
        assert _user_id(AnonymousUserMixin()) is None and _user_id(None) is None
    assert statements == []

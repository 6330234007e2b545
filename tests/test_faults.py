"""The production server under faults: several gunicorn workers writing at once, the server killed
with SIGKILL in a burst of writes, PostgreSQL restarted under load. Each test starts gunicorn on
loopback with `gunicorn.conf.py` and drives it through the API from parallel clients; each is
bounded in time (about ten seconds)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app
from app.content import load_reference
from app.extensions import db
from app.models import Answer, Case, CaseState, Question
from app.search import sync
from app.services import accounts
from config import TestingConfig

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Instance:
    """One deployment's data (database, index, attachments) and the API tokens of its users."""

    def __init__(self, tmp_path: Path, database_uri: str):
        self.tmp_path = tmp_path
        self.database_uri = database_uri
        self.index_dir = tmp_path / "index"
        self.attachment_dir = tmp_path / "attachments"

        class Config(TestingConfig):
            SQLALCHEMY_DATABASE_URI = database_uri
            SEARCH_INDEX_DIR = str(self.index_dir)
            ATTACHMENT_DIR = str(self.attachment_dir)

        self.app = create_app(Config)
        with self.app.app_context():
            db.create_all()
            load_reference(Path(self.app.config["CONTENT_DIR"]))
            kure = accounts.find_municipality("呉市")
            asker = accounts.create_user("kure-fault", "correct-horse-battery", "municipal", kure)
            desk = accounts.create_user("desk-fault", "correct-horse-battery", "helpdesk", None)
            db.session.commit()
            self.asker_token = accounts.create_token(asker)
            self.desk_token = accounts.create_token(desk)
            db.session.commit()
            sync.ready_index()
            db.session.remove()
            db.engine.dispose()

    def env(self, port: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
        env.update({
            "APP_CONFIG": "development",
            "FLASK_SECRET_KEY": "fault-test-" + "k" * 40,
            "FLASK_SQLALCHEMY_DATABASE_URI": self.database_uri,
            "FLASK_SEARCH_INDEX_DIR": str(self.index_dir),
            "FLASK_ATTACHMENT_DIR": str(self.attachment_dir),
            "FLASK_MAIL_DIR": str(self.tmp_path / "mail"),
            "FLASK_SEARCH_SYNC_INTERVAL": "1",
            "FLASK_LOG_LEVEL": "WARNING",
            "HELPDESK_BIND": f"127.0.0.1:{port}",
            "HELPDESK_WORKERS": "3",
            "HELPDESK_THREADS": "4",
        })
        return env

    @contextmanager
    def served(self):
        server = Server(self)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    def check(self) -> sync.CheckReport:
        with self.app.app_context():
            try:
                return sync.check()
            finally:
                db.session.remove()
                db.engine.dispose()


class Server:
    def __init__(self, instance: Instance):
        self.instance = instance
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.log = instance.tmp_path / f"gunicorn-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(GUNICORN), "--config", str(ROOT / "gunicorn.conf.py")], cwd=ROOT,
                env=self.instance.env(self.port), stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                status, _ = call(self, "GET", "/healthz", timeout=2)
                if status in (200, 503):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        """SIGKILL to the master and every worker at once (a power switch for the processes)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def call(server: Server, method: str, path: str, token: str | None = None, body: dict | None = None,
         timeout: float = 15) -> tuple[int, dict | None]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        payload, status = error.read(), error.code
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, {"raw": payload[:200].decode("utf-8", "replace")}


def publish_thread(server: Server, instance: Instance, n: int, acknowledged: dict) -> None:
    """Ask, answer, resolve, publish, edit: every 2xx is recorded as acknowledged; anything else
    raises with the status and body."""
    status, question = call(server, "POST", "/api/v1/questions", instance.asker_token, {
        "title": f"負荷中の相談 {n} VPN", "body": f"障害の相談 {n}", "category": "network", "sharing_consent": "all"})
    assert status == 201, (status, question)
    acknowledged["questions"].append(question["id"])
    status, answer = call(server, "POST", f"/api/v1/questions/{question['id']}/answers", instance.desk_token,
                          {"body": f"回答 {n}"})
    assert status == 201, (status, answer)
    acknowledged["answers"].append(answer["id"])
    status, resolved = call(server, "POST", f"/api/v1/questions/{question['id']}/resolve", instance.desk_token,
                            {"answer_id": answer["id"]})
    assert status == 201, (status, resolved)
    case_id = resolved["id"]
    status, published = call(server, "POST", f"/api/v1/cases/{case_id}/publish", instance.desk_token,
                             {"visibility": "all"})
    assert status == 200, (status, published)
    acknowledged["published"].append(case_id)
    status, edited = call(server, "PATCH", f"/api/v1/cases/{case_id}", instance.desk_token,
                          {"resolution": f"手順を追記しました {n}"})
    assert status == 200, (status, edited)
    acknowledged["edited"].append(case_id)


def _wait_for_index(server: Server, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    body = {}
    while time.monotonic() < deadline:
        _, body = call(server, "GET", "/healthz")
        if body and body.get("search", {}).get("pending") == 0:
            return body
        time.sleep(0.2)
    return body


@pytest.fixture
def sqlite_instance(tmp_path):
    return Instance(tmp_path, f"sqlite:///{tmp_path / 'helpdesk.db'}")


def test_several_workers_publishing_and_editing_at_once_lose_nothing(sqlite_instance):
    acknowledged = {"questions": [], "answers": [], "published": [], "edited": []}
    failures = []
    with sqlite_instance.served() as server:
        def client(worker: int):
            for n in range(4):
                try:
                    publish_thread(server, sqlite_instance, worker * 100 + n, acknowledged)
                except Exception as error:
                    failures.append(repr(error))

        threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        health = _wait_for_index(server, 10)
    assert failures == []
    assert len(acknowledged["edited"]) == 32
    assert health["search"]["pending"] == 0, health
    report = sqlite_instance.check()
    assert report.ok, (report.missing[:5], report.extra[:5], report.stale[:5])


def test_after_sigkill_in_a_burst_every_acknowledged_write_is_there_and_the_index_catches_up(sqlite_instance):
    acknowledged = {"questions": [], "answers": [], "published": [], "edited": []}
    stop = threading.Event()
    with sqlite_instance.served() as server:
        def client(worker: int):
            n = 0
            while not stop.is_set():
                try:
                    publish_thread(server, sqlite_instance, worker * 1000 + n, acknowledged)
                except Exception:
                    return   # the server is gone: this client's last write was not acknowledged
                n += 1

        threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged["published"]) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(acknowledged["published"]) >= 12

    with sqlite_instance.app.app_context():
        # every write acknowledged with a 2xx is in the database
        questions = set(db.session.scalars(select(Question.id)))
        answers = set(db.session.scalars(select(Answer.id)))
        published = set(db.session.scalars(select(Case.id).where(Case.state == CaseState.PUBLISHED.value)))
        assert set(acknowledged["questions"]) <= questions
        assert set(acknowledged["answers"]) <= answers
        assert set(acknowledged["published"]) <= published
        edited = {case.id: case.resolution for case in db.session.scalars(
            select(Case).where(Case.id.in_(acknowledged["edited"])))}
        assert all(text.startswith("手順を追記しました") for text in edited.values())
        # nothing half-written: a question's answer and its drafted case come together
        orphan_cases = db.session.scalar(select(func.count()).select_from(Case).where(
            Case.question_id.isnot(None), ~Case.question_id.in_(select(Question.id))))
        assert orphan_cases == 0
        db.session.remove()
        db.engine.dispose()

    # restart: the index catches up by itself (background sync in each worker), within seconds
    with sqlite_instance.served() as server:
        health = _wait_for_index(server, 10)
        assert health["search"]["pending"] == 0, health
    report = sqlite_instance.check()
    assert report.ok, (report.missing[:5], report.extra[:5], report.stale[:5])


def test_postgres_restarting_under_load_fails_requests_cleanly_and_the_app_recovers(tmp_path, postgres_base_url):
    from tests.pg_cluster import fresh_database, restart_server

    with fresh_database(postgres_base_url) as url:
        instance = Instance(tmp_path, url)
        acknowledged = {"questions": [], "answers": [], "published": [], "edited": []}
        publish_thread_ok = []
        with instance.served() as server:
            publish_thread(server, instance, 0, acknowledged)
            case_id = acknowledged["published"][0]
            statuses: list[int] = []
            bad: list[str] = []
            stop = threading.Event()

            def reader():
                while not stop.is_set():
                    try:
                        status, body = call(server, "GET", f"/api/v1/cases/{case_id}", instance.asker_token, timeout=10)
                    except Exception as error:   # a reset or a hang would be a failure
                        bad.append(repr(error))
                        continue
                    statuses.append(status)
                    if status != 200 and not (body and "error" in body):
                        bad.append(f"{status} {body}")
                    time.sleep(0.02)

            threads = [threading.Thread(target=reader) for _ in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            restart_server(postgres_base_url, down_seconds=2)
            # recovered without restarting the app: reads and writes succeed again
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status, _ = call(server, "GET", f"/api/v1/cases/{case_id}", instance.asker_token)
                if status == 200:
                    break
                time.sleep(0.2)
            publish_thread(server, instance, 1, acknowledged)
            publish_thread_ok.append(True)
            time.sleep(0.3)
            stop.set()
            for thread in threads:
                thread.join(timeout=20)
            health_status, health = call(server, "GET", "/healthz")
        assert bad == []
        assert 200 in statuses and any(s >= 500 for s in statuses), sorted(set(statuses))
        assert set(statuses) <= {200, 500, 503}
        assert publish_thread_ok and health_status == 200, health
        with instance.app.app_context():
            db.engine.dispose()

"""Load test: the app under gunicorn on loopback with 100,000 synthetic cases, driven by signed-in
users over HTTP. Prints numbers; it is not a test.

    .venv/bin/python bench/load.py                                   # SQLite + Whoosh
    .venv/bin/python bench/load.py --workers 5 --taskset 0,1         # 5 workers pinned to 2 cores
    .venv/bin/python bench/load.py --database postgres               # throwaway PostgreSQL cluster
    .venv/bin/python bench/load.py --database postgres --search-backend postgres

Two loads against one server:

1. **mixed**: ``--users`` (50) users for ``--duration`` (60) seconds, each signed in as staff of one
   of ten municipalities (and a help-desk account for its help-desk steps). Each user sends requests
   at Poisson times with a mean gap of ``--pace`` seconds (an *open* schedule per user, as wrk2 does):
   60 % searches (half broad words, half selective: product names, model numbers, sentences),
   30 % case pages (``/cases/<id>``, a case that municipality may read), 10 % writes: a question
   asked through the form, answered by the help desk, resolved into a draft case, published to all
   municipalities (2.5 % each).
2. **capacity**: ``--capacity-users`` (8) users requesting case pages back to back (closed loop,
   no think time, no writes) for ``--capacity-duration`` seconds: pages per second.

Measurement (no coordinated omission): every request's *service time* runs from just before the
request is written on the socket to the last byte of its body read (``http.client``, one keep-alive
connection per user, the connect included when one is opened). Every request also has an *intended*
start on the user's schedule; when the server falls behind, the next request goes out late and its
*corrected* latency (intended start to last byte) counts the wait, as a user who clicked then would
have seen it. Requests still unsent 15 s after the end are reported as unsent. Both are printed; the
targets are judged on the corrected numbers. The server's own time per request (``duration_ms`` of
the app's request log, matched by ``X-Request-ID``) is printed next to them, so the queueing in
gunicorn is visible, and so is the CPU used by the server and by this generator (both share the
machine's cores).

The corpus (``bench/search_bench.build_corpus``: 100,000 published cases, indexed by the app's own
``reindex``) is built once per database and search backend and cached under ``--cache-dir``
(/tmp/helpdesk-load-cache); every run works on a copy, so the writes of one run never reach the next.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PASSWORD = "load-bench-pass-2026"
MUNICIPALITIES = 10
HELPDESK_USERS = 10
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) helpdesk-load/1.0"
CORPUS_VERSION = 1          # bump when what the cache holds changes
READ_TIMEOUT = 60.0
KEEPALIVE_REUSE_S = 4.0     # gunicorn's keepalive is 5 s: older connections are replaced, not reused

WEIGHTS = {"search_broad": 30, "search_selective": 30, "case": 30, "write": 10}
WRITE_STEPS = ("ask", "answer", "resolve", "publish")
BROAD_WORDS = ["システム", "設定", "確認", "ネットワーク", "パスワード", "サーバ", "更新", "メール", "端末", "障害"]


# --- the corpus --------------------------------------------------------------------------------

def build_config(database_uri: str, run_dir: Path, search_backend: str):
    from config import Config

    class BuildConfig(Config):
        SQLALCHEMY_DATABASE_URI = database_uri
        SEARCH_INDEX_DIR = str(run_dir / "index")
        ATTACHMENT_DIR = str(run_dir / "attachments")
        MAIL_DIR = str(run_dir / "mail")
        SECRET_KEY = secrets.token_hex(32)
        MAIL_SEND_AFTER_REQUEST = False
        ENV_OVERRIDES = False
        LOG_LEVEL = "WARNING"

    if search_backend != "whoosh":
        BuildConfig.SEARCH_BACKEND = search_backend
    return BuildConfig


def search_backend_available(name: str) -> bool:
    """Whether this tree knows ``SEARCH_BACKEND`` (another engineer is adding the PostgreSQL one)."""
    if name == "whoosh":
        return True
    import config

    return hasattr(config.Config, "SEARCH_BACKEND")


def build_corpus_into(database_uri: str, data_dir: Path, size: int, search_backend: str) -> dict:
    """Schema by the migrations, reference data, load users, ``size`` cases, a full reindex."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app import create_app, policy
    from app.content import load_reference
    from app.extensions import db
    from app.models import Case, CaseState, Category, Municipality
    from app.services import accounts
    from search_bench import build_corpus

    app = create_app(build_config(database_uri, data_dir, search_backend))
    t = time.perf_counter()
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        load_reference(ROOT / "content")
        db.session.commit()
        members = db.session.scalars(select(Municipality).where(Municipality.is_observer.is_(False))
                                     .order_by(Municipality.code)).all()
        # ten municipalities spread over the prefecture (cities and towns, neighbours and not)
        chosen = [members[i * len(members) // MUNICIPALITIES] for i in range(MUNICIPALITIES)]
        municipal = []
        for i, m in enumerate(chosen):
            name = f"load-m{i:02d}"
            accounts.create_user(name, PASSWORD, "municipal", m)
            municipal.append({"username": name, "municipality": m.name, "municipality_id": m.id})
        helpdesk = [f"load-h{i:02d}" for i in range(HELPDESK_USERS)]
        for name in helpdesk:
            accounts.create_user(name, PASSWORD, "helpdesk")
        db.session.commit()
        categories = db.session.scalars(select(Category.slug).order_by(Category.sort_order)).all()
    print(f"  schema, reference data and users: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    build_corpus(app, size)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":   # the bench inserts explicit ids: move the sequence on
            db.session.execute(db.text("SELECT setval(pg_get_serial_sequence('cases', 'id'), "
                                       "(SELECT max(id) FROM cases))"))
            db.session.commit()
    print(f"  {size:,} cases written: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    procs = max(1, min(2, os.cpu_count() or 1))
    with app.app_context():
        try:   # the configured backend (SEARCH_BACKEND) where the tree has several
            from app.search.backend import get_backend
        except ImportError:
            from app.search.sync import reindex

            reindex(procs=procs)
        else:
            get_backend().reindex(procs=procs)
    print(f"  reindex: {time.perf_counter() - t:.1f} s", flush=True)
    rng = random.Random(11)
    visible = {}
    with app.app_context():
        for row in municipal:
            user = accounts.get_user(row["username"])
            ids = db.session.scalars(select(Case.id).where(policy.visible_cases_clause(user),
                                                           Case.state == CaseState.PUBLISHED.value)).all()
            visible[row["username"]] = sorted(rng.sample(ids, min(5000, len(ids))))
            row["visible_cases"] = len(ids)
        if db.engine.dialect.name == "sqlite":
            db.session.execute(db.text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.session.remove()
        db.engine.dispose()
    return {"version": CORPUS_VERSION, "size": size, "municipal": municipal, "helpdesk": helpdesk,
            "categories": categories, "visible": visible}


# --- PostgreSQL: a throwaway cluster (as tests/pg_cluster.py), its data folder cached -----------

class Cluster:
    def __init__(self, data: Path, socket_dir: Path, log: Path):
        from tests.pg_cluster import server_bin_dir

        self.bin = server_bin_dir()
        if self.bin is None:
            raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.data, self.socket_dir, self.log = data, socket_dir, log

    def _run(self, command: list[str]) -> None:
        from tests.pg_cluster import _as_server_user

        subprocess.run(_as_server_user(command), check=True, capture_output=True)

    @staticmethod
    def give_to_server_user(*paths: Path) -> None:
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam("postgres")
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--locale=C.UTF-8"])

    def start(self) -> None:
        # as SQLite runs (WAL, synchronous=NORMAL): a commit does not wait for the disk
        options = (f"-k {self.socket_dir} -c listen_addresses='' -c max_connections=300 "
                   "-c synchronous_commit=off -c shared_buffers=256MB")
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                   "-w", "-t", "120", "start"])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@/{name}?host={self.socket_dir}"

    def create_database(self, name: str) -> None:
        from sqlalchemy import create_engine

        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()


def cache_key(args) -> str:
    """Per database, backend, size and schema (the migrations of this tree, the search index's
    fields, analysis version and file format: posting block size, postings files)."""
    import hashlib

    from app.search.analysis import ANALYSIS_VERSION
    from app.search.bulk import POSTING_BLOCK
    from app.search.index import build_schema
    from app.search.postings_file import MAGIC

    # names and contents: a migration changed in place makes another schema
    migrations = [f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
                  for p in sorted((ROOT / "migrations" / "versions").glob("*.py"))]
    fields = sorted(f"{name}:{type(field).__name__}" for name, field in build_schema().items())
    index_format = [str(ANALYSIS_VERSION), str(POSTING_BLOCK), MAGIC.decode()]
    schema = hashlib.sha256("\n".join([*migrations, *fields, *index_format]).encode()).hexdigest()[:8]
    return f"{args.database}-{args.search_backend}-{args.cases}-{schema}-v{CORPUS_VERSION}"


def prepare(args) -> tuple[Path, dict]:
    """The cached corpus (built when missing); returns its folder and its description."""
    cache = Path(args.cache_dir) / cache_key(args)
    meta_file = cache / "corpus.json"
    if meta_file.exists() and not args.rebuild:
        return cache, json.loads(meta_file.read_text(encoding="utf-8"))
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    os.chmod(cache, 0o755)
    os.chmod(cache.parent, 0o755)
    print(f"building the corpus into {cache} (once; later runs copy it)", flush=True)
    started = time.perf_counter()
    if args.database == "sqlite":
        meta = build_corpus_into(f"sqlite:///{cache / 'helpdesk.db'}", cache, args.cases, args.search_backend)
    else:
        socket_dir = Path(tempfile.mkdtemp(prefix="load-pg-sock-"))
        Cluster.give_to_server_user(socket_dir)
        cluster = Cluster(cache / "pgdata", socket_dir, cache / "build-server.log")
        Cluster.give_to_server_user(cache)
        cluster.init()
        cluster.start()
        try:
            cluster.create_database("helpdesk")
            meta = build_corpus_into(cluster.url("helpdesk"), cache, args.cases, args.search_backend)
        finally:
            cluster.stop()
            shutil.rmtree(socket_dir, ignore_errors=True)
    meta["build_s"] = round(time.perf_counter() - started, 1)
    meta_file.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    print(f"corpus built in {meta['build_s']:.0f} s", flush=True)
    return cache, meta


@contextmanager
def run_copy(args, cache: Path):
    """A copy of the cached corpus for this run; yields the database URL and the folder."""
    run_dir = Path(tempfile.mkdtemp(prefix="helpdesk-load-run-"))
    try:
        if (cache / "index").exists():   # the PostgreSQL search backend has no index folder
            shutil.copytree(cache / "index", run_dir / "index")
        else:
            (run_dir / "index").mkdir()
        if args.database == "sqlite":
            shutil.copy2(cache / "helpdesk.db", run_dir / "helpdesk.db")
            yield f"sqlite:///{run_dir / 'helpdesk.db'}", run_dir
        else:
            os.chmod(run_dir, 0o755)
            subprocess.run(["cp", "-a", str(cache / "pgdata"), str(run_dir / "pgdata")], check=True)
            socket_dir = run_dir / "sock"
            socket_dir.mkdir()
            Cluster.give_to_server_user(run_dir, socket_dir)
            cluster = Cluster(run_dir / "pgdata", socket_dir, run_dir / "pg.log")
            cluster.start()
            try:
                yield cluster.url("helpdesk"), run_dir
            finally:
                cluster.stop()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# --- the server --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(args, database_url: str, run_dir: Path):
    port = free_port()
    env = dict(os.environ)
    env.update({
        "APP_CONFIG": "production",
        "FLASK_SECRET_KEY": secrets.token_hex(32),
        "FLASK_SQLALCHEMY_DATABASE_URI": database_url,
        "FLASK_SEARCH_INDEX_DIR": str(run_dir / "index"),
        "FLASK_ATTACHMENT_DIR": str(run_dir / "attachments"),
        "FLASK_MAIL_BACKEND": "folder",
        "FLASK_MAIL_DIR": str(run_dir / "mail"),
        "FLASK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "HELPDESK_BIND": f"127.0.0.1:{port}",
        "HELPDESK_LOG_LEVEL": "warning",
    })
    if args.search_backend != "whoosh":
        env["FLASK_SEARCH_BACKEND"] = args.search_backend
    if args.workers:
        env["HELPDESK_WORKERS"] = str(args.workers)
    if args.threads:
        env["HELPDESK_THREADS"] = str(args.threads)
    # the gunicorn of the Python running this script; the app from this script's tree (gunicorn
    # puts its working directory first on the path)
    command = [str(Path(sys.executable).parent / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py")]
    if args.taskset:
        command = ["taskset", "-c", args.taskset] + command
    log_path = run_dir / "server.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit("gunicorn exited:\n" + log_path.read_text(errors="replace")[-3000:])
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/login")
                if connection.getresponse().status == 200:
                    connection.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not answer within 120 s")
            time.sleep(0.3)
        yield port, process, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children that still run."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def machine_busy() -> float:
    """CPU seconds all processes of the machine have used (``/proc/stat``: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(limit_s: float, server_pid: int | None = None, threshold: float = 0.15) -> float:
    """The machine is shared (other people run test suites on it): wait up to ``limit_s`` for 3
    seconds in which other processes use less than ``threshold`` cores; returns what they used."""
    deadline = time.monotonic() + limit_s
    while True:
        busy, own = machine_busy(), (process_tree_cpu(server_pid) if server_pid else 0.0) + time.process_time()
        time.sleep(3)
        others = (machine_busy() - busy - ((process_tree_cpu(server_pid) if server_pid else 0.0)
                                           + time.process_time() - own)) / 3
        if others < threshold or time.monotonic() > deadline:
            return others


# --- the client --------------------------------------------------------------------------------

class Session:
    """A signed-in browser: cookies and the CSRF token (one per session: WTF_CSRF_TIME_LIMIT is None)."""

    def __init__(self, username: str):
        self.username = username
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.lock = threading.Lock()

    def cookie_header(self) -> str:
        with self.lock:
            return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def take_cookies(self, headers) -> None:
        for value in headers.get_all("Set-Cookie") or []:
            pair = value.split(";", 1)[0]
            name, _, content = pair.partition("=")
            expired = "max-age=0" in value.lower() or "expires=thu, 01 jan 1970" in value.lower()
            with self.lock:
                if expired or not content:
                    self.cookies.pop(name.strip(), None)
                else:
                    self.cookies[name.strip()] = content.strip()


@dataclass
class Response:
    status: int
    location: str
    body: bytes
    started: float
    ended: float


class Connection:
    """One keep-alive HTTP/1.1 connection (a browser tab's)."""

    def __init__(self, port: int):
        self.port = port
        self.http: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def _open(self) -> None:
        self.close()
        self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=READ_TIMEOUT)
        self.http.connect()
        self.http.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None

    def request(self, session: Session | None, method: str, path: str, form: dict | None = None,
                request_id: str = "") -> Response:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        headers = {"User-Agent": USER_AGENT, "Accept": "text/html"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if session is not None:
            cookie = session.cookie_header()
            if cookie:
                headers["Cookie"] = cookie
        if request_id:
            headers["X-Request-ID"] = request_id
        started = time.perf_counter()
        for attempt in (0, 1):
            fresh = self.http is None or started - self.last_used > KEEPALIVE_REUSE_S
            if fresh:
                self._open()
            try:
                self.http.request(method, path, body=body, headers=headers)
                response = self.http.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle keep-alive connection as the request went out: resend
                # on a new one, as a browser does (the time of both attempts is counted)
                self.close()
                if fresh or attempt:
                    raise
                continue
            break
        ended = time.perf_counter()
        self.last_used = ended
        if session is not None:
            session.take_cookies(response.headers)
        if response.will_close:
            self.close()
        return Response(response.status, response.headers.get("Location", ""), data, started, ended)


CSRF = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')


def sign_in(port: int, username: str) -> Session:
    session = Session(username)
    connection = Connection(port)
    page = connection.request(session, "GET", "/login")
    token = CSRF.search(page.body).group(1).decode()
    done = connection.request(session, "POST", "/login",
                              {"csrf_token": token, "username": username, "password": PASSWORD, "submit": "ログイン"})
    if done.status != 302:
        raise SystemExit(f"login of {username} failed: HTTP {done.status}")
    page = connection.request(session, "GET", "/search")   # a fresh session: a fresh token
    session.csrf = CSRF.search(page.body).group(1).decode()
    connection.close()
    return session


# --- what users do -----------------------------------------------------------------------------

@dataclass
class Sample:
    kind: str
    ok: bool
    status: int
    service_ms: float
    corrected_ms: float
    request_id: str
    started: float
    error: str = ""


class Work:
    """The write pipeline shared by all users: asked → answered → resolved (draft) → published."""

    def __init__(self):
        self.lock = threading.Lock()
        self.asked: deque[int] = deque()
        self.answered: deque[tuple[int, int]] = deque()
        self.drafts: deque[int] = deque()
        self.steps = itertools.cycle(WRITE_STEPS)

    def next_step(self) -> tuple[str, object]:
        with self.lock:
            step = next(self.steps)
            order = WRITE_STEPS[:WRITE_STEPS.index(step) + 1][::-1]   # fall back towards "ask"
            for candidate in order:
                queue = {"answer": self.asked, "resolve": self.answered, "publish": self.drafts}.get(candidate)
                if queue is None:
                    return "ask", None
                if queue:
                    return candidate, queue.popleft()
            return "ask", None

    def put(self, step: str, item) -> None:
        with self.lock:
            {"ask": self.asked, "answer": self.answered, "resolve": self.drafts}[step].append(item)


SENTENCE_PARTS: list[str] = []


def clean_sentences() -> list[str]:
    """Demo sentences without anything the publish review would stop (addresses, names ...)."""
    from app.services.sensitive import find_sensitive
    from search_bench import sentences

    parts, _titles, _tags = sentences()
    return [p for p in parts if not find_sensitive(p) and not re.search(r"[0-9０-９@]", p)]


def selective_query(rng: random.Random) -> str:
    from search_bench import SELECTIVE, SENTENCES, model_code, product_name

    roll = rng.random()
    if roll < 0.35:
        return product_name(rng.randrange(3000))
    if roll < 0.6:
        return model_code(rng.randrange(20000))
    if roll < 0.75:
        return f"{product_name(rng.randrange(3000))} {rng.choice(['設定', '更新', '障害'])}"
    return rng.choice(SELECTIVE + SENTENCES)


def broad_query(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return rng.choice(BROAD_WORDS)
    return " ".join(rng.sample(BROAD_WORDS, 2))


class User:
    def __init__(self, index: int, port: int, municipal: Session, helpdesk: Session, visible: list[int],
                 meta: dict, work: Work, seed: int):
        self.index, self.municipal, self.helpdesk = index, municipal, helpdesk
        self.connection = Connection(port)
        self.visible, self.meta, self.work = visible, meta, work
        self.rng = random.Random(seed)
        self.seq, self.tag = 0, seed // 1000

    def _request_id(self) -> str:
        self.seq += 1
        return f"load-{self.tag}-{self.index:03d}-{self.seq:07d}"

    def act(self, kind: str, intended: float) -> Sample:
        if kind == "write":
            kind, item = self.work.next_step()
        else:
            item = None
        request_id = self._request_id()
        try:
            ok, response, note = getattr(self, f"do_{kind}")(item, request_id)
        except (OSError, http.client.HTTPException) as error:
            now = time.perf_counter()
            self.connection.close()
            return Sample(kind, False, 0, float("nan"), (now - intended) * 1000, request_id, now,
                          f"{type(error).__name__}: {error}")
        return Sample(kind, ok, response.status, (response.ended - response.started) * 1000,
                      (response.ended - intended) * 1000, request_id, response.started,
                      "" if ok else f"HTTP {response.status} {note}".strip())

    def _page(self, session: Session, path: str, request_id: str, check: bytes | None = None):
        response = self.connection.request(session, "GET", path, request_id=request_id)
        ok = response.status == 200 and len(response.body) > 0 and (check is None or check not in response.body)
        return ok, response, ""

    def do_search_broad(self, _item, request_id):
        q = urllib.parse.quote(broad_query(self.rng))
        return self._page(self.municipal, f"/search?q={q}", request_id, "検索索引が見つからない".encode())

    def do_search_selective(self, _item, request_id):
        q = urllib.parse.quote(selective_query(self.rng))
        return self._page(self.municipal, f"/search?q={q}", request_id, "検索索引が見つからない".encode())

    def do_case(self, _item, request_id):
        return self._page(self.municipal, f"/cases/{self.rng.choice(self.visible)}", request_id)

    def do_ask(self, _item, request_id):
        rng = self.rng
        form = {"csrf_token": self.municipal.csrf, "title": rng.choice(SENTENCE_PARTS)[:60].rstrip("。") + "について",
                "category": rng.choice(self.meta["categories"]), "kind": "question", "tags": "負荷試験",
                "body": " ".join(rng.sample(SENTENCE_PARTS, 4)), "sharing_consent": "all", "submit": "相談を送信"}
        response = self.connection.request(self.municipal, "POST", "/questions/new", form, request_id)
        found = re.fullmatch(r"(?:https?://[^/]+)?/questions/(\d+)", response.location)
        if response.status == 302 and found:
            self.work.put("ask", int(found.group(1)))
            return True, response, ""
        return False, response, response.location

    def do_answer(self, question_id, request_id):
        form = {"reply-csrf_token": self.helpdesk.csrf, "reply-body": " ".join(self.rng.sample(SENTENCE_PARTS, 3)),
                "reply-kind": "answer", "reply-canned": "", "reply-submit": "投稿する"}
        response = self.connection.request(self.helpdesk, "POST", f"/questions/{question_id}/reply", form, request_id)
        found = re.search(r"#answer-(\d+)$", response.location)
        if response.status == 302 and found:
            self.work.put("answer", (question_id, int(found.group(1))))
            return True, response, ""
        return False, response, response.location

    def do_resolve(self, item, request_id):
        question_id, answer_id = item
        form = {"csrf_token": self.helpdesk.csrf, "answer_id": str(answer_id), "submit": "この回答で解決"}
        response = self.connection.request(self.helpdesk, "POST", f"/questions/{question_id}/resolve", form, request_id)
        found = re.search(r"/cases/(\d+)/edit$", response.location)
        if response.status == 302 and found:
            self.work.put("resolve", int(found.group(1)))
            return True, response, ""
        return False, response, response.location

    def do_publish(self, case_id, request_id):
        form = {"csrf_token": self.helpdesk.csrf, "visibility": "all", "submit": "公開する"}
        response = self.connection.request(self.helpdesk, "POST", f"/cases/{case_id}/publish", form, request_id)
        ok = response.status == 302 and re.search(rf"/cases/{case_id}$", response.location) is not None
        return ok, response, response.location


def choose(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def drive(users: list[User], duration: float, pace: float, weights: dict[str, int],
          grace: float = 15.0) -> tuple[list[Sample], int, float, float]:
    """Every user on its own schedule (Poisson, mean gap ``pace``; back to back when ``pace`` is 0)
    from a common start; returns the samples, the unsent count, the start and the last end."""
    start = time.perf_counter() + 0.5
    end, hard_stop = start + duration, start + duration + grace
    results: list[list[Sample]] = [[] for _ in users]
    unsent = [0] * len(users)

    def run(i: int, user: User) -> None:
        rng, out = user.rng, results[i]
        intended = start + (rng.expovariate(1 / pace) if pace else 0.0)
        while intended < end:
            now = time.perf_counter()
            if now > hard_stop:
                while intended < end:   # requests the schedule wanted that never went out
                    unsent[i] += 1
                    intended = intended + rng.expovariate(1 / pace) if pace else end
                return
            if intended > now:
                time.sleep(intended - now)
            sample = user.act(choose(rng, weights), intended)
            out.append(sample)
            intended = intended + rng.expovariate(1 / pace) if pace else time.perf_counter()

    threads = [threading.Thread(target=run, args=(i, u), daemon=True) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    samples = [s for group in results for s in group]
    last = max((s.started + (s.service_ms / 1000 if s.service_ms == s.service_ms else 0) for s in samples),
               default=end)
    return samples, sum(unsent), start, max(last, end)


# --- numbers -----------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-p / 100 * len(ordered) // 1)) - 1))   # nearest rank
    return ordered[k]


def server_times(log_path: Path) -> dict[str, float]:
    times = {}
    with open(log_path, "rb") as log:
        for line in log:
            if b'"request_id": "load-' not in line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if "duration_ms" in row:
                times[row["request_id"]] = float(row["duration_ms"])
    return times


KIND_ORDER = ["search_broad", "search_selective", "search (all)", "case", "ask", "answer", "resolve", "publish",
              "writes (all)", "all"]


def summarise(samples: list[Sample], seconds: float, server: dict[str, float]) -> dict[str, dict]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.kind].append(s)
        groups["all"].append(s)
        if s.kind.startswith("search"):
            groups["search (all)"].append(s)
        if s.kind in WRITE_STEPS:
            groups["writes (all)"].append(s)
    table = {}
    for kind in KIND_ORDER:
        group = groups.get(kind)
        if not group:
            continue
        service = [s.service_ms for s in group if s.service_ms == s.service_ms]
        corrected = [s.corrected_ms for s in group]
        on_server = [server[s.request_id] for s in group if s.request_id in server]
        table[kind] = {
            "count": len(group), "per_s": len(group) / seconds, "errors": sum(not s.ok for s in group),
            "p50": pct(service, 50), "p95": pct(service, 95), "p99": pct(service, 99), "max": max(service, default=float("nan")),
            "c_p50": pct(corrected, 50), "c_p95": pct(corrected, 95), "c_p99": pct(corrected, 99),
            "s_p50": pct(on_server, 50), "s_p95": pct(on_server, 95), "s_p99": pct(on_server, 99),
        }
    return table


def print_table(title: str, table: dict[str, dict]) -> None:
    print(f"\n{title}")
    print(f"{'kind':18s} {'count':>6s} {'req/s':>7s} {'errors':>6s} | {'service time (send → last byte), ms':^35s} |"
          f" {'corrected (intended start), ms':^26s} | {'app (duration_ms), ms':^24s}")
    print(f"{'':18s} {'':>6s} {'':>7s} {'':>6s} | {'p50':>7s} {'p95':>7s} {'p99':>7s} {'max':>8s}   |"
          f" {'p50':>7s} {'p95':>7s} {'p99':>8s} | {'p50':>7s} {'p95':>7s} {'p99':>7s}")
    for kind, r in table.items():
        print(f"{kind:18s} {r['count']:6d} {r['per_s']:7.1f} {r['errors']:6d} | {r['p50']:7.1f} {r['p95']:7.1f} "
              f"{r['p99']:7.1f} {r['max']:8.1f}   | {r['c_p50']:7.1f} {r['c_p95']:7.1f} {r['c_p99']:8.1f} | "
              f"{r['s_p50']:7.1f} {r['s_p95']:7.1f} {r['s_p99']:7.1f}")


def print_errors(samples: list[Sample]) -> None:
    errors = defaultdict(int)
    for s in samples:
        if not s.ok:
            errors[(s.kind, s.error[:160])] += 1
    if errors:
        print("errors:")
        for (kind, message), n in sorted(errors.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {n:5d} × {kind}: {message}")


def machine() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) / 1024 / 1024
    cores = len(os.sched_getaffinity(0))
    return (f"{platform.system()} {platform.release()} {platform.machine()} | {cores} cores (nproc) | "
            f"{mem:.1f} GiB RAM | CPU {model} | Python {platform.python_version()}")


# --- the run -----------------------------------------------------------------------------------

@contextmanager
def sampled(server_pid: int, out: Path | None):
    """With ``--py-spy DIR``: py-spy samples every gunicorn worker while the phase runs (stacks in
    py-spy's ``raw`` format, one file per phase), and prints where the server's time went."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--py-spy needs py-spy: .venv/bin/pip install -e '.[bench]'")
    out.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen([spy, "record", "--pid", str(server_pid), "--subprocesses", "--rate", "20",
                                 "--format", "raw", "--output", str(out), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        print_profile(out)


def _frame_name(frame: str) -> str:
    """``function (path:line)`` as ``path:function`` (py-spy gives paths relative to sys.path)."""
    match = re.match(r"^(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{function}"


def print_profile(path: Path, top: int = 25) -> None:
    """Inclusive share of the samples per function of the app (and a few libraries), and the
    functions where the samples were taken (self time)."""
    if not path.exists():
        print(f"(py-spy wrote no {path})")
        return
    inclusive: dict[str, int] = defaultdict(int)
    own: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        names = [_frame_name(frame) for frame in frames]
        for name in set(names):
            inclusive[name] += n
        if names:
            own[names[-1]] += n
    if not total:
        print("(no samples)")
        return
    print(f"\nserver samples: {total:,} (py-spy, {path})")
    print("  inclusive, app code:")
    for name, n in sorted(((k, v) for k, v in inclusive.items() if k.startswith("app/")), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * n / total:5.1f} %  {name}")
    print("  self:")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * n / total:5.1f} %  {name}")


def measure(label: str, users: list[User], duration: float, pace: float, weights: dict[str, int],
            server_pid: int, log_path: Path, profile: Path | None = None) -> dict:
    cpu_server, cpu_self, cpu_all = process_tree_cpu(server_pid), time.process_time(), machine_busy()
    with sampled(server_pid, profile):
        samples, unsent, start, last = drive(users, duration, pace, weights)
    cpu_server, cpu_self = process_tree_cpu(server_pid) - cpu_server, time.process_time() - cpu_self
    cpu_others = max(0.0, machine_busy() - cpu_all - cpu_server - cpu_self)
    seconds = last - start
    time.sleep(0.5)   # the last log lines
    table = summarise(samples, seconds, server_times(log_path))
    print_table(f"{label}: {len(samples):,} requests in {seconds:.1f} s, {unsent} unsent; CPU: server "
                f"{cpu_server:.1f} s ({cpu_server / seconds:.2f} cores), generator {cpu_self:.1f} s "
                f"({cpu_self / seconds:.2f} cores), other processes {cpu_others:.1f} s ({cpu_others / seconds:.2f} cores)",
                table)
    print_errors(samples)
    return {"label": label, "seconds": seconds, "unsent": unsent, "cpu_server_s": cpu_server,
            "cpu_generator_s": cpu_self, "cpu_others_s": cpu_others, "kinds": table}


def targets(mixed: dict, capacity: dict | None) -> list[tuple[str, str, bool]]:
    kinds = mixed["kinds"]
    rows = [
        ("no errors (mixed load)", f"{kinds['all']['errors']} errors, {mixed['unsent']} unsent",
         kinds["all"]["errors"] == 0 and mixed["unsent"] == 0),
        ("search p95 ≤ 150 ms", f"{kinds['search (all)']['c_p95']:.1f} ms corrected "
         f"(service {kinds['search (all)']['p95']:.1f} ms)", kinds["search (all)"]["c_p95"] <= 150),
        ("case page p95 ≤ 100 ms", f"{kinds['case']['c_p95']:.1f} ms corrected (service {kinds['case']['p95']:.1f} ms)",
         kinds["case"]["c_p95"] <= 100),
    ]
    if capacity is not None:
        c = capacity["kinds"]["case"]
        rows.append(("≥ 600 case pages/s at 8 users", f"{c['per_s']:.0f} pages/s, {c['errors']} errors",
                     c["per_s"] >= 600 and c["errors"] == 0))
    return rows


def quiet(args, server_pid: int) -> None:
    if args.quiet_wait > 0:
        t = time.monotonic()
        others = wait_until_quiet(args.quiet_wait, server_pid)
        print(f"(waited {time.monotonic() - t:.0f} s for other processes to go idle: {others:.2f} cores busy)",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--search-backend", default="whoosh", help="whoosh (default) or postgres (SEARCH_BACKEND)")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--pace", type=float, default=1.0, help="mean seconds between one user's requests")
    parser.add_argument("--warmup", type=float, default=15, help="seconds of the same mix before measuring")
    parser.add_argument("--capacity-users", type=int, default=8)
    parser.add_argument("--capacity-duration", type=float, default=30)
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-mixed", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="HELPDESK_WORKERS (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, default=0, help="HELPDESK_THREADS (default: gunicorn.conf.py's)")
    parser.add_argument("--taskset", default="", help="pin gunicorn to these CPUs (taskset -c), e.g. 0,1")
    parser.add_argument("--cache-dir", default="/tmp/helpdesk-load-cache")
    parser.add_argument("--no-writes", action="store_true",
                        help="the mixed load without its 10 %% writes (to see what the publishes cost the reads)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached corpus")
    parser.add_argument("--json", default="", help="also write the results to this file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--py-spy", default="", metavar="DIR",
                        help="sample the server with py-spy during each measured phase; stacks into DIR")
    parser.add_argument("--quiet-wait", type=float, default=600,
                        help="before each measurement, wait up to this many seconds for other processes to go idle")
    args = parser.parse_args()

    if not search_backend_available(args.search_backend):
        raise SystemExit(f"SEARCH_BACKEND={args.search_backend} does not exist in this tree yet "
                         "(config.Config has no SEARCH_BACKEND); only --search-backend whoosh can run.")
    print(f"machine: {machine()}")
    workers = args.workers or min(16, (os.cpu_count() or 1) * 2 + 1)
    print(f"server: gunicorn gthread, {workers} workers × {args.threads or 4} threads"
          f"{', pinned to CPUs ' + args.taskset if args.taskset else ''}; database {args.database}, "
          f"search {args.search_backend}, {args.cases:,} cases", flush=True)
    cache, meta = prepare(args)
    global SENTENCE_PARTS
    SENTENCE_PARTS = clean_sentences()
    results = {"machine": machine(), "args": vars(args)}
    with run_copy(args, cache) as (database_url, run_dir), gunicorn(args, database_url, run_dir) as (port, process, log_path):
        t = time.perf_counter()
        municipal = meta["municipal"]
        municipal_sessions = [sign_in(port, municipal[i % len(municipal)]["username"]) for i in range(len(municipal))]
        helpdesk_sessions = [sign_in(port, name) for name in meta["helpdesk"]]
        work = Work()

        def make_users(n: int, seed: int) -> list[User]:
            users = []
            for i in range(n):
                row = municipal[i % len(municipal)]
                users.append(User(i, port, municipal_sessions[i % len(municipal)],
                                  helpdesk_sessions[i % len(helpdesk_sessions)], meta["visible"][row["username"]],
                                  meta, work, seed * 1000 + i))
            return users

        print(f"signed in {len(municipal_sessions)} municipal ({', '.join(r['municipality'] for r in municipal)}) "
              f"and {len(helpdesk_sessions)} help-desk accounts in {time.perf_counter() - t:.1f} s", flush=True)
        weights = {k: v for k, v in WEIGHTS.items() if k != "write"} if args.no_writes else WEIGHTS
        if not args.skip_mixed:
            users = make_users(args.users, args.seed)
            if args.warmup:
                drive(users, args.warmup, args.pace, weights)
                print(f"warm-up: {args.warmup:.0f} s of the same mix", flush=True)
            label = (f"MIXED LOAD{' (no writes)' if args.no_writes else ''}: {args.users} users, mean {args.pace:g} s "
                     f"between a user's requests "
                     f"(offered ≈ {args.users / args.pace:.0f} req/s), {args.duration:.0f} s")
            quiet(args, process.pid)
            results["mixed"] = measure(label, users, args.duration, args.pace, weights, process.pid, log_path,
                                       Path(args.py_spy) / "mixed.txt" if args.py_spy else None)
        if not args.skip_capacity:
            users = make_users(args.capacity_users, args.seed + 1)
            drive(users, 5, 0, {"case": 1})   # warm-up
            quiet(args, process.pid)
            label = f"CAPACITY: {args.capacity_users} users, case pages back to back, {args.capacity_duration:.0f} s"
            results["capacity"] = measure(label, users, args.capacity_duration, 0, {"case": 1}, process.pid, log_path,
                                          Path(args.py_spy) / "capacity.txt" if args.py_spy else None)
        unexpected = [line for line in log_path.read_text(errors="replace").splitlines()
                      if '"level": "error"' in line or "Traceback" in line or "[CRITICAL]" in line]
        kept = Path(args.cache_dir) / f"server-{cache_key(args)}.log"
        shutil.copyfile(log_path, kept)
        print(f"\nserver log: {len(unexpected)} error lines (the whole log: {kept})"
              + (":\n  " + "\n  ".join(line[:3000] for line in unexpected[:3]) if unexpected else ""))
    if "mixed" in results:
        print("\ntargets:")
        for name, value, met in targets(results["mixed"], results.get("capacity")):
            print(f"  {'MET    ' if met else 'NOT MET'} {name}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()

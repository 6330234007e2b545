"""PostgreSQL search backend benchmark (``SEARCH_BACKEND = "postgres"``): a throwaway PostgreSQL
cluster, the schema by the migrations, N synthetic cases (``bench/search_bench.build_corpus``)
indexed into ``search_documents``, then ``search_cases`` and ``similar_cases`` timed as a municipal
user (permission clause on) and as the help desk, for broad words, selective words (product
names, model numbers) and sentences. Prints p50/p95 per kind; it is not a test.

    .venv/bin/python bench/pg_search_bench.py                 # 10,000 cases
    .venv/bin/python bench/pg_search_bench.py 10000 100000    # several sizes
    .venv/bin/python bench/pg_search_bench.py --profile       # + every SQL statement's time for one
                                                              #   query of each kind (and EXPLAIN of the slowest)
    .venv/bin/python bench/pg_search_bench.py --results       # + the ids and scores found (to compare versions)

The built cluster (data folder) is kept under /tmp/pg-search-bench-cache/<size> and reused by the
next run (``--rebuild`` to make it again); searches do not write, so a reused cluster is the same.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import pwd
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from search_bench import BROAD, SELECTIVE, SENTENCES, build_corpus, percentile  # noqa: E402
from tests.pg_cluster import _as_server_user, database_url, server_bin_dir  # noqa: E402

CACHE = Path("/tmp/pg-search-bench-cache")
REPEAT = 10
KINDS = {"broad": BROAD, "selective": SELECTIVE, "sentence": SENTENCES}
USERS = ("bench-kure", "bench-desk")
OPTIONS = "-c listen_addresses='' -c fsync=off -c synchronous_commit=off -c shared_buffers=128MB"


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def start_cluster(root: Path, fresh: bool) -> str:
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    data, sock = root / "data", root / "sock"
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        sock.mkdir()
        _chown(root)
        _chown(sock)
        subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                        "--encoding=UTF8", "--locale=C.UTF-8"]), check=True, capture_output=True)
    pid = data / "postmaster.pid"
    if pid.exists():   # a run that was killed: stop what it left
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)
        pid.unlink(missing_ok=True)
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", f"-k {sock} {OPTIONS}",
                                    "-l", str(root / "server.log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True)
    return f"postgresql+psycopg://postgres@/postgres?host={sock}"


def stop_cluster(root: Path) -> None:
    bin_dir = server_bin_dir()
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"]),
                   capture_output=True)


def make_app(url: str, run_dir: Path):
    from app import create_app
    from config import Config

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = url
        SEARCH_INDEX_DIR = str(run_dir / "index")
        ATTACHMENT_DIR = str(run_dir / "attachments")
        MAIL_DIR = str(run_dir / "mail")
        SECRET_KEY = "bench"
        MAIL_SEND_AFTER_REQUEST = False
        ENV_OVERRIDES = False
        LOG_LEVEL = "WARNING"
        SEARCH_BACKEND = "postgres"

    return create_app(BenchConfig)


def build(url: str, run_dir: Path, size: int) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import create_engine

    from app.content import load_reference
    from app.extensions import db
    from app.search.backend import get_backend
    from app.services import accounts

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("CREATE DATABASE bench")
    admin.dispose()
    app = make_app(database_url(url, "bench"), run_dir)
    t = time.perf_counter()
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        load_reference(ROOT / "content")
        accounts.create_user("bench-desk", "bench-password", "helpdesk")
        accounts.create_user("bench-kure", "bench-password", "municipal", accounts.find_municipality("呉市"))
        db.session.commit()
    build_corpus(app, size)
    with app.app_context():
        db.session.execute(db.text("SELECT setval(pg_get_serial_sequence('cases', 'id'), (SELECT max(id) FROM cases))"))
        db.session.commit()
    print(f"  schema and {size:,} cases: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    with app.app_context():
        get_backend().reindex()
        db.session.execute(db.text("ANALYZE"))
        db.session.commit()
    print(f"  reindex (postgres): {time.perf_counter() - t:.1f} s", flush=True)


class StatementLog:
    """Every SQL statement's time (cursor execute to fetch done is not separable; execute only)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine = engine
        self.entries: list[tuple[float, str, object]] = []
        self.on = False
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self.on:
            self.entries.append(((time.perf_counter() - conn.info.pop("bench_t")) * 1000, statement, parameters))


def run(size: int, rebuild: bool, profile: bool, show_results: bool) -> None:
    from app.extensions import db
    from app.search.service import SearchParams, search_cases, similar_cases
    from app.services import accounts

    root = CACHE / str(size)
    fresh = rebuild or not (root / "ready").exists()
    print(f"\n== {size:,} cases ({'building' if fresh else 'cached cluster ' + str(root)}) ==", flush=True)
    base = start_cluster(root, fresh)
    try:
        if fresh:
            build(base, root, size)
            (root / "ready").write_text("ok", encoding="utf-8")
        app = make_app(database_url(base, "bench"), root)
        with app.app_context():
            statements = StatementLog(db.engine)
            for username in USERS:
                user = accounts.get_user(username)
                for kind, queries in KINDS.items():
                    for label, call in (("search", lambda q: search_cases(user, SearchParams(q=q), log_misses=False)),
                                        ("similar", lambda q: similar_cases(user, q, 5))):
                        for q in queries:   # warm: the server's caches and the process's
                            call(q)
                        timings, totals = [], {}
                        for _ in range(REPEAT):
                            for q in queries:
                                t = time.perf_counter()
                                result = call(q)
                                timings.append((time.perf_counter() - t) * 1000)
                                if label == "search":
                                    totals[q] = result.total
                                    found = [(h.case.id, round(h.score, 6)) for h in result.hits]
                                else:
                                    found = [(h.case.id, round(h.score, 6)) for h in result]
                                totals.setdefault("_results", {})[q] = found
                        results = totals.pop("_results")
                        digest = hashlib.sha1(json.dumps(results, sort_keys=True, ensure_ascii=False)
                                              .encode()).hexdigest()[:10]
                        print(f"{username:11s} {label:8s} {kind:10s} p50 {statistics.median(timings):8.1f} ms  "
                              f"p95 {percentile(timings, 95):8.1f} ms  max {max(timings):8.1f} ms  "
                              f"results {digest}" + (f"  totals {totals}" if label == "search" else ""), flush=True)
                        if show_results:
                            for q, found in results.items():
                                print(f"    {q}: {found}")
                        if profile:
                            statements.entries.clear()
                            statements.on = True
                            call(queries[-1])
                            statements.on = False
                            entries = sorted(statements.entries, key=lambda e: -e[0])
                            print(f"    {len(entries)} statements, {sum(e[0] for e in entries):.1f} ms in SQL for "
                                  f"{queries[-1]!r}; slowest:")
                            for ms, sql, _params in entries[:6]:
                                print(f"      {ms:7.1f} ms  {' '.join(sql.split())[:160]}")
                            if entries and os.environ.get("BENCH_EXPLAIN"):
                                ms, sql, params = entries[0]
                                raw = db.session.connection().connection.driver_connection
                                with raw.cursor() as cursor:
                                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                                    print("\n".join("      | " + r[0] for r in cursor.fetchall()))
                                db.session.rollback()
    finally:
        stop_cluster(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000])
    parser.add_argument("--rebuild", action="store_true", help="build the cached cluster again")
    parser.add_argument("--profile", action="store_true", help="print each SQL statement's time for one query")
    parser.add_argument("--results", action="store_true", help="print the ids and scores found")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="timed runs of each query (default %(default)s)")
    parser.add_argument("--cache", default=str(CACHE), help="where built clusters are kept (default %(default)s)")
    args = parser.parse_args()
    globals()["REPEAT"] = args.repeat
    globals()["CACHE"] = Path(args.cache)
    print(f"machine: {platform.platform()} | python {platform.python_version()} | cpus {os.cpu_count()}")
    for size in args.sizes:
        run(size, args.rebuild, args.profile, args.results)


if __name__ == "__main__":
    main()

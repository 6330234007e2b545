"""Where a signed-in page spends its time, in one process, on the load bench's cached corpus.

    .venv/bin/python bench/profile_pages.py [--pages 200] [--kind case|search|mixed|signed-in] [--profile] [--repeat]

Copies the cached 100,000-case corpus of ``bench/load.py`` (build it once with that script), signs in
as a municipal user through the test client and requests case pages (or searches) back to back. Prints
p50/p95 per request and, with ``--profile``, the top of a cProfile of the whole run sorted by
cumulative time. A measurement aid, not a test.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402  (the corpus cache and its users)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--kind", choices=["case", "search", "mixed", "signed-in"], default="case")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--helpdesk", action="store_true", help="sign in as the help desk")
    parser.add_argument("--users", type=int, default=1, help="municipal users (each of another municipality) in turn")
    parser.add_argument("--sql", action="store_true", help="print the SQL statements of the last page")
    parser.add_argument("--repeat", action="store_true",
                        help="request the same pages a second time (caches warm) and print both passes; "
                             "with --profile, the profile is of the second pass")
    parser.add_argument("--cache-mb", type=int, default=0, help="SEARCH_CACHE_MB (default: config.py's)")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--cache-dir", default="/tmp/helpdesk-load-cache")
    args = parser.parse_args()
    args.database, args.search_backend, args.rebuild = "sqlite", "whoosh", False
    cache, meta = load.prepare(args)
    run_dir = Path(tempfile.mkdtemp(prefix="helpdesk-profile-"))
    try:
        shutil.copytree(cache / "index", run_dir / "index")
        shutil.copy2(cache / "helpdesk.db", run_dir / "helpdesk.db")
        config = load.build_config(f"sqlite:///{run_dir / 'helpdesk.db'}", run_dir, "whoosh")
        config.WTF_CSRF_ENABLED = False
        if args.cache_mb:
            config.SEARCH_CACHE_MB = args.cache_mb
        from app import create_app

        app = create_app(config)
        users = [meta["helpdesk"][0]] if args.helpdesk else meta["municipal"][:args.users]
        names = [u if isinstance(u, str) else u["username"] for u in users]
        clients = []
        for name in names:
            clients.append(app.test_client())
            done = clients[-1].post("/login", data={"username": name, "password": load.PASSWORD})
            assert done.status_code == 302, done.status_code
        name = names[0]
        rng = random.Random(7)
        with app.app_context():
            from sqlalchemy import select
            from app import policy
            from app.extensions import db
            from app.models import Case, User

            visible = []
            for each in names:
                reader = db.session.scalar(select(User).where(User.username == each))
                visible.append(db.session.scalars(select(Case.id).where(policy.visible_cases_clause(reader))).all())
        paths = []
        for i in range(args.pages):
            kind = args.kind if args.kind != "mixed" else ("case" if i % 3 == 0 else "search")
            if kind == "signed-in":   # the lightest signed-in page: what every page pays
                paths.append("/account/password")
            elif kind == "case":
                paths.append(f"/cases/{rng.choice(visible[i % len(names)])}")
            else:
                q = load.broad_query(rng) if rng.random() < 0.5 else load.selective_query(rng)
                paths.append("/search?q=" + q)
        client = clients[0]
        for path in paths[:10]:
            client.get(path)   # warm-up
        if args.sql:
            from sqlalchemy import event

            statements = []
            with app.app_context():
                engine = db.engine
            def listener(conn, cursor, statement, *rest):
                # where in the app (code or template) the statement came from
                here = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(traceback.extract_stack())
                             if "/app/" in f.filename and "/site-packages/" not in f.filename), "?")
                statements.append(f"{here:28} " + " ".join(statement.split())[:130])
            event.listen(engine, "before_cursor_execute", listener)
            client.get(paths[0])
            event.remove(engine, "before_cursor_execute", listener)
            print(f"{len(statements)} statements for {paths[0]}:")
            for statement in statements:
                print("  ", statement)
        profiler = cProfile.Profile() if args.profile else None
        times = []
        if profiler and not args.repeat:
            profiler.enable()
        cpu = time.process_time()
        for number, path in enumerate(paths):
            t = time.perf_counter()
            response = clients[number % len(clients)].get(path)
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        cpu = time.process_time() - cpu
        if args.repeat:   # the same pages again: what they cost once the caches hold them
            if profiler:
                profiler.enable()
            again = []
            cpu_again = time.process_time()
            for number, path in enumerate(paths):
                t = time.perf_counter()
                clients[number % len(clients)].get(path)
                again.append((time.perf_counter() - t) * 1000)
            cpu_again = time.process_time() - cpu_again
            again.sort()
            from app.search.sync import current_index

            with app.app_context():
                cache = current_index().reading()[1]
            print(f"reader cache: {cache.held_bytes / 2**20:.0f} MB held, {cache.computed:,} values computed "
                  f"(both passes)")
            print(f"second pass (same pages): p50 {again[len(again) // 2]:.1f} ms, "
                  f"p95 {again[int(len(again) * 0.95)]:.1f} ms, mean {sum(again) / len(again):.1f} ms, "
                  f"CPU {1000 * cpu_again / len(again):.1f} ms a page")
        if profiler:
            profiler.disable()
        half = sorted(times[len(times) // 2:])
        times.sort()
        print(f"second half: p50 {half[len(half) // 2]:.1f} ms, p95 {half[int(len(half) * 0.95)]:.1f} ms")
        print(f"{args.kind}: {len(times)} pages, p50 {times[len(times) // 2]:.1f} ms, "
              f"p95 {times[int(len(times) * 0.95)]:.1f} ms, mean {sum(times) / len(times):.1f} ms, "
              f"CPU {1000 * cpu / len(times):.1f} ms a page")
        if profiler:
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(25)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What the server can answer per second for pages of increasing weight, on the load bench's corpus.

    .venv/bin/python bench/floor.py [--users 8] [--duration 15] [--database sqlite|postgres]

Starts the app under gunicorn exactly as ``bench/load.py`` does (the same cached 100,000-case corpus,
production configuration, default workers) and, for each path below in turn, lets ``--users`` signed-in
users request it back to back (closed loop) for ``--duration`` seconds. It prints pages per second,
p50/p95, and the CPU the server and the load generator used. The lightest rows are the floor the
framework sets on this machine: no page that the app renders can be faster than them, so they say how
far any target in pages per second is reachable here at all.

- ``static``: ``/static/style.css`` (Flask's static file route: WSGI, routing, no session)
- ``login``: ``GET /login`` (a template and a CSRF token in a new session; no user)
- ``signed-in``: ``GET /account/password`` (the lightest signed-in HTML page: the session's user,
  the header with the bell's count, a small form)
- ``case``: ``GET /cases/<id>`` (a case the user may read, as in ``bench/load.py``'s capacity phase)

A measurement aid, not a test.
"""
from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402  (the corpus cache, the server and the client)


def closed_loop(port: int, sessions: list, paths, duration: float) -> tuple[int, list[float], int]:
    """Session ``i`` requests ``paths(rng, i)`` back to back; returns requests, times (ms), errors."""
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + duration

    def run(i: int) -> None:
        rng = random.Random(i)
        connection = load.Connection(port)
        mine, bad = [], 0
        while time.perf_counter() < stop:
            response = None
            try:
                response = connection.request(sessions[i], "GET", paths(rng, i))
                ok = response.status == 200 and response.body
            except OSError:
                connection.close()
                ok = False
            if ok:
                mine.append((response.ended - response.started) * 1000)
            else:
                bad += 1
                if bad <= 3:
                    print(f"  error: {'no answer' if response is None else response.status}", flush=True)
        connection.close()
        with lock:
            times.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(times), sorted(times), errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--search-backend", default="whoosh")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--taskset", default="")
    parser.add_argument("--cache-dir", default="/tmp/helpdesk-load-cache")
    parser.add_argument("--quiet-wait", type=float, default=120)
    parser.add_argument("--only", default="", help="comma-separated rows to run (static,login,signed-in,case)")
    args = parser.parse_args()
    args.rebuild = False
    print(f"machine: {load.machine()}")
    cache, meta = load.prepare(args)
    municipal = meta["municipal"]
    with load.run_copy(args, cache) as (database_url, run_dir), \
            load.gunicorn(args, database_url, run_dir) as (port, process, _log):
        sessions = [load.sign_in(port, municipal[i % len(municipal)]["username"]) for i in range(args.users)]
        visible = [meta["visible"][municipal[i % len(municipal)]["username"]] for i in range(args.users)]
        anonymous = [load.Session("") for _ in range(args.users)]
        rows = {
            "static": (anonymous, lambda rng, i: "/static/style.css"),
            "login": (anonymous, lambda rng, i: "/login"),
            "signed-in": (sessions, lambda rng, i: "/account/password"),
            "case": (sessions, lambda rng, i: f"/cases/{rng.choice(visible[i])}"),
        }
        wanted = [r for r in (args.only.split(",") if args.only else rows)]
        print(f"{'page':10} {'pages/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'errors':>6} "
              f"{'server cores':>12} {'generator cores':>15}")
        for name in wanted:
            users, path = rows[name]
            closed_loop(port, users, path, 3)   # warm-up
            load.wait_until_quiet(args.quiet_wait, process.pid)
            server, own, wall = load.process_tree_cpu(process.pid), time.process_time(), time.perf_counter()
            count, times, errors = closed_loop(port, users, path, args.duration)
            wall = time.perf_counter() - wall
            server, own = load.process_tree_cpu(process.pid) - server, time.process_time() - own
            print(f"{name:10} {count / wall:8.1f} {load.pct(times, 50):7.1f} {load.pct(times, 95):7.1f} "
                  f"{errors:6d} {server / wall:12.2f} {own / wall:15.2f}", flush=True)


if __name__ == "__main__":
    main()

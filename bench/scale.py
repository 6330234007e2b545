"""Search at scale: one corpus of N synthetic cases (as ``search_bench.py`` makes them), kept in a
folder so that each step can be run again, then measured in a fresh process as a server worker:

    .venv/bin/python bench/scale.py build 1000000 /var/tmp/scale-1m      # corpus + reindex (timed)
    .venv/bin/python bench/scale.py measure /var/tmp/scale-1m            # latency and memory

``build`` prints the time to store the cases, the reindex time (2 processes) and the index size.
``measure`` starts a new Python process that opens the index like a worker, and prints for a
municipal user and the help desk: the first search of each kind in the new process (cold), the
first search after a write (a case edited and indexed), warm p50/p95 over 5 rounds, and the
worker's resident memory (VmRSS) after all of it, plus its peak (VmHWM). Not a test.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def config_for(folder: Path):
    from config import TestingConfig

    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{folder / 'scale.db'}"
        SEARCH_INDEX_DIR = str(folder / "index")
        ATTACHMENT_DIR = str(folder / "attachments")
        LOG_LEVEL = "WARNING"

    return Config


def build(size: int, folder: Path) -> None:
    from app import create_app
    from app.content import load_reference
    from app.extensions import db
    from app.search.sync import current_index, reindex
    from app.services import accounts
    import search_bench

    folder.mkdir(parents=True, exist_ok=True)
    app = create_app(config_for(folder))
    with app.app_context():
        db.create_all()
        load_reference(ROOT / "content")
        accounts.create_user("bench-desk", "bench-password", "helpdesk")
        accounts.create_user("bench-kure", "bench-password", "municipal", accounts.find_municipality("呉市"))
        db.session.commit()
    started = time.perf_counter()
    search_bench.build_corpus(app, size)
    stored = time.perf_counter() - started
    print(f"{size:,} cases stored in {stored:.0f} s", flush=True)
    with app.app_context():
        report = reindex(procs=min(2, os.cpu_count() or 1))
        index_bytes = current_index().size_bytes()
    result = {"size": size, "store_s": round(stored, 1), "reindex_s": round(report.seconds, 1),
              "index_mb": round(index_bytes / 1e6, 1), "db_mb": round((folder / "scale.db").stat().st_size / 1e6, 1)}
    (folder / "build.json").write_text(json.dumps(result))
    print(json.dumps(result), flush=True)


def _memory() -> dict[str, float]:
    status = Path("/proc/self/status").read_text()
    values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status.splitlines()
              if line.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))}
    # RssFile: pages of mapped files (postings files, libraries), shared with every other worker
    # that maps them; RssAnon: this process's own memory.
    return {"rss_mb": round(values["VmRSS"]), "peak_mb": round(values["VmHWM"]),
            "anon_mb": round(values.get("RssAnon", 0)), "file_mb": round(values.get("RssFile", 0))}


def worker(folder: Path) -> None:
    """Runs in a fresh process: what one server worker pays and holds."""
    from app import create_app
    from app.extensions import db
    from app.models import Case
    from app.search.service import SearchParams, search_cases
    from app.search.sync import apply_pending, current_index, queue_case
    from app.services import accounts
    import search_bench

    app = create_app(config_for(folder))
    groups = {"broad": search_bench.BROAD, "selective": search_bench.SELECTIVE, "sentence": search_bench.SENTENCES}
    out: dict = {"memory_start": _memory()}
    with app.app_context():
        for username in ("bench-kure", "bench-desk"):
            user = accounts.get_user(username)
            for name, queries in groups.items():
                cold, warm, after = [], [], []
                for q in queries:   # the first search of each query in this process's current version
                    current_index()._shared = None
                    t = time.perf_counter()
                    search_cases(user, SearchParams(q=q), log_misses=False)
                    cold.append((time.perf_counter() - t) * 1000)
                for q in queries:
                    search_cases(user, SearchParams(q=q), log_misses=False)
                for _ in range(5):
                    for q in queries:
                        t = time.perf_counter()
                        search_cases(user, SearchParams(q=q), log_misses=False)
                        warm.append((time.perf_counter() - t) * 1000)
                for n, q in enumerate(queries):
                    case = db.session.get(Case, 1 + n)
                    case.title = case.title.rstrip(" 改") + " 改"
                    queue_case(case)
                    db.session.commit()
                    apply_pending()
                    t = time.perf_counter()
                    search_cases(user, SearchParams(q=q), log_misses=False)
                    after.append((time.perf_counter() - t) * 1000)
                warm.sort()
                out[f"{username}:{name}"] = {
                    "cold_max": round(max(cold), 1), "after_write_p50": round(statistics.median(after), 1),
                    "after_write_max": round(max(after), 1), "warm_p50": round(statistics.median(warm), 1),
                    "warm_p95": round(warm[min(len(warm) - 1, round(0.95 * (len(warm) - 1)))], 1)}
    out["memory_end"] = _memory()
    print(json.dumps(out))


def measure(folder: Path) -> None:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "worker", str(folder)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    build_file = folder / "build.json"
    if build_file.exists():
        print("build:", build_file.read_text())
    print(f"measured in {time.perf_counter() - started:.0f} s")
    for key, value in result.items():
        print(f"{key:24s} {value}")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "build":
        build(int(sys.argv[2]), Path(sys.argv[3]))
    elif command == "measure":
        measure(Path(sys.argv[2]))
    elif command == "worker":
        worker(Path(sys.argv[2]))
    else:
        raise SystemExit(__doc__)

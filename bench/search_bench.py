"""Search benchmark: synthetic corpora of 10,000 and 100,000 cases built from the demo library's
sentences, indexed through the application's own reindex, queried through ``search_cases`` as
a municipal user (permission filter on) and as the help desk, with SQLite FTS5 (trigram) over
the same texts and queries as a reference. Prints numbers; it is not a test.

    .venv/bin/python bench/search_bench.py            # 10,000 and 100,000
    .venv/bin/python bench/search_bench.py 10000      # one size
"""
from __future__ import annotations

import json
import os
import platform
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from app import create_app  # noqa: E402
from app.content import load_reference  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Case, Category, Municipality, case_tags  # noqa: E402
from app.search.service import SearchParams, search_cases  # noqa: E402
from app.search.sync import current_index, reindex  # noqa: E402
from app.services import accounts  # noqa: E402
from app.services.validation import tags_for  # noqa: E402
from config import TestingConfig  # noqa: E402

SYLLABLES = "カキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモラリルレロ"


def product_name(n: int) -> str:
    """A made-up katakana product name (not in any dictionary): found through bigrams."""
    rng = random.Random(n)
    return "".join(rng.choice(SYLLABLES) for _ in range(4)) + "ゲート"


def model_code(n: int) -> str:
    return f"NX-{n:05d}"


PRODUCTS, CODES = 3000, 20000
BROAD = ["システム", "設定", "確認"]                       # each in a third or more of the cases
SELECTIVE = [product_name(7), product_name(1234), product_name(2999), model_code(42), model_code(15000),
             f"{product_name(55)} 設定", "夜間バッチ 朝", "UTM IPS 誤検知"]
SENTENCES = ["夜間バッチが朝までに終わらないときに確認すること", "UTMのIPSが業務システムの通信を誤検知して止めてしまう"]
REPEAT = 5


def sentences() -> tuple[list[str], list[str], list[str]]:
    rows = [json.loads(line) for line in (ROOT / "content/demo/cases.jsonl").read_text(encoding="utf-8").splitlines()]
    parts: list[str] = []
    for row in rows:
        for name in ("issue", "environment", "cause", "resolution"):
            parts += [s.strip() + "。" for s in re.split(r"[。\n]", row[name] or "") if len(s.strip()) > 8]
    titles = [row["title"] for row in rows]
    tags = sorted({t for row in rows for t in row["tags"]})
    return parts, titles, tags


def build_corpus(app, size: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    parts, titles, tags = sentences()
    with app.app_context():
        categories = db.session.scalars(select(Category.id)).all()
        municipalities = db.session.scalars(select(Municipality.id).where(Municipality.is_observer.is_(False))).all()
        tag_rows = tags_for(tags)
        db.session.commit()
        tag_ids = [t.id for t in tag_rows]
        start = datetime(2022, 4, 1, tzinfo=timezone.utc)
        batch, links = [], []
        for i in range(1, size + 1):
            issue = " ".join(rng.sample(parts, 3))
            resolution = " ".join(rng.sample(parts, 4))
            if i % 3 == 0:
                issue += " 基幹システムの設定を確認した。"
            issue += f" 機器は{product_name(rng.randrange(PRODUCTS))}（型番 {model_code(rng.randrange(CODES))}）。"
            visibility = rng.choices(["all", "neighbours", "private"], [7, 2, 1])[0]
            batch.append({
                "id": i, "title": f"{rng.choice(titles)}（{i}）", "issue": issue, "environment": rng.choice(parts),
                "cause": rng.choice(parts), "resolution": resolution, "category_id": rng.choice(categories),
                "municipality_id": rng.choice(municipalities + [None]), "state": "published",
                "visibility": visibility, "sharing_consent": visibility,
                "published_at": start + timedelta(minutes=rng.randrange(0, 60 * 24 * 1600)),
                "created_at": start, "updated_at": start,
            })
            links += [{"case_id": i, "tag_id": t} for t in rng.sample(tag_ids, 2)]
            if len(batch) == 5000:
                db.session.execute(insert(Case), batch)
                db.session.execute(insert(case_tags), links)
                db.session.commit()
                batch, links = [], []
        if batch:
            db.session.execute(insert(Case), batch)
            db.session.execute(insert(case_tags), links)
            db.session.commit()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def time_cold(app, username: str, queries: list[str]) -> list[float]:
    """Each query on a freshly opened reader (as the first search after a write), no caches."""
    timings = []
    with app.app_context():
        user = accounts.get_user(username)
        index = current_index()
        for q in queries:
            index._shared = None   # the process-wide reader and its caches
            t = time.perf_counter()
            search_cases(user, SearchParams(q=q), log_misses=False)
            timings.append((time.perf_counter() - t) * 1000)
    return timings


def time_after_write(app, username: str, queries: list[str]) -> list[float]:
    """Each query as the first search after a write (a case edited, its index work applied), with
    the searcher of the process warm before the write: what a server process pays after a publish."""
    from app.models import Case
    from app.search.sync import apply_pending, queue_case

    timings = []
    with app.app_context():
        user = accounts.get_user(username)
        for q in queries:
            search_cases(user, SearchParams(q=q), log_misses=False)
        for n, q in enumerate(queries):
            case = db.session.get(Case, 1 + n)
            case.title = case.title + " 改"
            queue_case(case)
            db.session.commit()
            apply_pending()
            t = time.perf_counter()
            search_cases(user, SearchParams(q=q), log_misses=False)
            timings.append((time.perf_counter() - t) * 1000)
    return timings


def time_queries(app, username: str, queries: list[str]) -> tuple[list[float], dict[str, int]]:
    timings, totals = [], {}
    with app.app_context():
        user = accounts.get_user(username)
        for q in queries:  # warm up the searcher and the caches as a running server has
            search_cases(user, SearchParams(q=q), log_misses=False)
        for _ in range(REPEAT):
            for q in queries:
                t = time.perf_counter()
                result = search_cases(user, SearchParams(q=q), log_misses=False)
                timings.append((time.perf_counter() - t) * 1000)
                totals[q] = result.total if not result.total_is_lower_bound else -result.total
    return timings, totals


def fts5_reference(db_path: Path, queries: list[str]) -> dict[str, float]:
    connection = sqlite3.connect(db_path)
    t = time.perf_counter()
    connection.execute("CREATE VIRTUAL TABLE fts USING fts5(title, body, tokenize='trigram')")
    connection.execute("INSERT INTO fts(rowid, title, body) SELECT id, title, issue || ' ' || environment || ' ' || "
                       "cause || ' ' || resolution FROM cases")
    connection.commit()
    build = time.perf_counter() - t
    timings = {"build_s": build}
    for name, group in (("broad", BROAD), ("selective", SELECTIVE)):
        runs = []
        for _ in range(REPEAT):
            for q in group:
                terms = [w for w in q.split() if len(w) >= 3] or [q]
                match = " OR ".join('"' + w.replace('"', '') + '"' for w in terms)
                start = time.perf_counter()
                connection.execute("SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT 20", (match,)).fetchall()
                connection.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", (match,)).fetchone()
                runs.append((time.perf_counter() - start) * 1000)
        timings[name] = runs
    connection.close()
    return timings


def run(size: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench{size}-"))

    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp / 'bench.db'}"
        SEARCH_INDEX_DIR = str(tmp / "index")

    app = create_app(Config)
    with app.app_context():
        db.create_all()
        load_reference(ROOT / "content")
        accounts.create_user("bench-desk", "bench-password", "helpdesk")
        accounts.create_user("bench-kure", "bench-password", "municipal", accounts.find_municipality("呉市"))
        db.session.commit()
    t = time.perf_counter()
    build_corpus(app, size)
    insert_s = time.perf_counter() - t
    with app.app_context():
        chars = sum(len(r or "") for row in db.session.execute(
            select(Case.title, Case.issue, Case.environment, Case.cause, Case.resolution)) for r in row)
        procs = int(os.environ.get("BENCH_PROCS", "1"))
        report = reindex(procs=procs)
        size_bytes = current_index().size_bytes()
    results = {
        "size": size, "chars": chars, "insert_s": insert_s, "reindex_s": report.seconds,
        "docs_per_s": size / report.seconds, "chars_per_s": chars / report.seconds,
        "index_mb": size_bytes / 1e6, "procs": procs,
    }
    for username in ("bench-kure", "bench-desk"):
        for name, group in (("broad", BROAD), ("selective", SELECTIVE), ("sentence", SENTENCES)):
            cold = time_cold(app, username, group)
            timings, totals = time_queries(app, username, group)
            after = time_after_write(app, username, group)
            results[f"{username}:{name}"] = {
                "p50": statistics.median(timings), "p95": percentile(timings, 95), "totals": totals,
                "cold_p50": statistics.median(cold), "cold_max": max(cold),
                "after_write_p50": statistics.median(after), "after_write_max": max(after),
            }
    fts = fts5_reference(tmp / "bench.db", BROAD + SELECTIVE)
    results["fts5"] = {"build_s": fts["build_s"],
                       **{name: {"p50": statistics.median(fts[name]), "p95": percentile(fts[name], 95)}
                          for name in ("broad", "selective")}}
    return results


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    print(f"machine: {platform.platform()} | python {platform.python_version()} | cpus {os.cpu_count()}")
    for size in sizes:
        r = run(size)
        print(f"\n== {size:,} cases ({r['chars'] / 1e6:.1f} M chars) ==")
        print(f"reindex: {r['reindex_s']:.1f} s ({r['docs_per_s']:.0f} docs/s, {r['chars_per_s'] / 1e6:.2f} M chars/s, procs={r['procs']}), index {r['index_mb']:.1f} MB")
        for key in ("bench-kure:broad", "bench-kure:selective", "bench-kure:sentence", "bench-desk:broad",
                    "bench-desk:selective", "bench-desk:sentence"):
            v = r[key]
            print(f"{key:22s} warm p50 {v['p50']:7.1f} ms  p95 {v['p95']:7.1f} ms | after a write p50 {v['after_write_p50']:7.1f} ms  max {v['after_write_max']:7.1f} ms | "
                  f"cold (new process) p50 {v['cold_p50']:7.1f} ms  max {v['cold_max']:7.1f} ms | totals {v['totals']}")
        f = r["fts5"]
        print(f"fts5 trigram reference: build {f['build_s']:.1f} s, broad p50 {f['broad']['p50']:.1f} / p95 {f['broad']['p95']:.1f} ms, "
              f"selective p50 {f['selective']['p50']:.1f} / p95 {f['selective']['p95']:.1f} ms")
        print("(negative totals: more than that many, counted up to the cap)")


if __name__ == "__main__":
    main()

"""Bulk work against a full rebuild: `cases import` of N cases (database and index) compared with
`search reindex` of the same N cases. Prints numbers; it is not a test.

    .venv/bin/python bench/import_bench.py            # 100,000 cases
    .venv/bin/python bench/import_bench.py 20000

The target (issue 11): an import finishes within 1.5 x a reindex of the same cases.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app import create_app  # noqa: E402
from app.content import load_reference  # noqa: E402
from app.extensions import db  # noqa: E402
from app.search import sync  # noqa: E402
from app.services.importing import export_cases, import_cases  # noqa: E402
from config import TestingConfig  # noqa: E402
from search_bench import build_corpus  # noqa: E402


def instance(folder: Path, name: str):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{folder / name}.db"
        SEARCH_INDEX_DIR = str(folder / f"{name}-index")
        ATTACHMENT_DIR = str(folder / f"{name}-attachments")
        LOG_LEVEL = "WARNING"

    app = create_app(Config)
    with app.app_context():
        db.create_all()
        load_reference(Path(app.config["CONTENT_DIR"]))
        db.session.commit()
    return app


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = instance(folder, "source")
        started = time.perf_counter()
        build_corpus(source, size)
        print(f"corpus of {size:,} cases built in {time.perf_counter() - started:.1f} s")
        export = folder / "cases.jsonl"
        with source.app_context():
            export_cases(export)
            for procs in (1, 2):
                started = time.perf_counter()
                report = sync.reindex(procs=procs)
                print(f"reindex (procs={procs}): {report.documents:,} cases in {time.perf_counter() - started:.1f} s")
            reindex_seconds = time.perf_counter() - started
        target = instance(folder, "target")
        with target.app_context():
            sync.ready_index()
            started = time.perf_counter()
            report = import_cases(export)
            db.session.commit()
            stored = time.perf_counter() - started
            started = time.perf_counter()
            written = sync.apply_pending(procs=min(2, os.cpu_count() or 1))
            indexed = time.perf_counter() - started
            total = stored + indexed
            check = sync.check()
            print(f"import: {report.created:,} cases stored in {stored:.1f} s, indexed ({written:,}) in {indexed:.1f} s, "
                  f"total {total:.1f} s = {total / reindex_seconds:.2f} x the reindex with procs=2 "
                  f"(target <= 1.5 x); search check {'clean' if check.ok else 'NOT clean'}")


if __name__ == "__main__":
    main()

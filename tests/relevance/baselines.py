"""Baseline retrieval systems and pooling for the graded relevance collection.

Three systems, each returning a ranked list of corpus document ids for a query:

- ``bigram``: plain BM25 (k1=1.2, b=0.75) over character bigrams of NFKC + casefolded text
  (title counted twice), no dictionary, no synonyms.
- ``fts5_trigram``: SQLite FTS5 with ``tokenize='trigram'``; the query is the OR of the trigrams of
  its NFKC text (per space-separated term), ranked by ``bm25()``; terms shorter than 3 characters
  fall back to ``LIKE`` (see ``Fts5Trigram.search`` for how the two are combined).
- ``engine``: the project's own search (``app.search``), loaded exactly like
  ``tests/test_search_relevance.py`` loads the demo library, queried as a help-desk user.

Corpora: ``helpdesk`` (``content/demo/cases.jsonl``; the id of a case is its title, which is
unique) and ``public`` (``tests/relevance/public_cases.jsonl``; ids ``p001``...).

CLI::

    python -m tests.relevance.baselines pool --corpus helpdesk|public [--depth 20]
    python -m tests.relevance.baselines run --corpus helpdesk --system bigram --query "VPN 切れる"
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
import sys
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SYSTEMS = ("engine", "bigram", "fts5_trigram")
TEXT_FIELDS = ("issue", "environment", "cause", "resolution")
IMPORT_FIELDS = ("title", "issue", "environment", "cause", "resolution", "category", "tags")


# --- corpora and queries -------------------------------------------------------------------------

def corpus_path(corpus: str) -> Path:
    if corpus == "helpdesk":
        return ROOT / "content/demo/cases.jsonl"
    if corpus == "public":
        return HERE / "public_cases.jsonl"
    raise ValueError(f"unknown corpus {corpus!r}")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_corpus(corpus: str) -> dict[str, dict]:
    """id -> document (ordered as in the file)."""
    docs: dict[str, dict] = {}
    for row in read_jsonl(corpus_path(corpus)):
        doc_id = row["title"] if corpus == "helpdesk" else row["id"]
        if doc_id in docs:
            raise ValueError(f"duplicate id in {corpus}: {doc_id}")
        docs[doc_id] = row
    titles = [d["title"] for d in docs.values()]
    if len(set(titles)) != len(titles):
        raise ValueError(f"titles are not unique in {corpus}")
    return docs


def load_queries(corpus: str) -> list[dict]:
    return read_jsonl(HERE / f"{corpus}_queries.jsonl")


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").casefold()


def doc_text(doc: dict, title_weight: int = 2) -> str:
    tags = " ".join(doc.get("tags") or [])
    parts = [doc.get("title", "")] * title_weight + [doc.get(f, "") or "" for f in TEXT_FIELDS] + [tags]
    return "\n".join(parts)


# --- bigram BM25 ---------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def bigrams(text: str) -> list[str]:
    """Character bigrams of each whitespace-separated run of NFKC + casefolded text."""
    grams: list[str] = []
    for run in _SPACE.split(normalise(text)):
        grams += [run[i:i + 2] for i in range(len(run) - 1)]
    return grams


class BigramBM25:
    def __init__(self, docs: dict[str, dict], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.ids = list(docs)
        self.tf = [Counter(bigrams(doc_text(docs[i]))) for i in self.ids]
        self.len = [sum(c.values()) for c in self.tf]
        self.avgdl = sum(self.len) / max(1, len(self.len))
        self.df: Counter = Counter()
        for c in self.tf:
            self.df.update(c.keys())
        self.n = len(self.ids)

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def search(self, query: str, limit: int = 20) -> list[str]:
        terms = Counter(bigrams(query))
        if not terms:
            return []
        scores = []
        for idx, tf in enumerate(self.tf):
            score = 0.0
            norm = self.k1 * (1 - self.b + self.b * self.len[idx] / self.avgdl)
            for term, qtf in terms.items():
                f = tf.get(term)
                if f:
                    score += qtf * self.idf(term) * f * (self.k1 + 1) / (f + norm)
            if score > 0:
                scores.append((-score, idx))
        scores.sort()
        return [self.ids[idx] for _, idx in scores[:limit]]


# --- SQLite FTS5 trigram -------------------------------------------------------------------------

class Fts5Trigram:
    """FTS5 trigram index over (title, body) of NFKC + casefolded text.

    A query is split on spaces. Terms of 3+ characters contribute the OR of their trigrams to one
    MATCH expression ranked by ``bm25(docs, 2.0, 1.0)`` (title weighted x2); terms of 1-2 characters
    cannot be trigram-matched and are looked up with ``LIKE '%term%'``. The final score of a document
    is ``-bm25 / max(-bm25)`` (in (0, 1]) plus, for each short term it contains, 1.0. Ties: corpus
    order.
    """

    def __init__(self, docs: dict[str, dict]):
        self.ids = list(docs)
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize='trigram')")
        self.db.executemany(
            "INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)",
            [(n, normalise(docs[i]["title"]), normalise(doc_text(docs[i], title_weight=0)))
             for n, i in enumerate(self.ids)],
        )

    @staticmethod
    def _quote(gram: str) -> str:
        return '"' + gram.replace('"', '""') + '"'

    def search(self, query: str, limit: int = 20) -> list[str]:
        terms = [t for t in _SPACE.split(normalise(query)) if t]
        grams = []
        for term in terms:
            if len(term) >= 3:
                grams += [term[i:i + 3] for i in range(len(term) - 2)]
        short = [t for t in terms if len(t) < 3]
        scores: dict[int, float] = {}
        if grams:
            expr = " OR ".join(self._quote(g) for g in dict.fromkeys(grams))
            rows = self.db.execute(
                "SELECT rowid, bm25(docs, 2.0, 1.0) FROM docs WHERE docs MATCH ?", (expr,)).fetchall()
            best = max((-r for _, r in rows), default=0.0) or 1.0
            for rowid, rank in rows:
                scores[rowid] = -rank / best
        for term in dict.fromkeys(short):
            like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            for (rowid,) in self.db.execute(
                    "SELECT rowid FROM docs WHERE title LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\'",
                    (like, like)):
                scores[rowid] = scores.get(rowid, 0.0) + 1.0
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [self.ids[rowid] for rowid, _ in ranked[:limit]]


# --- the project's engine ------------------------------------------------------------------------

class Engine:
    """The project's search over a temporary app holding only the corpus (see module doc)."""

    def __init__(self, corpus: str, docs: dict[str, dict]):
        from sqlalchemy import select  # imported here: the other systems need no app

        from app import create_app
        from app.content import load_reference
        from app.extensions import db
        from app.models import User
        from app.search.sync import apply_pending
        from app.services import accounts
        from app.services.importing import import_cases
        from config import TestingConfig

        self._tmp = tempfile.TemporaryDirectory(prefix=f"relevance-{corpus}-")
        tmp = Path(self._tmp.name)

        class Config(TestingConfig):
            SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp / 'library.db'}"
            SEARCH_INDEX_DIR = str(tmp / "index")

        if corpus == "helpdesk":
            source = corpus_path(corpus)
        else:
            source = tmp / "public_import.jsonl"
            with source.open("w", encoding="utf-8") as out:
                for doc in docs.values():
                    row = {f: doc.get(f, "" if f != "tags" else []) for f in IMPORT_FIELDS}
                    row["visibility"] = "all"
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.app = create_app(Config)
        self._db = db
        with self.app.app_context():
            db.create_all()
            load_reference(ROOT / "content")
            report = import_cases(source)
            accounts.create_user("relevance-desk", "correct-horse-battery", "helpdesk")
            db.session.commit()
            apply_pending()
            if report.created != len(docs):
                raise RuntimeError(f"engine imported {report.created} of {len(docs)} documents: {report.skipped}")
            self._user_id = db.session.scalar(select(User.id).where(User.username == "relevance-desk"))
        self.by_title = {doc["title"].strip(): doc_id for doc_id, doc in docs.items()}

    def search(self, query: str, limit: int = 20) -> list[str]:
        from app.extensions import db
        from app.models import User
        from app.search.service import SearchParams, search_cases

        with self.app.app_context():
            user = db.session.get(User, self._user_id)
            result = search_cases(user, SearchParams(q=query, per_page=limit), log_misses=False)
            return [self.by_title[hit.case.title.strip()] for hit in result.hits]

    def close(self) -> None:
        with self.app.app_context():
            self._db.session.remove()
            self._db.engine.dispose()
        self._tmp.cleanup()


def make_system(name: str, corpus: str, docs: dict[str, dict]):
    if name == "bigram":
        return BigramBM25(docs)
    if name == "fts5_trigram":
        return Fts5Trigram(docs)
    if name == "engine":
        return Engine(corpus, docs)
    raise ValueError(f"unknown system {name!r}")


def run_system(name: str, corpus: str, queries: list[dict], depth: int = 20,
               field: str = "query") -> dict[str, list[str]]:
    """query id -> ranked doc ids (at most ``depth``), using ``query[field]`` as the text."""
    docs = load_corpus(corpus)
    system = make_system(name, corpus, docs)
    try:
        return {q["id"]: system.search(q[field], depth) for q in queries if q.get(field)}
    finally:
        if hasattr(system, "close"):
            system.close()


# --- pooling -------------------------------------------------------------------------------------

def pool(corpus: str, queries: list[dict] | None = None, depth: int = 20,
         systems: tuple[str, ...] = SYSTEMS) -> dict[str, dict]:
    """Per query: the union of every system's top ``depth`` (for a sentence query also the top
    ``depth`` of its keyword version), ordered by best rank, and each system's own list."""
    queries = queries if queries is not None else load_queries(corpus)
    runs = {name: run_system(name, corpus, queries, depth) for name in systems}
    kw_queries = [q for q in queries if q.get("keywords")]
    kw_runs = {f"{name}:keywords": run_system(name, corpus, kw_queries, depth, field="keywords")
               for name in systems} if kw_queries else {}
    pooled: dict[str, dict] = {}
    for q in queries:
        by_system = {name: run[q["id"]] for name, run in {**runs, **kw_runs}.items() if q["id"] in run}
        best: dict[str, int] = {}
        for ranked in by_system.values():
            for rank, doc_id in enumerate(ranked):
                best[doc_id] = min(rank, best.get(doc_id, rank))
        doc_ids = sorted(best, key=lambda d: (best[d], d))
        pooled[q["id"]] = {"query_id": q["id"], "doc_ids": doc_ids, "by_system": by_system}
    return pooled


def write_pool(corpus: str, depth: int = 20) -> Path:
    pooled = pool(corpus, depth=depth)
    path = HERE / f"pool_{corpus}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for row in pooled.values():
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.relevance.baselines")
    sub = parser.add_subparsers(dest="command", required=True)
    p_pool = sub.add_parser("pool", help="write tests/relevance/pool_<corpus>.jsonl")
    p_pool.add_argument("--corpus", choices=("helpdesk", "public"), required=True)
    p_pool.add_argument("--depth", type=int, default=20)
    p_run = sub.add_parser("run", help="print one system's results for one query")
    p_run.add_argument("--corpus", choices=("helpdesk", "public"), required=True)
    p_run.add_argument("--system", choices=SYSTEMS, required=True)
    p_run.add_argument("--query", required=True)
    p_run.add_argument("--depth", type=int, default=20)
    args = parser.parse_args(argv)
    if args.command == "pool":
        path = write_pool(args.corpus, args.depth)
        rows = read_jsonl(path)
        sizes = [len(r["doc_ids"]) for r in rows]
        print(f"wrote {path.relative_to(ROOT)}: {len(rows)} queries, "
              f"{sum(sizes)} pooled documents (mean {sum(sizes) / max(1, len(sizes)):.1f} per query)")
        return 0
    ranked = run_system(args.system, args.corpus, [{"id": "q", "query": args.query}], args.depth)["q"]
    for rank, doc_id in enumerate(ranked, start=1):
        print(f"{rank:2d}. {doc_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

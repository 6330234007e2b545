"""The PostgreSQL search backend (``SEARCH_BACKEND = "postgres"``).

What is stored: one row per published case in ``search_documents`` (made by this module with
``CREATE TABLE IF NOT EXISTS``; rebuildable index data, not a source of truth, so no migration):

    case_id     the case
    tsv_words   the terms of the project's own analysis (app/search/analysis.py: Sudachi words and
                their compound parts at the same position, NFKC + case + long-vowel folding,
                version shorthands), weighted by field: A title and tags, B resolution, C the rest
    tsv_ngram   the distinct character bigrams of Latin, digit and katakana runs (no positions)
    tags        tag keys (``analysis.tag_key``) for the tag filter
    norm_text   the case's text in ``analysis.normalise``d form, for quoted phrases
    signature   what ``search check`` compares with the database (``sync.signature``)

Terms are written by this code as tsvector/tsquery literals: PostgreSQL's text search parser and
dictionaries are never used, so the index and the queries agree with the Whoosh backend term for
term. GIN indexes serve ``@@`` (and the tag array); where the ``rum`` extension is available a RUM
index on ``tsv_words`` also gives ranked top-N for very broad queries (see ``RUM_MIN_HITS``).

When rows are written: in the SAME transaction as the case change. ``sync.queue_case`` records the
case in the session; just before the commit (``before_commit``) the case rows are locked, the
documents are computed from the session's final state and upserted (or deleted when the case is
no longer published). So there is nothing to sync between servers: every server reads the one
table, and a case change and its search document commit or roll back together. (No outbox row is
written in this mode; switching back to Whoosh needs ``flask search reindex``.)

Permission: every statement that computes hits, counts, facets, statistics, similar cases or
suggestions joins ``cases`` and applies ``policy.scope_clause(scope)`` (the very clause of
``policy.visible_cases_clause``) plus ``state = 'published'``, taken from the live case rows, so a
change of visibility, consent, neighbours or state applies at once, whatever the document says.
Ranking: ``ts_rank`` looks only at the document and the query (term frequencies, positions,
weights, length), so one case can never change another's rank. The idf-like weights that combine
words (and the informative-word rule, the n-gram fallback decision, the similar-cases choice) come
from ``count(*)`` statements that carry the same permission clause: statistics over the reader's
visible cases only, as the Whoosh backend does (issue 7).

Cost (bench/pg_search_bench.py): a search is at most four statements that read cases: every count
the plan needs (one GIN bitmap scan per distinct tsquery, all joined once to the reader's cases),
a second count only for a word whose units fall back to bigrams, the facets, the ranking. Tests of
one column are merged into one tsquery; sequential scans are discouraged per statement (a seq
scan tests @@ on every row's TOASTed vector); rows are narrow (``toast_tuple_target``) so bitmap
scans read few pages; each hit's vector is detoasted once (``sd_w``) and every ts_rank of the score
reads that copy. What is left grows with the reader's cases: each statement reads them (~1 us a
case), and ranking detoasts every hit (~3 us a hit).
"""
from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime

from sqlalchemy import (Column, DateTime, Float, Integer, MetaData, Numeric, Table, Text, and_, case as sql_case,
                        cast, false, func, literal, literal_column, or_, select, text, true, union_all)
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY, TSVECTOR, insert as pg_insert
from sqlalchemy.orm import Session, selectinload

from app import policy
from app.db_statistics import refresh_statistics
from app.extensions import db
from app.models import Case, CaseState, Category
from app.search import querying
from app.search.analysis import ANALYSIS_VERSION, bigrams, has_bigrams, normalise, tag_key, words

log = logging.getLogger(__name__)

metadata = MetaData()   # not db.metadata: create_all and Alembic never see these tables
documents = Table(
    "search_documents", metadata,
    Column("case_id", Integer, primary_key=True),
    Column("tsv_words", TSVECTOR, nullable=False),
    Column("tsv_ngram", TSVECTOR, nullable=False),
    Column("tags", ARRAY(Text), nullable=False),
    Column("norm_text", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("indexed_at", DateTime(timezone=True), nullable=False),
)
state_table = Table("search_state", metadata, Column("name", Text, primary_key=True), Column("value", Text))
# The words of the word column that a suggestion (「もしかして」) compares the typed word with: added
# as documents are written, never removed there (a word left from a removed case is looked up and
# found in none of the reader's cases, like any other); a reindex makes it exact again.
vocabulary_table = Table("search_vocabulary", metadata, Column("word", Text, primary_key=True))

_DDL = [
    """CREATE TABLE IF NOT EXISTS search_documents (
        case_id integer PRIMARY KEY,
        tsv_words tsvector NOT NULL,
        tsv_ngram tsvector NOT NULL,
        tags text[] NOT NULL DEFAULT '{}',
        norm_text text NOT NULL DEFAULT '',
        signature text NOT NULL DEFAULT '',
        indexed_at timestamptz NOT NULL DEFAULT now()) WITH (toast_tuple_target = 128)""",
    # Narrow rows: every long value (vectors, text) kept out of line in the TOAST table, so the
    # heap is ~130 bytes a row (17 MB -> 1.3 MB at 10,000 cases). A GIN bitmap scan then reads a
    # few pages instead of one per hit (the counts and hit lists read case_id only; the vectors
    # are fetched once per hit, for ranking). Set on a table made by an earlier version as well;
    # rows already written become narrow when rewritten (``search reindex``).
    """DO $$ BEGIN
        IF NOT coalesce((SELECT 'toast_tuple_target=128' = ANY(reloptions) FROM pg_class
                         WHERE oid = 'search_documents'::regclass), false) THEN
            ALTER TABLE search_documents SET (toast_tuple_target = 128);
        END IF;
    END $$""",
    "CREATE INDEX IF NOT EXISTS search_documents_words ON search_documents USING gin (tsv_words)",
    "CREATE INDEX IF NOT EXISTS search_documents_ngram ON search_documents USING gin (tsv_ngram)",
    "CREATE INDEX IF NOT EXISTS search_documents_tags ON search_documents USING gin (tags)",
    "CREATE TABLE IF NOT EXISTS search_state (name text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS search_vocabulary (word text PRIMARY KEY)",
]
_RUM_DDL = "CREATE INDEX IF NOT EXISTS search_documents_words_rum ON search_documents USING rum (tsv_words rum_tsvector_ops)"
_LOCK_KEY = 7_341_205_113   # pg_advisory_xact_lock key for DDL and rebuilds

# ts_rank: weights for {D, C, B, A} = {unused, body, resolution, title and tags}: PostgreSQL's own
# defaults (so RUM's ``<=>`` weighs fields the same way); normalisation 1 = divided by
# 1 + log(length). Chosen on the graded relevance sets: the Whoosh ratios 1 : 2 : 3 scored lower
# (help-desk nDCG@10 0.939 vs 0.952, public sentences 0.797 vs 0.826); normalisation 0, 2 and 8 too.
WORD_WEIGHTS = "{0.1,0.2,0.4,1.0}"
NGRAM_WEIGHTS = "{1.0,1.0,1.0,1.0}"
NORMALISATION = 1
FIELD_SCALE = 3.0          # the title weight: makes an exact title match worth what Whoosh gives it
MAX_POSITION = 16383
MAX_POSITIONS_PER_LEXEME = 255
MAX_LEXEME_BYTES = 2000
BATCH = 500
RUM_MIN_HITS = 5000        # with rum: broader relevance queries rank a pre-selected pool
RUM_POOL = 1000


class SearchTableMissing(RuntimeError):
    message = ("検索用の表がまだ作られていないため、いまは検索できません。管理者が索引を作り直すまでお待ちください"
               "（flask --app app search reindex）。相談や事例の登録はこのまま続けられます。")


# --- lexemes and documents ----------------------------------------------------------------------

def lexeme(term: str) -> str:
    """A tsvector/tsquery literal for one term, taken as is (no parser, no dictionary)."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _usable(term: str) -> bool:
    return bool(term) and len(term.encode("utf-8")) <= MAX_LEXEME_BYTES


def words_vector(fields: list[tuple[str, str]]) -> str:
    """``fields``: (weight letter, text) in order; every word and its parts get the word's position."""
    positions: dict[str, list[str]] = {}
    position = 0
    for weight, value in fields:
        for word in words(value):
            position = min(position + 1, MAX_POSITION)
            for term in dict.fromkeys([word.text, *word.parts]):
                if not _usable(term):
                    continue
                found = positions.setdefault(term, [])
                entry = f"{position}{weight}"
                if len(found) < MAX_POSITIONS_PER_LEXEME and (not found or found[-1] != entry):
                    found.append(entry)
    return " ".join(f"{lexeme(t)}:{','.join(p)}" for t, p in positions.items())


def ngram_vector(value: str) -> str:
    return " ".join(lexeme(g) for g in dict.fromkeys(bigrams(value)) if _usable(g))


def document_row(case: Case) -> dict:
    from app.search.sync import case_document, signature

    doc = case_document(case)
    return {
        "case_id": case.id,
        "tsv_words": words_vector([("A", doc["title"]), ("B", doc["resolution"]), ("C", doc["body"])]),
        "tsv_ngram": ngram_vector(doc["ngram"]),
        "tags": [t for t in doc["tag"].split(",") if t],
        "norm_text": normalise(" ".join(part or "" for part in (case.title, case.issue, case.environment,
                                                                     case.cause, case.resolution))),
        "signature": signature(case),
    }


# --- the tables --------------------------------------------------------------------------------

_ready: set[str] = set()
_ready_lock = threading.Lock()


def _engine_key() -> str:
    return str(db.engine.url)


def rum_available(connection) -> bool:
    return connection.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'rum'")).first() is not None


def rum_installed(connection) -> bool:
    return connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'rum'")).first() is not None


def ensure_tables() -> None:
    """Create the tables and indexes once per database (own transaction, under an advisory lock);
    add the RUM index when the extension is available and may be installed."""
    key = _engine_key()
    if key in _ready:
        return
    with _ready_lock:
        if key in _ready:
            return
        with db.engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            for statement in _DDL:
                connection.execute(text(statement))
            if connection.scalar(select(state_table.c.value).where(state_table.c.name == "vocabulary")) is None:
                _fill_vocabulary(connection)   # documents written before the vocabulary table existed
        if not _rum_wanted():
            # an index made while it was wanted would still be chosen by the planner
            with db.engine.begin() as connection:
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
                connection.execute(text("DROP INDEX IF EXISTS search_documents_words_rum"))
        else:
            try:
                with db.engine.begin() as connection:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
                    if rum_available(connection):
                        connection.execute(text("CREATE EXTENSION IF NOT EXISTS rum"))
                        connection.execute(text(_RUM_DDL))
            except Exception as error:   # not allowed to install it: GIN alone does everything
                log.warning("rum extension not used: %s", str(error).splitlines()[0])
        _ready.add(key)


def _fill_vocabulary(connection) -> None:
    """The vocabulary of every document in the table (``ts_stat`` reads all of them: seconds at
    100,000 cases), under the caller's lock; marks it complete."""
    from app.search.suggest import MIN_CHARS

    # TRUNCATE, not DELETE: writers adding words wait for the table, not for rows deleted here
    # while this waits for theirs (a deadlock)
    connection.execute(text("TRUNCATE search_vocabulary"))
    connection.execute(text(
        "INSERT INTO search_vocabulary (word) SELECT word FROM ts_stat('SELECT tsv_words FROM search_documents') "
        "WHERE length(word) >= :n ORDER BY word"), {"n": MIN_CHARS - 1})
    _set_state(connection, "vocabulary", str(time.time()))


def _add_to_vocabulary(session_or_connection, case_ids: list[int]) -> None:
    """The words of these documents that the vocabulary does not have yet. In word order, so two
    writers adding the same new words wait for each other instead of deadlocking; an existing
    word is neither locked nor written."""
    from app.search.suggest import MIN_CHARS

    session_or_connection.execute(text(
        "INSERT INTO search_vocabulary (word) SELECT DISTINCT word FROM search_documents, "
        "unnest(tsvector_to_array(tsv_words)) AS word WHERE case_id = ANY(:ids) AND length(word) >= :n "
        "ORDER BY word ON CONFLICT DO NOTHING"), {"ids": list(case_ids), "n": MIN_CHARS - 1})


def _rum_wanted() -> bool:
    from flask import current_app

    return bool(current_app.config.get("SEARCH_USE_RUM", False))


def forget_tables() -> None:
    _ready.clear()
    _built.clear()
    _rum_cache.clear()


def _table_exists() -> bool:
    return bool(db.session.scalar(text("SELECT to_regclass('search_documents') IS NOT NULL")))


def _state(name: str) -> str | None:
    try:
        return db.session.scalar(select(state_table.c.value).where(state_table.c.name == name))
    except Exception:
        db.session.rollback()
        return None


def _set_state(connection_or_session, name: str, value: str) -> None:
    statement = pg_insert(state_table).values(name=name, value=value)
    connection_or_session.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"value": value}))


def is_built() -> bool:
    """Whether the table holds every case (a reindex ran, or it was made when no case was
    published) with terms of this version of the analysis."""
    return _table_exists() and _state("analysis") == str(ANALYSIS_VERSION)


def outdated() -> bool:
    return _table_exists() and _state("analysis") not in (None, str(ANALYSIS_VERSION))


def ready() -> None:
    """Raise ``SearchTableMissing`` unless the table may be searched. A database without published
    cases gets its (empty, complete) table here."""
    if is_built():
        ensure_tables()   # once per process: the RUM index follows SEARCH_USE_RUM
        return
    if not outdated() and _covers_every_case():
        ensure_tables()
        with db.engine.begin() as connection:
            _set_state(connection, "analysis", str(ANALYSIS_VERSION))
        return
    raise SearchTableMissing()


def _covers_every_case(session=None) -> bool:
    """Whether every published case has its document (a new installation: the table was made by
    the first write, or there is nothing to search yet)."""
    session = session or db.session
    uncovered = select(Case.id).where(Case.state == CaseState.PUBLISHED.value).limit(1)
    if session.scalar(text("SELECT to_regclass('search_documents') IS NOT NULL")):
        uncovered = uncovered.where(~select(documents.c.case_id).where(documents.c.case_id == Case.id).exists())
    return session.execute(uncovered).first() is None


# --- writing in the case's transaction -------------------------------------------------------

PENDING = "search_documents_pending"


def queue(case_id: int) -> None:
    db.session.info.setdefault(PENDING, set()).add(case_id)


def write_documents(session: Session, case_ids: list[int], vocabulary: bool = True) -> int:
    """Upsert the documents of these cases (delete those no longer published), in ``session``'s
    transaction, with the case rows locked so a concurrent rebuild cannot write an older state.
    Their new words go to the vocabulary, unless ``vocabulary`` is false (a reindex, which makes
    the whole vocabulary at its end)."""
    written = 0
    for start in range(0, len(case_ids), BATCH):
        ids = sorted(case_ids[start:start + BATCH])
        session.execute(select(Case.id).where(Case.id.in_(ids)).order_by(Case.id).with_for_update())
        cases = {c.id: c for c in session.scalars(
            select(Case).where(Case.id.in_(ids)).options(selectinload(Case.tags), selectinload(Case.category)))}
        rows = [document_row(c) for c in cases.values() if c.state == CaseState.PUBLISHED.value]
        gone = [i for i in ids if i not in cases or cases[i].state != CaseState.PUBLISHED.value]
        if rows:
            _upsert(session, rows)
            if vocabulary:
                _add_to_vocabulary(session, [r["case_id"] for r in rows])
        if gone:
            session.execute(documents.delete().where(documents.c.case_id.in_(gone)))
        written += len(rows)
    return written


def _upsert(session_or_connection, rows: list[dict]) -> None:
    statement = pg_insert(documents).values([
        {"case_id": r["case_id"], "tsv_words": cast(r["tsv_words"], TSVECTOR), "tsv_ngram": cast(r["tsv_ngram"], TSVECTOR),
         "tags": r["tags"], "norm_text": r["norm_text"], "signature": r["signature"], "indexed_at": func.now()}
        for r in rows])
    excluded = statement.excluded
    session_or_connection.execute(statement.on_conflict_do_update(index_elements=["case_id"], set_={
        "tsv_words": excluded.tsv_words, "tsv_ngram": excluded.tsv_ngram, "tags": excluded.tags,
        "norm_text": excluded.norm_text, "signature": excluded.signature, "indexed_at": excluded.indexed_at}))


def flush_pending(session: Session) -> None:
    """``before_commit``: write the documents of the cases this transaction changed."""
    ids = session.info.pop(PENDING, None)
    if not ids:
        return
    session.flush()
    ensure_tables()
    write_documents(session, sorted(ids))
    key = _engine_key()
    if key not in _built:
        state = session.scalar(select(state_table.c.value).where(state_table.c.name == "analysis"))
        if state is None and _covers_every_case(session):
            _set_state(session, "analysis", str(ANALYSIS_VERSION))   # complete from the start
        elif state == str(ANALYSIS_VERSION):
            _built.add(key)


_built: set[str] = set()


# --- rebuild and check -------------------------------------------------------------------------

@dataclass
class Report:
    documents: int = 0
    replayed: int = 0
    seconds: float = 0.0
    generation: str = "postgres"


PARALLEL_MIN = 2000        # published cases from which a reindex with procs > 1 forks workers
WORKER_TIMEOUT_SECONDS = 60


def reindex(batch: int = BATCH, progress=None, procs: int = 1) -> Report:
    """Recompute every published case's document, a batch per transaction (searches go on with
    the old rows meanwhile; concurrent edits are serialised by the case row locks), then remove
    the rows of cases no longer published, and mark the table built.

    With ``procs`` > 1 and at least ``PARALLEL_MIN`` cases, that many forked processes (the
    dictionary is shared) each take the next batch (``_reindex_worker``) and write it with their own
    database connection and transaction, as the loop here would: the analysis is most of a
    reindex's time (at 100,000 cases ~110 s of Python against ~40 s of the database's own work)."""
    started = time.monotonic()
    ensure_tables()
    db.session.commit()
    report = Report()
    ids = list(db.session.scalars(select(Case.id).where(Case.state == CaseState.PUBLISHED.value).order_by(Case.id)))
    db.session.commit()
    batches = [ids[start:start + batch] for start in range(0, len(ids), batch)]
    if procs > 1 and len(ids) >= PARALLEL_MIN:
        report.documents = _write_in_workers(batches, procs, progress)
    else:
        for ids_of_batch in batches:
            report.documents += write_documents(db.session, ids_of_batch, vocabulary=False)
            db.session.commit()
            for loaded in [o for o in db.session.identity_map.values() if isinstance(o, Case)]:
                db.session.expunge(loaded)   # memory stays flat; the caller's other objects stay attached
            if progress:
                progress(report.documents)
    db.session.execute(documents.delete().where(~select(Case.id).where(
        Case.id == documents.c.case_id, Case.state == CaseState.PUBLISHED.value).exists()))
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    _fill_vocabulary(db.session)   # the words of removed cases go too
    _set_state(db.session, "analysis", str(ANALYSIS_VERSION))
    db.session.commit()
    # Fresh statistics for the planner, for the cases too: after a bulk load they said 129
    # published cases where there were 14,000 (see _execute_on_indexes). The vacuum makes the
    # join of the reader's cases an index-only scan at once (app/db_statistics.py).
    refresh_statistics("search_documents", "cases")
    report.seconds = time.monotonic() - started
    return report


class ReindexWorkerFailed(RuntimeError):
    pass


def _reindex_worker(app, batches: list[list[int]], next_batch, results) -> None:
    """A forked worker: takes the next batch number from ``next_batch`` (shared), writes that
    batch in its own transaction and puts ``("done", n)``; at the end ``("ok", 0)``, or
    ``("error", traceback)``. The batches themselves came with the fork: nothing is sent through a
    pipe that a failed reindex would leave half-written."""
    import gc
    import traceback

    gc.freeze()   # what the parent held is never garbage here: the collector need not walk it
    try:
        with app.app_context():
            # The parent's pooled connections were copied by the fork: forget them (without
            # closing them, which would end the parent's sessions) and connect anew.
            db.engine.dispose(close=False)
            while True:
                with next_batch.get_lock():
                    number = next_batch.value
                    next_batch.value += 1
                if number >= len(batches):
                    break
                written = write_documents(db.session, batches[number], vocabulary=False)
                db.session.commit()
                db.session.expunge_all()
                results.put(("done", written))
            db.session.remove()
        results.put(("ok", 0))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _write_in_workers(batches: list[list[int]], procs: int, progress) -> int:
    import multiprocessing
    import queue as queue_module

    from flask import current_app

    from app.search.analysis import words as analyse

    analyse("準備")   # the dictionary is loaded here once, so the forked workers share it
    context = multiprocessing.get_context("fork")
    next_batch, results = context.Value("q", 0), context.Queue()
    app = current_app._get_current_object()
    workers = [context.Process(target=_reindex_worker, args=(app, batches, next_batch, results), daemon=True)
               for _ in range(procs)]
    for worker in workers:
        worker.start()
    written, finished = 0, 0
    try:
        while finished < procs:
            # A worker killed without a word (out of memory, a signal) stops the reindex at once:
            # it may have died holding the lock the others wait on for their next batch.
            killed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if killed:
                raise ReindexWorkerFailed(f"a reindex worker was stopped (exit codes {killed})")
            try:
                status, detail = results.get(timeout=1)
            except queue_module.Empty:
                if all(not w.is_alive() for w in workers):
                    try:   # the last message may still be in the pipe
                        status, detail = results.get(timeout=5)
                    except queue_module.Empty:
                        raise ReindexWorkerFailed("the reindex workers stopped without a result") from None
                else:
                    continue
            if status == "error":
                raise ReindexWorkerFailed(detail)
            if status == "ok":
                finished += 1
                continue
            written += detail
            if progress:
                progress(written)
    finally:
        for worker in workers:
            if worker.is_alive() and finished < procs:
                worker.terminate()
            worker.join(WORKER_TIMEOUT_SECONDS)
        results.cancel_join_thread()
        results.close()
    return written


def indexed_signatures() -> dict[int, str]:
    return dict(db.session.execute(select(documents.c.case_id, documents.c.signature)).all())


# --- searching: a query as SQL -----------------------------------------------------------------

def _tsq(query: str):
    return cast(literal(query, Text), TSQUERY)


def _rank(column, weights: str, query: str):
    return cast(func.ts_rank(literal_column(f"'{weights}'::float4[]"), column, _tsq(query), NORMALISATION), Float)


def _idf(count: int, df: int) -> float:
    return math.log(max(count, 1) / (df + 1)) + 1


@dataclass
class _Unit:
    """One word as the index knows it: its exact form, its compound parts, longer words that start
    with it, or its bigrams."""

    text: str
    parts: tuple[str, ...] = ()

    @property
    def prefix(self) -> bool:
        return has_bigrams(self.text) and len(self.text) >= querying.PREFIX_MIN_CHARS and not self.text.isdigit()

    @property
    def grams(self) -> list[str]:
        if has_bigrams(self.text) and len(self.text) > 1 and not self.text.isdigit():
            return list(dict.fromkeys(bigrams(self.text, normalised=True)))
        return []

    def word_query(self) -> str:
        own = lexeme(self.text) + (":*" if self.prefix else "")
        if not self.parts:
            return own
        parts = " & ".join(_Unit(p).word_query() for p in self.parts)
        return f"{own} | ( {parts} )"


@dataclass(frozen=True)
class _Cond:
    """A match condition as a tree of ``@@`` tests: ``("atom", column, tsquery)`` with column ``w``
    (tsv_words) or ``g`` (tsv_ngram), ``("or"/"and", children)``, or ``("false",)``. Rendered
    twice: on the table's columns (so the GIN indexes answer it) and on the row's detoasted copies
    (inside score expressions). Tests of one column under one AND/OR become ONE tsquery (the same
    boolean, one index scan and one detoast instead of several)."""

    op: str
    column: str = ""
    query: str = ""
    children: tuple = ()


_FALSE = _Cond("false")


def _atom(column: str, query: str) -> _Cond:
    return _Cond("atom", column, query)


def _any(*children: _Cond) -> _Cond:
    return _Cond("or", children=tuple(children))


def _all(*children: _Cond) -> _Cond:
    return _Cond("and", children=tuple(children))


def _simplify(cond: _Cond) -> _Cond:
    if cond.op in ("atom", "false"):
        return cond
    children: list[_Cond] = []
    for child in map(_simplify, cond.children):
        children += child.children if child.op == cond.op else [child]
    if cond.op == "or":
        children = [c for c in children if c.op != "false"]
        if not children:
            return _FALSE
    elif any(c.op == "false" for c in children):
        return _FALSE
    joiner = " | " if cond.op == "or" else " & "
    merged: dict[str, list[str]] = {}
    order: list[object] = []
    for child in children:
        if child.op == "atom":
            if child.column not in merged:
                merged[child.column] = []
                order.append(child.column)
            merged[child.column].append(child.query)
        else:
            order.append(child)
    result = []
    for item in order:
        if isinstance(item, str):
            queries = list(dict.fromkeys(merged[item]))
            result.append(_atom(item, queries[0] if len(queries) == 1 else joiner.join(f"( {q} )" for q in queries)))
        else:
            result.append(item)
    return result[0] if len(result) == 1 else _Cond(cond.op, children=tuple(result))


def _render(cond: _Cond, columns: dict):
    if cond.op == "atom":
        return columns[cond.column].op("@@")(_tsq(cond.query))
    if cond.op == "false":
        return false()
    parts = [_render(c, columns) for c in cond.children]
    return or_(*parts) if cond.op == "or" else and_(*parts)


def _execute_on_indexes(statement, *, merge_joins: bool = True, index_scans: bool = True, parallel: bool = True,
                        nested_loops: bool = True):
    """Run ``statement`` with sequential scans (and, when asked, merge joins, plain index scans,
    parallel workers) discouraged for this one statement. The planner prices ``@@`` as a cheap
    operator, so for a word in a quarter or more of the documents it prefers reading the whole
    table, where every row's TOASTed vector is fetched and decompressed (~2 us a row); the GIN
    bitmap scan finds the same rows without touching the vectors. (The counts: a merge join sorted
    every word's rows, hashing the reader's cases once is cheaper, and parallel workers only cost
    on a loaded server. Similar cases: a plain index scan of the primary key tested @@ on every
    row.) JIT is off too: with sequential scans disabled an estimate can pass jit_above_cost, and
    compiling took ~100 ms for a statement that runs in 15. The settings are transaction-local
    and put back at once (a failed statement ends the transaction, which drops them anyway).
    They change plans, never results."""
    settings = {"enable_seqscan": "off", "jit": "off"}
    if not merge_joins:
        settings["enable_mergejoin"] = "off"
    if not index_scans:
        settings["enable_indexscan"] = "off"
    if not parallel:
        settings["max_parallel_workers_per_gather"] = "0"
    if not nested_loops:
        # Statements that join every match of a word to the reader's cases: when the estimate of
        # the reader's cases is far too low (statistics not yet updated after a bulk load), a
        # nested loop ran each word's bitmap scan again for every case — 145 s and 14 GB in one
        # backend for 「システム」 at 20,000 cases (the load test's PostgreSQL was killed for
        # memory). A hash join is right at any size.
        settings["enable_nestloop"] = "off"
    names = list(settings)
    reads = ", ".join(f"current_setting('{n}')" for n in names)
    sets = ", ".join(f"set_config('{n}', '{v}', true)" for n, v in settings.items())
    previous = db.session.execute(text(f"SELECT {reads}, {sets}")).one()[:len(names)]
    result = db.session.execute(statement)
    restore = ", ".join(f"set_config('{n}', :v{i}, true)" for i, n in enumerate(names))
    db.session.execute(text(f"SELECT {restore}"), {f"v{i}": v for i, v in enumerate(previous)})
    return result


TABLE_COLUMNS = {"w": documents.c.tsv_words, "g": documents.c.tsv_ngram}
# A hit's vectors, detoasted once by the inner statement (``setweight`` with no lexemes is a copy):
# every ts_rank and @@ of the score then reads memory instead of fetching and decompressing the
# TOASTed value again (which cost ~2 us per call and row).
ROW_COLUMNS = {"w": literal_column("sd_w", TSVECTOR), "g": literal_column("sd_g", TSVECTOR)}


def _detoasted(column):
    return func.setweight(column, literal_column("'A'"), literal_column("'{}'::text[]"), type_=TSVECTOR)


def on_table(cond: _Cond):
    """The condition on search_documents' columns (for WHERE: served by the GIN indexes)."""
    return _render(_simplify(cond), TABLE_COLUMNS)


def on_row(cond: _Cond):
    """The condition on the detoasted copies ``sd_w``/``sd_g`` (inside score expressions)."""
    return _render(_simplify(cond), ROW_COLUMNS)


@dataclass
class _Compiled:
    match: _Cond
    score: object


class Planner:
    """Turns parsed words into SQL (match conditions and score expressions) for one reader's scope,
    after counting, over that reader's visible cases only, what the plan depends on."""

    def __init__(self, scope: policy.CaseScope):
        self.scope = scope
        self.count = 0
        self.stats: dict[tuple, int] = {}
        self._units: dict[tuple, _Compiled] = {}
        self.uses_ngram = False   # a score or condition reads the bigram vector

    def row_vectors(self) -> list:
        """The detoasted copies the score expressions read (``sd_w``, and ``sd_g`` when needed)."""
        vectors = [_detoasted(documents.c.tsv_words).label("sd_w")]
        if self.uses_ngram:
            vectors.append(_detoasted(documents.c.tsv_ngram).label("sd_g"))
        return vectors

    # the FROM and WHERE every statement shares: the documents of cases this reader may see
    def visible(self, *columns):
        return (select(*columns).select_from(documents.join(Case, Case.id == documents.c.case_id))
                .where(Case.state == CaseState.PUBLISHED.value, policy.scope_clause(self.scope)))

    def _run_counts(self, wanted: dict[tuple, _Cond | None]) -> None:
        """Count, in ONE statement, the reader's documents matching each condition (None: all of
        them). Each distinct condition is one GIN bitmap scan of search_documents (its case ids);
        all of them meet the reader's cases (published, the policy's clause) in one join, where
        those cases are read and hashed once."""
        keys = [k for k in wanted if k not in self.stats]
        if not keys:
            return
        branches: dict[object, int] = {}
        selects = []
        for key in keys:
            cond = wanted[key]
            canonical = _simplify(cond) if cond is not None else None
            if canonical is not None and canonical.op == "false":
                continue
            if canonical not in branches:
                branches[canonical] = len(branches)
                statement = select(literal(branches[canonical], Integer).label("k"), documents.c.case_id)
                if canonical is not None:
                    statement = statement.where(_render(canonical, TABLE_COLUMNS))
                selects.append(statement)
        counts: dict[int, int] = {}
        if selects:
            matches = (union_all(*selects) if len(selects) > 1 else selects[0]).subquery("matches")
            counts = dict(_execute_on_indexes(
                select(matches.c.k, func.count()).select_from(matches.join(Case, Case.id == matches.c.case_id))
                .where(Case.state == CaseState.PUBLISHED.value, policy.scope_clause(self.scope))
                .group_by(matches.c.k), merge_joins=False, parallel=False, nested_loops=False).all())
        for key in keys:
            cond = wanted[key]
            canonical = _simplify(cond) if cond is not None else None
            index = branches.get(canonical)
            self.stats[key] = int(counts.get(index, 0)) if index is not None else 0

    def prepare(self, query_words: list[querying.QueryWord]) -> None:
        """Count, in one statement (more when a word is not found as a word), what the plan of
        these words needs."""
        units = {u.text: u for w in query_words for u in self._units_of(w)}
        for unit in list(units.values()):
            for part in unit.parts:
                units.setdefault(part, _Unit(part))
        wanted: dict[tuple, _Cond | None] = {("all",): None}
        for unit in units.values():
            wanted[("exact", unit.text)] = _atom("w", lexeme(unit.text))
            wanted[("unit", unit.text, unit.parts)] = _atom("w", unit.word_query())
            if unit.prefix:
                wanted[("prefix", unit.text)] = _atom("w", lexeme(unit.text) + ":*")
        # A word of several units (a synonym group, a run split by the dictionary) matches as its
        # units do, which the counts above decide. Counted here as if every unit were found as a
        # word: right whenever none of them falls back to its bigrams (a unit found in none of the
        # reader's cases matches none of them either way); otherwise counted again below.
        guesses = {self._word_key(w): self._word_as_words(w) for w in query_words
                   if self._word_key(w) and ("word", self._word_key(w)) not in self.stats}
        for key, guess in guesses.items():
            wanted[("guess", key)] = guess
        self._run_counts(wanted)
        self.count = self.stats[("all",)]
        # A unit's bigrams count only where the unit is not found as a word (``unit``,
        # ``unit_count``, ``_matches_as_words``): counted then, not for every word (a common
        # word's bigrams were a sixth of the rows every search counted).
        self._run_counts({("ngram", u.text): _atom("g", " & ".join(lexeme(g) for g in u.grams))
                          for u in units.values() if u.grams and not (self.stats[("unit", u.text, u.parts)]
                                                                      and self.stats.get(("unit", u.text, ())))})
        for w in query_words:
            key = self._word_key(w)
            if key in guesses and self._matches_as_words(w):
                self.stats[("word", key)] = self.stats[("guess", key)]
        # the other word-level counts need their own statement
        extra = {("word", self._word_key(w)): self.word(w).match
                 for w in query_words if self._word_key(w) and ("word", self._word_key(w)) not in self.stats}
        self._run_counts(extra)

    @staticmethod
    def _word_as_words(word: querying.QueryWord) -> _Cond:
        """What ``word(word).match`` is when every unit of the word is found as a word."""
        return _any(*[_all(*[_atom("w", _Unit(t).word_query()) for t in member]) for member in word.members])

    def _matches_as_words(self, word: querying.QueryWord) -> bool:
        """Whether ``word(word).match`` selects, among the reader's cases, what ``_word_as_words``
        does: each unit is found as a word (the same test), or matches nothing (FALSE there, a test
        that finds none of the reader's cases here); not when a unit falls back to its bigrams."""
        for member in word.members:
            for t in member:
                unit = _Unit(t)
                if ("unit", t, ()) not in self.stats:
                    return False
                if not self.stats[("unit", t, ())] and unit.grams and self.stats.get(("ngram", t), 0):
                    return False
        return True

    @staticmethod
    def _units_of(word: querying.QueryWord) -> list[_Unit]:
        if not word.members:
            return [_Unit(word.text, tuple(word.parts))]
        return [_Unit(t) for member in word.members for t in member]

    @staticmethod
    def _word_key(word: querying.QueryWord):
        if not word.members:
            return None   # a single unit: its count is the unit's
        return (word.text, word.synonym, tuple(tuple(m) for m in word.members))

    # --- one unit ------------------------------------------------------------------------------
    def unit(self, unit: _Unit) -> _Compiled:
        key = (unit.text, unit.parts)
        if key in self._units:
            return self._units[key]
        found = self.stats.get(("unit", unit.text, unit.parts), 0)
        if found:
            exact_df = self.stats.get(("exact", unit.text), 0)
            score = literal(0.0, Float)
            if exact_df:
                score = _idf(self.count, exact_df) * FIELD_SCALE * _rank(ROW_COLUMNS["w"], WORD_WEIGHTS,
                                                                         lexeme(unit.text))
            if unit.parts:
                parts = [self.unit(_Unit(p)) for p in unit.parts]
                if all(self.stats.get(("unit", p, ()), 0) or self.stats.get(("ngram", p), 0) for p in unit.parts):
                    together = on_row(_all(*[p.match for p in parts]))
                    score = score + querying.PARTS_WEIGHT * sql_case(
                        (together, sum((p.score for p in parts[1:]), parts[0].score) / len(parts)), else_=0.0)
            if unit.prefix and self.stats.get(("prefix", unit.text), 0) > exact_df:
                longer = (querying.PREFIX_WEIGHT * _idf(self.count, self.stats[("prefix", unit.text)]) * FIELD_SCALE
                          * _rank(ROW_COLUMNS["w"], WORD_WEIGHTS, lexeme(unit.text) + ":*"))
                score = func.greatest(score, longer)
            compiled = _Compiled(_atom("w", unit.word_query()), score)
        elif unit.grams and self.stats.get(("ngram", unit.text), 0):
            # no visible case has it as a word: all of its bigrams (never for a number)
            grams = unit.grams
            self.uses_ngram = True
            compiled = _Compiled(
                _atom("g", " & ".join(lexeme(g) for g in grams)),
                querying.NGRAM_WEIGHT * _idf(self.count, self.stats[("ngram", unit.text)])
                * _rank(ROW_COLUMNS["g"], NGRAM_WEIGHTS, " | ".join(lexeme(g) for g in grams)))
        else:
            compiled = _Compiled(_FALSE, literal(0.0, Float))
        self._units[key] = compiled
        return compiled

    def unit_count(self, unit: _Unit) -> int:
        found = self.stats.get(("unit", unit.text, unit.parts), 0)
        if found:
            return found
        return self.stats.get(("ngram", unit.text), 0) if unit.grams else 0

    # --- one query word ------------------------------------------------------------------------
    def word(self, word: querying.QueryWord) -> _Compiled:
        if not word.members:
            return self.unit(_Unit(word.text, tuple(word.parts)))
        matches, scores = [], []
        for index, member in enumerate(word.members):
            compiled = [self.unit(_Unit(t)) for t in member]
            if len(compiled) == 1:
                match, score = compiled[0].match, compiled[0].score
            else:
                match = _all(*[c.match for c in compiled])
                score = sql_case((on_row(match), sum((c.score for c in compiled[1:]), compiled[0].score)), else_=0.0)
            if index and word.synonym:
                score = querying.SYNONYM_WEIGHT * score
            matches.append(match)
            scores.append(score)
        return _Compiled(_any(*matches), scores[0] if len(scores) == 1 else func.greatest(*scores))

    def word_count(self, word: querying.QueryWord) -> int:
        key = self._word_key(word)
        if key is None:
            return self.unit_count(_Unit(word.text, tuple(word.parts)))
        return self.stats.get(("word", key), 0)

    def word_weight(self, word: querying.QueryWord) -> float:
        return math.log((self.count + 1) / (self.word_count(word) + 0.5))

    # --- the query -----------------------------------------------------------------------------
    def hit_condition(self, query_words: list[querying.QueryWord]):
        """At least one informative word (not in most of the reader's cases); when every word is
        that common, all of them (querying.hit_mask)."""
        limit = querying.COMMON_SHARE * self.count
        useful = [self.word(w).match for w in query_words if self.word_count(w) <= limit]
        if useful:
            return _any(*useful)
        return _all(*[self.word(w).match for w in query_words])

    def flagged(self, hit, query_words: list[querying.QueryWord]):
        """The hits (a subquery with the detoasted vectors) with each query word's match tested once
        per hit (``m0``, ``m1``, ...), as a subquery that is not flattened (OFFSET 0): the score and
        the covered share read these flags instead of testing every word again (a test and a
        ts_rank per word and hit were most of a ranking)."""
        flags = [on_row(self.word(w).match).label(f"m{i}") for i, w in enumerate(query_words)]
        flagged = select(hit, *flags).select_from(hit).offset(0).subquery("flagged")
        return flagged, [flagged.c[f"m{i}"] for i in range(len(query_words))]

    def ranked_score(self, query_words: list[querying.QueryWord], flags: list | None = None):
        """querying.ranked_scores: the words' scores summed, times the covered share of the query's
        weight to a power. ``flags``: each word's match per hit (``flagged``); a word's score counts
        only where it matches, as in Whoosh (where the bigrams of a word not found as a word count
        only when all of them are there), and is not computed elsewhere. Without flags (one word,
        which every hit matches) the score alone."""
        compiled = [self.word(w) for w in query_words]
        if flags is None:
            if len(query_words) != 1:
                raise ValueError("several words are scored with their match flags")
            return query_words[0].weight * compiled[0].score
        scores = [w.weight * sql_case((flag, c.score), else_=0.0) for w, c, flag in zip(query_words, compiled, flags)]
        total = sum(scores[1:], scores[0])
        if len(query_words) < 2:
            return total
        weights = [w.weight * max(self.word_weight(w), 0.05) for w in query_words]
        covered = sum((sql_case((flag, weight), else_=0.0) for weight, flag in zip(weights[1:], flags[1:])),
                      sql_case((flags[0], weights[0]), else_=0.0)) / sum(weights)
        return total * func.power(covered, querying.COVERAGE_POWER)


# --- the search itself -------------------------------------------------------------------------

def _published_key():
    return func.floor(func.extract("epoch", func.coalesce(Case.published_at, Case.created_at)))


def _owner(scope: policy.CaseScope):
    from app.search.sync import ANONYMOUS, PREFECTURE

    municipality = func.coalesce(cast(Case.municipality_id, Text), PREFECTURE)
    if scope.everything:
        return municipality
    return sql_case((Case.anonymous.is_(True), ANONYMOUS), else_=municipality)


def _day_start(day: date) -> datetime:
    from app.search.service import JST

    return datetime.combine(day, dtime.min, JST)


def _filters(params, scope) -> dict[str, object]:
    from datetime import timedelta

    filters: dict[str, object] = {}
    if params.category:
        filters["category"] = Category.slug == params.category
    if params.tag:
        filters["tag"] = documents.c.tags.contains([tag_key(params.tag)])
    if params.municipality:
        filters["municipality"] = _owner(scope) == str(params.municipality)
    if params.kind:
        filters["kind"] = Case.kind == params.kind
    if params.date_from or params.date_to:
        published = func.coalesce(Case.published_at, Case.created_at)
        conditions = []
        if params.date_from:
            conditions.append(published >= _day_start(params.date_from))
        if params.date_to:
            conditions.append(published < _day_start(params.date_to + timedelta(days=1)))
        filters["period"] = and_(*conditions)
    return filters


@dataclass
class Found:
    ids: list[int]
    scores: dict[int, float]
    total: int
    unfiltered: int
    facets: dict[str, Counter] = field(default_factory=dict)


def search(scope: policy.CaseScope, parsed: querying.ParsedQuery, params, wanted: int) -> tuple[Found, Planner]:
    """Hits, counts and facets of one search, all computed by SQL that applies the reader's scope."""
    planner = Planner(scope)
    planner.prepare(parsed.words + parsed.phrase_words)
    matches = []
    if parsed.words:
        matches.append(planner.hit_condition(parsed.words))
    for word in parsed.phrase_words:
        matches.append(planner.word(word).match)
    # one tree: the tests of one column become one tsquery (one GIN scan)
    conditions = []
    if matches:
        tree = _simplify(_all(*matches))
        if tree.op == "false":   # no word of the query is in the reader's cases: nothing to ask
            return Found([], {}, 0, 0, {"category": Counter(), "municipality": Counter(), "kind": Counter()}), planner
        conditions.append(on_table(tree))
    for phrase in parsed.phrases:
        conditions.append(func.strpos(documents.c.norm_text, phrase) > 0)
    filters = _filters(params, scope)

    def base(*columns):
        return (planner.visible(*columns).join(Category, Category.id == Case.category_id)
                .where(*conditions))

    # totals and facets: each facet with every filter but its own
    def flags(names):
        chosen = [c for n, c in filters.items() if n in names]
        return and_(*chosen) if chosen else true()

    everything = flags(filters)
    owner = _owner(scope)
    facet_rows = _execute_on_indexes(base(
        Category.slug.label("slug"), owner.label("owner"), Case.kind.label("kind"),
        func.count().filter(flags([n for n in filters if n != "category"])).label("for_category"),
        func.count().filter(flags([n for n in filters if n != "municipality"])).label("for_municipality"),
        func.count().filter(flags([n for n in filters if n != "kind"])).label("for_kind"),
        func.count().filter(everything).label("total"),
        func.count().label("unfiltered"),
    ).group_by(Category.slug, owner, Case.kind), nested_loops=False).all()
    total = sum(r.total for r in facet_rows)
    unfiltered = sum(r.unfiltered for r in facet_rows)
    category, municipality, kind = Counter(), Counter(), Counter()
    for r in facet_rows:
        if r.for_category:
            category[r.slug] += r.for_category
        if r.for_municipality:
            municipality[r.owner] += r.for_municipality
        if r.for_kind:
            kind[r.kind] += r.for_kind
    found = Found([], {}, total, unfiltered, {"category": category, "municipality": municipality, "kind": kind})
    if not total:
        return found, planner
    key = _published_key()
    if params.sort == "newest" or not parsed.words:
        rows = db.session.execute(base(Case.id).where(everything).order_by(key.desc(), Case.id).limit(wanted)).all()
        found.ids = [r.id for r in rows]
        return found, planner
    from app.search.service import superseded_ids

    # A superseded case (a newer case this reader may read replaces it) comes after all others.
    demoted = sql_case((Case.id.in_(superseded_ids(planner.scope)), 1), else_=0)
    # The hits (found by the GIN indexes, in the reader's scope, filtered) with their vectors
    # detoasted once and each word's match tested once; the score is then computed on those by
    # the outer statement.
    for word in parsed.words:
        planner.word(word)   # compiled first: whether the bigram vector is needed (row_vectors)
    inner = base(Case.id.label("id"), key.label("key"), demoted.label("demoted"), *planner.row_vectors()).where(everything)
    if total > RUM_MIN_HITS and rum_in_use():
        pool = _rum_pool(planner, parsed, everything, base)
        inner = inner.where(Case.id.in_(pool))
    hit = inner.offset(0).subquery("hit")   # OFFSET 0: not flattened, so each vector is detoasted once
    if len(parsed.words) == 1:   # every hit matches the one word
        scored, score = hit, planner.ranked_score(parsed.words)
    else:
        scored, flags = planner.flagged(hit, parsed.words)
        score = planner.ranked_score(parsed.words, flags)
    score = func.round(cast(score, Numeric), 6)
    rows = _execute_on_indexes(select(scored.c.id, score.label("score")).select_from(scored)
                              .order_by(scored.c.demoted, score.desc(), scored.c.key.desc(), scored.c.id)
                              .limit(wanted)).all()
    found.ids = [r.id for r in rows]
    found.scores = {r.id: float(r.score) for r in rows}
    return found, planner


_rum_cache: dict[str, bool] = {}


def rum_in_use() -> bool:
    key = _engine_key()
    if key not in _rum_cache:
        _rum_cache[key] = bool(db.session.scalar(text(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'search_documents_words_rum'")))
    return _rum_cache[key]


def _rum_pool(planner: Planner, parsed: querying.ParsedQuery, everything, base):
    """With rum: the RUM index returns the visible hits nearest to the query's words in its own
    order (``<=>``), without scoring every hit; the engine's score then orders this pool."""
    terms = []
    for word in parsed.words:
        for unit in planner._units_of(word):
            if planner.stats.get(("unit", unit.text, unit.parts), 0):
                terms.append(lexeme(unit.text) + (":*" if unit.prefix else ""))
    if not terms:
        return base(Case.id).where(everything).scalar_subquery()
    distance = documents.c.tsv_words.op("<=>", return_type=Float)(_tsq(" | ".join(dict.fromkeys(terms))))
    return base(Case.id).where(everything).order_by(distance).limit(RUM_POOL).scalar_subquery()


def similar(scope: policy.CaseScope, parsed: querying.ParsedQuery, limit: int, exclude: int | None):
    """service.similar_cases on SQL: the rarest words of the text among the reader's cases, cases
    sharing at least two of them (one for a short text), ranked like a search."""
    from app.search.service import SIMILAR_MAX_WORDS

    words = parsed.words[:SIMILAR_MAX_WORDS]   # as the Whoosh backend: the first words (the title first)
    planner = Planner(scope)
    planner.prepare(words)
    if planner.count == 0:
        return [], {}
    counts = {id(w): planner.word_count(w) for w in words}
    related = querying.related_words(words, counts, planner.count)
    chosen = related.chosen
    if not chosen:
        return [], {}
    matches = [planner.word(w).match for w in chosen]   # compiled first: whether row_vectors needs the bigrams
    inner = planner.visible(Case.id.label("id"), _published_key().label("key"), *planner.row_vectors()).where(
        on_table(_sharing(matches, related.informative, related.least)))
    if exclude is not None:
        inner = inner.where(Case.id != exclude)
    hit = inner.offset(0).subquery("hit")   # OFFSET 0: not flattened, so each vector is detoasted once
    scored, flags = planner.flagged(hit, chosen)
    shared = sum((sql_case((flag, 1), else_=0) for flag in flags[1:]), sql_case((flags[0], 1), else_=0))
    score = func.round(cast(planner.ranked_score(chosen, flags), Numeric), 6)
    statement = select(scored.c.id, score.label("score")).select_from(scored).where(shared >= related.least)
    rows = _execute_on_indexes(statement.order_by(score.desc(), scored.c.key.desc(), scored.c.id).limit(limit),
                               index_scans=False).all()
    return [r.id for r in rows], {r.id: float(r.score) for r in rows}


def _sharing(matches: list[_Cond], informative: list[bool], least: int) -> _Cond:
    """The related cases' rule as a condition the GIN index answers: at least one of the matches
    flagged ``informative``, and at least ``least`` (1 or 2) of all of them — any pair with an
    informative one, when every condition is a test of the same column (then the pairs are one
    tsquery, one index scan). The index then leaves out the cases that were read, detoasted and
    scored only to be dropped: sharing one word, or only words in most of the reader's cases
    (for a sentence at 100,000 synthetic cases 64,000 rows, most of a second). Otherwise (a word
    found only by its bigrams: pairs across columns would be a scan per pair) any informative
    one, and the caller's count of shared words keeps the rest of the rule."""
    simplified = [_simplify(m) for m in matches]
    if least <= 1 or any(m.op != "atom" for m in simplified) or len({m.column for m in simplified}) != 1:
        return _any(*[m for m, flag in zip(matches, informative) if flag])
    return _any(*[_all(simplified[i], simplified[j]) for i, j in itertools.combinations(range(len(matches)), 2)
                  if informative[i] or informative[j]])


# --- 「もしかして」 ------------------------------------------------------------------------------

_vocabulary_cache: dict[str, tuple[tuple, list[str]]] = {}


class Probe:
    """What suggest.py asks of the index, answered over the reader's visible cases."""

    def __init__(self, planner: Planner):
        self.planner = planner

    def vocabulary(self) -> list[str]:
        """Katakana and Latin words of the word column (the same for every reader, as in Whoosh;
        which are offered is decided from the reader's cases): the ``search_vocabulary`` table,
        read again when it has grown or a reindex rebuilt it."""
        from app.search.suggest import MIN_CHARS

        stamp = tuple(db.session.execute(select(
            select(func.count()).select_from(vocabulary_table).scalar_subquery(),
            select(state_table.c.value).where(state_table.c.name == "vocabulary").scalar_subquery())).one())
        key = _engine_key()
        cached = _vocabulary_cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
        terms = db.session.scalars(select(vocabulary_table.c.word)
                                   .where(func.length(vocabulary_table.c.word) >= MIN_CHARS - 1)).all()
        found = sorted(t for t in terms if has_bigrams(t) and not t.isdigit())
        _vocabulary_cache[key] = (stamp, found)
        return found

    def word_count(self, word: querying.QueryWord) -> int:
        self.planner.prepare([word])
        return self.planner.word_count(word)

    def exact_counts(self, terms: list[str]) -> dict[str, int]:
        """Of each term, the reader's cases that have it as a word: one statement for all."""
        self.planner._run_counts({("exact", term): _atom("w", lexeme(term)) for term in terms})
        return {term: self.planner.stats[("exact", term)] for term in terms}

    def case_with(self, term: str) -> int | None:
        condition = documents.c.tsv_words.op("@@")(_tsq(lexeme(term)))
        return db.session.scalar(self.planner.visible(func.min(Case.id)).where(condition))

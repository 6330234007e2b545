"""Keeping the index equal to the database.

Services call ``queue_case(case)`` in the transaction that changes the case. After the commit,
``apply_pending()`` (run at the end of every request and CLI command, and before searches when
work is waiting, and every few seconds in each gunicorn worker) takes the index's cross-process
write lock, reads each queued case's *current* state from the database and updates or deletes its
document. A failure leaves the rows pending, with the error recorded, to be retried; nothing is
lost and the database stays the truth.

Several servers, each with its own index directory, share one database: every index is a
*consumer* of the outbox with its own position (``SearchConsumer``), so work queued through server
A reaches server B's index too (applied by B's next request, search or background sync).
"""
from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from filelock import Timeout
from flask import current_app
from sqlalchemy import delete, event, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.extensions import db
from app.models import Case, CaseState, SearchConsumer, SearchConsumerMark, SearchOutbox, as_utc, utcnow
from app.search.analysis import tag_key
from app.search.bulk import bulk_writer
from app.search.index import SearchIndex, get_index

log = logging.getLogger(__name__)

BATCH = 500                          # cases loaded from the database at a time
BULK = 20_000                        # outbox rows per Whoosh commit (one merge per commit)
PARALLEL_BULK = 100_000              # ... when several processes write (each commit adds a segment each)
PARALLEL_MIN = 2_000                 # cases from which a queue is written by several processes
RETENTION = timedelta(days=2)
CONSUMER_TTL = timedelta(days=7)     # an index not seen for longer is forgotten (rebuild it)
CONSUMER_FILE = "consumer"
PREFECTURE = "pref"
ANONYMOUS = "anon"


def current_index() -> SearchIndex:
    return get_index(current_app.config["SEARCH_INDEX_DIR"])


class IndexUnavailable(RuntimeError):
    """The index is gone (its directory deleted or emptied) and cannot be refilled from the queue."""

    message = ("検索索引が見つからないため、いまは検索できません。管理者が索引を作り直すまでお待ちください"
               "（flask --app app search reindex）。相談や事例の登録はこのまま続けられます。")

    def __init__(self, root: str = ""):
        super().__init__(f"search index missing at {root}: run `flask search reindex`")


def _queue_covers_every_case() -> bool:
    """Whether every published case has index work still queued: an empty index that replays the
    queue is then complete (a new installation, a test). Once old work was forgotten it is not."""
    uncovered = select(Case.id).where(
        Case.state == CaseState.PUBLISHED.value,
        ~select(SearchOutbox.id).where(SearchOutbox.case_id == Case.id).exists()).limit(1)
    return db.session.execute(uncovered).first() is None


def ready_index(index: SearchIndex | None = None) -> SearchIndex:
    """The index, with a generation to read and write. A missing one is made (empty, replaying the
    whole queue) only when that gives every case; otherwise ``IndexUnavailable``: searches say
    so, writes stay queued, and ``search reindex`` restores it."""
    index = index or current_index()
    if index.has_generation():
        return index
    with index.lock():
        if index.has_generation():
            return index
        if not _queue_covers_every_case():
            db.session.rollback()
            raise IndexUnavailable(str(index.root))
        index.create_empty()
        name = _consumer(index).name
        db.session.execute(update(SearchConsumer).where(SearchConsumer.name == name).values(position=0, last_error=""))
        db.session.execute(delete(SearchConsumerMark).where(SearchConsumerMark.consumer == name))
        db.session.commit()
    return index


# --- queueing ---------------------------------------------------------------------------------

def queue_case(case: Case) -> None:
    """Record, in the current transaction, that this case's document must be refreshed. With the
    PostgreSQL backend the document itself is written just before this transaction commits
    (``_write_documents_with_the_change``): no outbox row, nothing to apply later."""
    if case.id is None:
        db.session.flush()
    queue_cases([case.id])


def queue_cases(case_ids: list[int]) -> None:
    """``queue_case`` for stored cases, many at once (an import): one statement, no object per row."""
    from app.search.backend import postgres_active

    if not case_ids:
        return
    if postgres_active():
        from app.search import pg_backend

        for case_id in case_ids:
            pg_backend.queue(case_id)
        return
    db.session.execute(insert(SearchOutbox), [{"case_id": case_id} for case_id in case_ids])
    db.session.info["search_outbox_pending"] = True


@event.listens_for(Session, "before_commit")
def _write_documents_with_the_change(session: Session) -> None:
    """PostgreSQL backend: the search documents of the cases changed in this transaction are
    written in it, so they commit (or roll back) together with the change."""
    if session.info.get("search_documents_pending"):
        from app.search import pg_backend

        pg_backend.flush_pending(session)


@event.listens_for(Session, "after_commit")
def _remember_committed_work(session: Session) -> None:
    if session.info.pop("search_outbox_pending", False):
        session.info["search_outbox_committed"] = True


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_work(session: Session) -> None:
    session.info.pop("search_outbox_pending", None)
    session.info.pop("search_documents_pending", None)


def apply_after_commit(procs: int = 1) -> None:
    """Apply the work this session committed (end of a request or CLI command). Never raises."""
    if not db.session.info.pop("search_outbox_committed", False):
        return
    try:
        apply_pending(procs=procs)
    except IndexUnavailable as error:
        log.warning("index work stays queued: %s", error)
    except Exception:  # the rows stay queued and are retried
        log.exception("search index update failed; it will be retried")


# --- documents --------------------------------------------------------------------------------

_MARKDOWN_NOISE = re.compile(r"```|`|\*\*|__|^#+\s*|^\s*[-*+]\s+|^\s*\d+\.\s+|^\s*>\s?|\|", re.MULTILINE)


def plain_text(markdown_text: str | None) -> str:
    return _MARKDOWN_NOISE.sub(" ", markdown_text or "")


def is_searchable(case: Case | None) -> bool:
    return case is not None and case.state == CaseState.PUBLISHED.value


def signature(case: Case) -> str:
    """What the index must agree with the database on; compared by ``search check``."""
    stamp = as_utc(case.updated_at).isoformat() if case.updated_at else ""
    return f"{stamp}|{case.shared_visibility.value}|{case.anonymous}|{case.municipality_id or PREFECTURE}|{case.category.slug}"


def published_key(case: Case) -> int:
    moment = as_utc(case.published_at or case.created_at)
    return int(moment.timestamp()) if moment else 0


def case_document(case: Case) -> dict:
    tags = [t.name for t in case.tags]
    body = "\n".join(plain_text(getattr(case, f)) for f in ("issue", "environment", "cause"))
    resolution = plain_text(case.resolution)
    return {
        "id": str(case.id),
        "case_id": case.id,
        "title": "\n".join([case.title, *tags]),
        "body": body,
        "resolution": resolution,
        "ngram": "\n".join([case.title, " ".join(tags), body, resolution]),
        "tag": ",".join(tag_key(t) for t in tags),
        "category": case.category.slug,
        "municipality": str(case.municipality_id) if case.municipality_id else PREFECTURE,
        "owner": ANONYMOUS if case.anonymous else (str(case.municipality_id) if case.municipality_id else PREFECTURE),
        "visibility": case.shared_visibility.value,  # never wider than the consent
        "published": published_key(case),
        "signature": signature(case),
    }


def _load_cases(ids: list[int]) -> dict[int, Case]:
    rows = db.session.scalars(
        select(Case).where(Case.id.in_(ids)).options(selectinload(Case.tags), selectinload(Case.category))
    )
    return {case.id: case for case in rows}


def _write(writer, case_ids: list[int]) -> int:
    """The cases' current documents: old ones deleted with one searcher, new ones added; returns
    how many documents were deleted or added. (``update_document`` opened a searcher for every
    case: most of an import's index time.)"""
    cases = _load_cases(case_ids)
    changes = 0
    with writer.searcher() as searcher:
        for case_id in case_ids:
            for docnum in searcher.document_numbers(id=str(case_id)):
                writer.delete_document(docnum)
                changes += 1
    for case_id in case_ids:
        case = cases.get(case_id)
        if is_searchable(case):
            writer.add_document(**case_document(case))
            changes += 1
    return changes


# --- where each index stands -----------------------------------------------------------------

def _is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def consumer_name(index: SearchIndex) -> str:
    """This index directory's name in ``search_consumers`` (made once, kept in the directory, so
    every worker of a server shares it and a new or emptied directory starts afresh)."""
    path = index.root / CONSUMER_FILE
    try:
        name = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        name = ""
    if not name:
        index.root.mkdir(parents=True, exist_ok=True)
        candidate = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:12]}"
        tmp = index.root / f"{CONSUMER_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(candidate, encoding="ascii")
        try:
            os.link(tmp, path)        # the first process to name the directory wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        name = path.read_text(encoding="ascii").strip()
    return name


def _consumer(index: SearchIndex) -> SearchConsumer:
    name = consumer_name(index)
    row = db.session.get(SearchConsumer, name)
    if row is None:
        try:
            with db.session.begin_nested():
                row = SearchConsumer(name=name, location=f"{socket.gethostname()}:{index.root}"[:500], position=0)
                db.session.add(row)
        except IntegrityError:
            row = db.session.get(SearchConsumer, name)
    return row


def _snapshot_xmin() -> int:
    return int(db.session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")))


def current_position() -> int:
    """Where an index built from the database from now on starts: every outbox row before it is
    visible to any read made after this call."""
    if _is_postgres():
        return _snapshot_xmin()
    return int(db.session.scalar(select(func.coalesce(func.max(SearchOutbox.id), 0))))


def _pending_query(consumer: str, position: int):
    """Outbox rows this index has not applied yet."""
    if _is_postgres():
        applied = select(SearchConsumerMark.outbox_id).where(SearchConsumerMark.consumer == consumer,
                                                            SearchConsumerMark.outbox_id == SearchOutbox.id)
        return select(SearchOutbox.id, SearchOutbox.case_id).where(SearchOutbox.txid >= position, ~applied.exists())
    return select(SearchOutbox.id, SearchOutbox.case_id).where(SearchOutbox.id > position)


def _position_of(name: str) -> int:
    return db.session.scalar(select(SearchConsumer.position).where(SearchConsumer.name == name)) or 0


def pending_count(index: SearchIndex | None = None) -> int:
    name = consumer_name(index or current_index())
    query = _pending_query(name, _position_of(name)).subquery()
    return db.session.scalar(select(func.count()).select_from(query)) or 0


def pending_ids(index: SearchIndex | None = None, limit: int = 100) -> list[int]:
    """The oldest outbox rows this index has not applied yet (for the health check)."""
    name = consumer_name(index or current_index())
    query = _pending_query(name, _position_of(name)).order_by(SearchOutbox.id).limit(limit)
    return [row.id for row in db.session.execute(query)]


def pending_exists(older_than_seconds: float = 0, index: SearchIndex | None = None) -> bool:
    """Whether this index has work waiting (optionally: queued at least that long ago, so that a
    search does not race the request that is about to apply its own work)."""
    name = consumer_name(index or current_index())
    query = _pending_query(name, _position_of(name))
    if older_than_seconds:
        query = query.where(SearchOutbox.created_at <= utcnow() - timedelta(seconds=older_than_seconds))
    return db.session.execute(query.limit(1)).first() is not None


# --- applying ---------------------------------------------------------------------------------

def apply_pending(index: SearchIndex | None = None, procs: int = 1, wait: bool = True) -> int:
    """Apply every change this index has not applied yet, under the index's write lock; returns
    how many cases were written.

    Each server's index applies every row itself. A large queue (an import, a category rename)
    goes through one Whoosh writer per ``BULK`` rows, loading ``BATCH`` cases at a time, so that
    it runs at reindex speed instead of merging segments every few hundred cases; from
    ``PARALLEL_MIN`` cases on, with ``procs`` > 1 (CLI commands only: a server's worker threads
    must not fork), that writer uses several processes as a reindex does. ``wait=False``: return
    at once when another thread or process holds the lock (a search page does not queue behind
    a writer that is applying the same work)."""
    from app.search.backend import postgres_active

    if index is None and postgres_active():
        return 0   # the PostgreSQL backend writes documents with the change: nothing is queued
    index = ready_index(index)
    if not pending_exists(index=index):
        return 0
    if index.schema_outdated():
        raise RuntimeError("the search index was built by an older version: run `flask search reindex`")
    written = 0
    postgres = _is_postgres()
    lock = index.lock()
    try:
        lock.acquire(timeout=None if wait else 0)   # None: the lock's own timeout
    except Timeout:
        if wait:
            raise
        return 0   # another worker holds the lock: it is applying the queue now
    try:
        name = _consumer(index).name
        db.session.commit()
        while True:
            position = _position_of(name)
            xmin = _snapshot_xmin() if postgres else 0   # taken before the read: see _move_position
            bulk = PARALLEL_BULK if procs > 1 else BULK
            rows = db.session.execute(_pending_query(name, position).order_by(SearchOutbox.id).limit(bulk)).all()
            if not rows:
                if postgres:
                    _move_position(name, position, xmin)
                db.session.commit()
                break
            complete = len(rows) < bulk   # everything pending at this read; later work waits for the next call
            row_ids = [r.id for r in rows]
            case_ids = sorted({r.case_id for r in rows})
            try:
                with index.writer(procs=procs if len(case_ids) >= PARALLEL_MIN else 1) as writer:
                    changes = sum(_write(writer, case_ids[start:start + BATCH])
                                  for start in range(0, len(case_ids), BATCH))
                    if not changes:
                        # Nothing to write (drafts are never in the index): a commit would still make a
                        # new index version, and every worker would start its caches again.
                        writer.cancel()
            except Exception as error:
                db.session.rollback()
                db.session.execute(update(SearchOutbox).where(SearchOutbox.id.in_(row_ids))
                                   .values(attempts=SearchOutbox.attempts + 1, last_error=str(error)[:2000]))
                db.session.execute(update(SearchConsumer).where(SearchConsumer.name == name)
                                   .values(last_error=str(error)[:2000], seen_at=utcnow()))
                db.session.commit()
                raise
            if postgres:
                db.session.execute(insert(SearchConsumerMark), [{"consumer": name, "outbox_id": i} for i in row_ids])
            else:
                position = row_ids[-1]
            db.session.execute(update(SearchConsumer).where(SearchConsumer.name == name).values(
                position=position, applied_at=utcnow(), seen_at=utcnow(), last_error=""))
            if postgres and complete:
                _move_position(name, position, xmin)
            db.session.commit()
            written += len(case_ids)
            if complete:
                # stop here even while writers keep queueing: the lock is not held forever
                break
        _forget_old_work()
    finally:
        lock.release()
    return written


def _move_position(name: str, old: int, xmin: int) -> None:
    """PostgreSQL: the last read found nothing unapplied, and every transaction below ``xmin``
    (taken before that read) had ended before it, so all their rows were visible to it and are
    applied. The position moves up to ``xmin`` and the marks below it are forgotten."""
    if xmin <= old:
        return
    db.session.execute(update(SearchConsumer).where(SearchConsumer.name == name).values(position=xmin, seen_at=utcnow()))
    passed = select(SearchOutbox.id).where(SearchOutbox.txid < xmin)
    db.session.execute(delete(SearchConsumerMark).where(SearchConsumerMark.consumer == name,
                                                        SearchConsumerMark.outbox_id.in_(passed)))


def _forget_old_work() -> None:
    """Remove rows older than RETENTION that every index seen within CONSUMER_TTL has passed
    (kept that long so that an index rebuilt elsewhere from an older snapshot can catch up)."""
    lowest = db.session.scalar(select(func.min(SearchConsumer.position))
                               .where(SearchConsumer.seen_at >= utcnow() - CONSUMER_TTL))
    if lowest is None:
        return
    passed = SearchOutbox.txid < lowest if _is_postgres() else SearchOutbox.id <= lowest
    db.session.execute(delete(SearchOutbox).where(SearchOutbox.created_at < utcnow() - RETENTION, passed))
    db.session.execute(delete(SearchConsumer).where(SearchConsumer.seen_at < utcnow() - CONSUMER_TTL))
    db.session.commit()


def start_background_sync(app, interval: float) -> threading.Thread | None:
    """Apply other servers' changes to this server's index every ``interval`` seconds (gunicorn
    starts one per worker; the index lock lets one of them work at a time)."""
    if interval <= 0:
        return None

    def run():
        while True:
            time.sleep(interval)
            with app.app_context():
                try:
                    apply_pending()
                except Exception:
                    log.exception("background index sync failed; retrying in %s s", interval)
                finally:
                    db.session.remove()

    thread = threading.Thread(target=run, name="search-sync", daemon=True)
    thread.start()
    return thread


# --- rebuild and check ------------------------------------------------------------------------

@dataclass
class ReindexReport:
    documents: int = 0
    replayed: int = 0
    seconds: float = 0.0
    generation: str = ""


def reindex(index: SearchIndex | None = None, batch: int = 1000, procs: int = 1,
            progress=None) -> ReindexReport:
    """Rebuild the configured backend's index from the database (see ``whoosh_reindex`` and
    ``pg_backend.reindex``)."""
    from app.search.backend import configured_name, get_backend

    if index is None and configured_name() == "postgres":
        return get_backend().reindex(procs=procs, progress=progress)
    return whoosh_reindex(index, batch, procs, progress)


def whoosh_reindex(index: SearchIndex | None = None, batch: int = 1000, procs: int = 1,
                   progress=None) -> ReindexReport:
    """Rebuild from the database into a new generation and switch to it.

    Searches keep using the old generation during the build. Changes committed meanwhile are
    queued in the outbox; they are replayed into the new generation under the write lock just
    before the switch, so none is lost.
    """
    index = index or current_index()
    index.root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    started_at = current_position()   # every change from here on is applied again after the switch
    db.session.commit()
    path = index.new_generation_dir()
    report = ReindexReport(generation=path.name)
    from whoosh import index as whoosh_index

    target = whoosh_index.open_dir(str(path))
    writer = bulk_writer(target, procs)
    # Cases made after the start are in the outbox after ``started_at`` and replayed below: the scan
    # stops at the last case that existed, instead of chasing writers that keep adding cases.
    last_case = db.session.scalar(select(func.coalesce(func.max(Case.id), 0)))
    try:
        last_id = 0
        while True:
            cases = db.session.scalars(
                select(Case)
                .where(Case.state == CaseState.PUBLISHED.value, Case.id > last_id, Case.id <= last_case)
                .order_by(Case.id)
                .limit(batch)
                .options(selectinload(Case.tags), selectinload(Case.category))
            ).all()
            if not cases:
                break
            for case in cases:
                writer.add_document(**case_document(case))
            report.documents += len(cases)
            last_id = cases[-1].id
            for case in cases:  # keep memory flat without detaching the caller's objects
                db.session.expunge(case)
            if progress:
                progress(report.documents)
        writer.commit()
    except BaseException:
        writer.cancel()
        raise
    with index.lock():
        index.switch_to(path)
        name = _consumer(index).name
        db.session.execute(update(SearchConsumer).where(SearchConsumer.name == name).values(
            position=started_at, seen_at=utcnow(), applied_at=utcnow(), last_error=""))
        db.session.execute(delete(SearchConsumerMark).where(SearchConsumerMark.consumer == name))
        db.session.commit()
        # what changed while the new generation was built is applied to it before anyone else writes
        report.replayed = apply_pending(index)
    index.prune_generations()
    report.seconds = time.monotonic() - started
    return report


@dataclass
class CheckReport:
    missing: list[int] = field(default_factory=list)   # searchable in the database, not indexed
    extra: list[int] = field(default_factory=list)     # indexed, but not searchable in the database
    stale: list[int] = field(default_factory=list)     # indexed with an older or different state
    pending: int = 0
    index_missing: bool = False                         # no index at all (deleted): reindex

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.stale or self.index_missing)


def check(index: SearchIndex | None = None) -> CheckReport:
    """Every difference between the configured backend's index and the database."""
    from app.search.backend import configured_name, get_backend

    if index is None and configured_name() == "postgres":
        return get_backend().check()
    return whoosh_check(index)


def _database_signatures() -> dict[int, str]:
    return {case.id: signature(case) for case in db.session.scalars(
        select(Case).where(Case.state == CaseState.PUBLISHED.value).options(selectinload(Case.category)))}


def postgres_check() -> CheckReport:
    """The ``search_documents`` table against the database (no queue: ``pending`` is always 0)."""
    from app.search import pg_backend

    report = CheckReport()
    if not pg_backend.is_built():
        report.index_missing = True
        indexed = pg_backend.indexed_signatures() if pg_backend._table_exists() else {}
    else:
        indexed = pg_backend.indexed_signatures()
    database = _database_signatures()
    report.missing = sorted(set(database) - set(indexed))
    report.extra = sorted(set(indexed) - set(database))
    report.stale = sorted(i for i in set(database) & set(indexed) if database[i] != indexed[i])
    return report


def whoosh_check(index: SearchIndex | None = None) -> CheckReport:
    index = index or current_index()
    report = CheckReport()
    indexed: dict[int, str] = {}
    try:
        searcher = ready_index(index).searcher()
    except IndexUnavailable:
        report.index_missing = True
    else:
        for fields in searcher.all_stored_fields():
            indexed[int(fields["id"])] = fields.get("signature", "")
    database: dict[int, str] = {}
    for case in db.session.scalars(
        select(Case).where(Case.state == CaseState.PUBLISHED.value).options(selectinload(Case.category))
    ):
        database[case.id] = signature(case)
    report.missing = sorted(set(database) - set(indexed))
    report.extra = sorted(set(indexed) - set(database))
    report.stale = sorted(i for i in set(database) & set(indexed) if database[i] != indexed[i])
    report.pending = pending_count(index)
    return report

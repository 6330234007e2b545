"""Keeping the index equal to the database.

Services call ``queue_case(case)`` in the transaction that changes the case. After the commit,
``apply_pending()`` (run at the end of every request and CLI command, and before searches when
work is waiting) takes the cross-process write lock, reads each queued case's *current* state
from the database and updates or deletes its document. A failure leaves the rows pending, with
the error recorded, to be retried; nothing is lost and the database stays the truth.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session, selectinload

from app.extensions import db
from app.models import Case, CaseState, SearchOutbox, as_utc, utcnow
from app.search.analysis import tag_key
from app.search.index import SearchIndex, get_index

log = logging.getLogger(__name__)

BATCH = 500
RETENTION = timedelta(days=2)
PREFECTURE = "pref"
ANONYMOUS = "anon"


def current_index() -> SearchIndex:
    return get_index(current_app.config["SEARCH_INDEX_DIR"])


# --- queueing ---------------------------------------------------------------------------------

def queue_case(case: Case) -> None:
    """Record, in the current transaction, that this case's document must be refreshed."""
    if case.id is None:
        db.session.flush()
    db.session.add(SearchOutbox(case_id=case.id))
    db.session.info["search_outbox_pending"] = True


@event.listens_for(Session, "after_commit")
def _remember_committed_work(session: Session) -> None:
    if session.info.pop("search_outbox_pending", False):
        session.info["search_outbox_committed"] = True


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_work(session: Session) -> None:
    session.info.pop("search_outbox_pending", None)


def apply_after_commit() -> None:
    """Apply the work this session committed (end of a request or CLI command). Never raises."""
    if not db.session.info.pop("search_outbox_committed", False):
        return
    try:
        apply_pending()
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


def _write(writer, case_ids: list[int]) -> None:
    cases = _load_cases(case_ids)
    for case_id in case_ids:
        case = cases.get(case_id)
        if is_searchable(case):
            writer.update_document(**case_document(case))
        else:
            writer.delete_by_term("id", str(case_id))


# --- applying ---------------------------------------------------------------------------------

def pending_exists(older_than_seconds: float = 0) -> bool:
    query = select(SearchOutbox.id).where(SearchOutbox.applied_at.is_(None))
    if older_than_seconds:
        query = query.where(SearchOutbox.created_at <= utcnow() - timedelta(seconds=older_than_seconds))
    return db.session.scalar(query.limit(1)) is not None


def apply_pending(index: SearchIndex | None = None) -> int:
    """Apply every queued change under the write lock; returns how many cases were written."""
    index = index or current_index()
    if not pending_exists():
        return 0
    if index.schema_outdated():
        raise RuntimeError("the search index was built by an older version: run `flask search reindex`")
    written = 0
    with index.lock():
        while True:
            rows = db.session.execute(
                select(SearchOutbox.id, SearchOutbox.case_id)
                .where(SearchOutbox.applied_at.is_(None))
                .order_by(SearchOutbox.id)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            row_ids = [r.id for r in rows]
            case_ids = sorted({r.case_id for r in rows})
            try:
                with index.writer() as writer:
                    _write(writer, case_ids)
            except Exception as error:
                db.session.rollback()
                db.session.execute(
                    update(SearchOutbox)
                    .where(SearchOutbox.id.in_(row_ids))
                    .values(attempts=SearchOutbox.attempts + 1, last_error=str(error)[:2000])
                )
                db.session.commit()
                raise
            db.session.execute(
                update(SearchOutbox).where(SearchOutbox.id.in_(row_ids)).values(applied_at=utcnow())
            )
            db.session.commit()
            written += len(case_ids)
        db.session.execute(
            delete(SearchOutbox).where(SearchOutbox.applied_at.is_not(None),
                                       SearchOutbox.applied_at < utcnow() - RETENTION)
        )
        db.session.commit()
    return written


# --- rebuild and check ------------------------------------------------------------------------

@dataclass
class ReindexReport:
    documents: int = 0
    replayed: int = 0
    seconds: float = 0.0
    generation: str = ""


def reindex(index: SearchIndex | None = None, batch: int = 1000, procs: int = 1,
            progress=None) -> ReindexReport:
    """Rebuild from the database into a new generation and switch to it.

    Searches keep using the old generation during the build. Changes committed meanwhile are
    queued in the outbox; they are replayed into the new generation under the write lock just
    before the switch, so none is lost.
    """
    index = index or current_index()
    index.root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    since = utcnow() - timedelta(seconds=5)
    path = index.new_generation_dir()
    report = ReindexReport(generation=path.name)
    from whoosh import index as whoosh_index

    target = whoosh_index.open_dir(str(path))
    # Segments stay separate files (not one compound file), so that opening a new index version
    # maps the files instead of copying each segment into memory.
    writer = (target.writer(procs=procs, limitmb=256, multisegment=procs > 1, compound=False) if procs > 1
              else target.writer(limitmb=256, compound=False))
    try:
        last_id = 0
        while True:
            cases = db.session.scalars(
                select(Case)
                .where(Case.state == CaseState.PUBLISHED.value, Case.id > last_id)
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
        replay = sorted(set(db.session.scalars(
            select(SearchOutbox.case_id).where(
                (SearchOutbox.created_at >= since) | SearchOutbox.applied_at.is_(None)
            )
        )))
        if replay:
            with index.writer(path.name) as late_writer:
                _write(late_writer, replay)
        report.replayed = len(replay)
        index.switch_to(path)
        db.session.execute(
            update(SearchOutbox).where(SearchOutbox.applied_at.is_(None)).values(applied_at=utcnow())
        )
        db.session.commit()
    index.prune_generations()
    report.seconds = time.monotonic() - started
    return report


@dataclass
class CheckReport:
    missing: list[int] = field(default_factory=list)   # searchable in the database, not indexed
    extra: list[int] = field(default_factory=list)     # indexed, but not searchable in the database
    stale: list[int] = field(default_factory=list)     # indexed with an older or different state
    pending: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.stale)


def check(index: SearchIndex | None = None) -> CheckReport:
    index = index or current_index()
    report = CheckReport()
    indexed: dict[int, str] = {}
    searcher = index.searcher()
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
    report.pending = db.session.query(SearchOutbox).filter(SearchOutbox.applied_at.is_(None)).count()
    return report

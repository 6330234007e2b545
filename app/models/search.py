from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, BigInteger, FetchedValue, DateTime, ForeignKey, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow


class SearchOutbox(db.Model):
    """Index work queued in the same transaction as the change, applied after commit.

    A row says only "case N changed": whoever applies it reads the case's current state from the
    database, so rows can be applied in any order, twice, or by another process, and the index
    still ends up equal to the database. Every index (one per server, ``SearchConsumer``) applies
    every row itself: a row is not "done" for everybody once one server applied it. Rows are
    removed after ``RETENTION`` once every index that was seen recently has passed them.

    ``id`` never goes back (AUTOINCREMENT on SQLite), so an SQLite index's position is the last id
    it applied: SQLite has one writer, so rows become visible in id order. On PostgreSQL rows
    commit out of id order, so each row also records its transaction id (``txid``, filled by the
    database) and an index's position is a transaction snapshot's ``xmin`` (see app/search/sync.py).
    """

    __tablename__ = "search_outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int] = mapped_column(Integer, index=True)
    txid: Mapped[int | None] = mapped_column(BigInteger, index=True, server_default=FetchedValue())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


# PostgreSQL fills txid itself (the model never sets it); SQLite leaves it NULL.
event.listen(SearchOutbox.__table__, "after_create", DDL(
    "ALTER TABLE search_outbox ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint)"
).execute_if(dialect="postgresql"))


class SearchConsumer(db.Model):
    """One search index (a server's index directory) and how far it has applied the outbox:
    ``position`` is the last outbox id applied (SQLite) or the ``xmin`` below which every
    transaction's rows are applied (PostgreSQL; rows at or above it that are applied already are
    listed in ``SearchConsumerMark``)."""

    __tablename__ = "search_consumers"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    location: Mapped[str] = mapped_column(String(500), default="")
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text, default="")


class SearchConsumerMark(db.Model):
    """An outbox row that an index applied while the transactions before it were still open
    (PostgreSQL only): it is not applied twice, and is forgotten once the position passes it."""

    __tablename__ = "search_consumer_marks"

    consumer: Mapped[str] = mapped_column(ForeignKey("search_consumers.name", ondelete="CASCADE"), primary_key=True)
    outbox_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class SearchSynonym(db.Model):
    """A group of words that mean the same (``UTM=統合脅威管理``), applied at query time."""

    __tablename__ = "search_synonyms"

    id: Mapped[int] = mapped_column(primary_key=True)
    terms: Mapped[str] = mapped_column(String(500), unique=True)
    source: Mapped[str] = mapped_column(String(20), default="content")  # content | helpdesk
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def term_list(self) -> list[str]:
        return [t for t in self.terms.split("=") if t]


class SearchMiss(db.Model):
    """A query that found nothing: logged without the user, listed for the help desk."""

    __tablename__ = "search_misses"

    id: Mapped[int] = mapped_column(primary_key=True)
    query: Mapped[str] = mapped_column(String(500), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

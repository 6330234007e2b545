from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow


class SearchOutbox(db.Model):
    """Index work queued in the same transaction as the change, applied after commit.

    A row says only "case N changed": whoever applies it reads the case's current state from the
    database, so rows can be applied in any order, twice, or by another process, and the index
    still ends up equal to the database. Rows stay after they are applied (``applied_at``) for a
    while, so that a reindex running at the same time can replay what happened during it.
    """

    __tablename__ = "search_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


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

"""The life of knowledge after it is published: revisions, readers' reports, reuse links, and the
help desk's settings for tags and categories (rename, merge, retire, review period)."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.models.sharing import Visibility
from app.models.taxonomy import Category, Tag
from app.models.user import User


class CaseRevision(db.Model):
    """One state of a case after a change: its texts, category, tags and sharing, who changed it,
    when, and what (the kinds of change). Numbered from 1 per case."""

    __tablename__ = "case_revisions"
    __table_args__ = (UniqueConstraint("case_id", "number", name="uq_case_revisions_case_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actions: Mapped[str] = mapped_column(String(300), default="", server_default="")   # labels, 「・」-joined
    changed: Mapped[str] = mapped_column(String(300), default="", server_default="")   # field labels, 「・」-joined
    title: Mapped[str] = mapped_column(String(200), default="")
    issue: Mapped[str] = mapped_column(Text, default="")
    environment: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"))
    category_name: Mapped[str] = mapped_column(String(100), default="")
    tags: Mapped[str] = mapped_column(Text, default="")                                 # names, 「、」-joined
    state: Mapped[str] = mapped_column(String(20), default="draft")
    visibility: Mapped[str] = mapped_column(String(20), default="private")
    sharing_consent: Mapped[str] = mapped_column(String(20), default="private")
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    municipality_id: Mapped[int | None] = mapped_column(Integer)

    actor: Mapped[User | None] = relationship()

    @property
    def shared_visibility(self) -> Visibility:
        """How far the case was shared in this revision (the narrower of visibility and consent)."""
        return Visibility.narrower(Visibility(self.visibility), Visibility(self.sharing_consent))

    @property
    def tag_list(self) -> list[str]:
        return [t for t in self.tags.split("、") if t]


class ReportReason(str, enum.Enum):
    OUTDATED = "outdated"
    WRONG = "wrong"
    INCOMPLETE = "incomplete"

    @property
    def label(self) -> str:
        return {"outdated": "内容が古い", "wrong": "誤りがある", "incomplete": "不足している"}[self.value]


class ReportOutcome(str, enum.Enum):
    UPDATED = "updated"          # the case was corrected
    NO_CHANGE = "no_change"      # checked: the case is right as it is
    SUPERSEDED = "superseded"    # a newer case replaces it
    DECLINED = "declined"        # not taken up (with a note)

    @property
    def label(self) -> str:
        return {"updated": "事例を修正しました", "no_change": "確認の結果、変更は不要でした",
                "superseded": "新しい事例に置き換えました", "declined": "対応しないことにしました"}[self.value]


class CaseReport(db.Model):
    """A reader says a case is outdated, wrong or incomplete; the help desk answers with an outcome."""

    __tablename__ = "case_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    outcome: Mapped[str | None] = mapped_column(String(20), index=True)   # None: open
    outcome_note: Mapped[str] = mapped_column(Text, default="", server_default="")
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    reporter: Mapped[User | None] = relationship(foreign_keys=[reporter_id])
    handled_by: Mapped[User | None] = relationship(foreign_keys=[handled_by_id])

    @property
    def reason_enum(self) -> ReportReason:
        return ReportReason(self.reason)

    @property
    def outcome_enum(self) -> ReportOutcome | None:
        return ReportOutcome(self.outcome) if self.outcome else None

    @property
    def is_open(self) -> bool:
        return self.outcome is None


class QuestionCaseRef(db.Model):
    """「この事例について相談する」: the case a question was asked about."""

    __tablename__ = "question_case_refs"

    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)


class TagStatus(db.Model):
    """A tag the help desk retired (no longer offered or accepted) or merged into another (its
    name leads to the other one and stays a search synonym)."""

    __tablename__ = "tag_status"

    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id", ondelete="SET NULL"))

    tag: Mapped[Tag] = relationship(foreign_keys=[tag_id])
    merged_into: Mapped[Tag | None] = relationship(foreign_keys=[merged_into_id])


class CategorySettings(db.Model):
    """Per category: how long a published case stays current before review, and whether the
    category was retired or merged into another."""

    __tablename__ = "category_settings"

    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True)
    review_months: Mapped[int | None] = mapped_column(Integer)   # None: the default for the category
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"))

    category: Mapped[Category] = relationship(foreign_keys=[category_id])
    merged_into: Mapped[Category | None] = relationship(foreign_keys=[merged_into_id])

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.attachment import Attachment, case_attachments
from app.models.base import utcnow
from app.models.municipality import Municipality
from app.models.question import Question
from app.models.sharing import Visibility
from app.models.taxonomy import Category, Tag, case_tags
from app.models.user import User


class CaseState(str, enum.Enum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"

    @property
    def label(self) -> str:
        return {"draft": "下書き", "published": "公開", "archived": "アーカイブ"}[self.value]


class CaseKind(str, enum.Enum):
    """A case comes from a question; an article is written by the help desk directly."""

    CASE = "case"
    ARTICLE = "article"

    @property
    def label(self) -> str:
        return {"case": "事例", "article": "記事"}[self.value]


class ArticleType(str, enum.Enum):
    NOTICE = "notice"
    PROCEDURE = "procedure"
    ADVISORY = "advisory"

    @property
    def label(self) -> str:
        return {"notice": "お知らせ", "procedure": "手順書", "advisory": "注意喚起"}[self.value]


# An article's one text field (its body is kept in ``issue``, so history, masking, the
# sensitive-data check and search treat it like a case's text).
ARTICLE_TEXT_FIELDS = (("issue", "本文"),)

# The KCS-shaped text fields of a case, in display order, with their Japanese labels.
CASE_TEXT_FIELDS = (
    ("issue", "症状・質問"),
    ("environment", "環境"),
    ("cause", "原因"),
    ("resolution", "対応"),
)


class Case(db.Model):
    """Reusable knowledge curated from a resolved question."""

    __tablename__ = "cases"
    # Kind and state together: "the published articles" is asked on every search. With one index
    # each, SQLite (no statistics) could pick the state index and read every published case
    # (425 ms at 1,000,000 cases, on every search).
    #
    # State with the columns of the permission rule (policy.scope_clause): every statement of the
    # PostgreSQL search backend joins "the published cases this reader may see". With the columns a
    # search reads included, PostgreSQL answers that from the index alone (an index-only scan)
    # instead of fetching every published case's row: 60 -> 13 ms a statement at 100,000 cases.
    # SQLite ignores the INCLUDE part. The index on state alone stays: for "these ids, if visible"
    # (a search's hits) SQLite looks up (state, id) in it; with only this index it read every
    # published case instead (1.3 -> 17 ms a page at 100,000 cases).
    __table_args__ = (
        Index("ix_cases_kind_state", "kind", "state"),
        Index("ix_cases_state_scope", "state", "municipality_id", "visibility", "sharing_consent",
              postgresql_include=["id", "category_id", "kind", "anonymous", "published_at", "created_at"]),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    issue: Mapped[str] = mapped_column(Text, default="")
    environment: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"), index=True)
    # None: owned by the prefecture help desk itself.
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    question_id: Mapped[int | None] = mapped_column(
        ForeignKey("questions.id", ondelete="SET NULL"), unique=True
    )
    state: Mapped[str] = mapped_column(String(20), default=CaseState.DRAFT.value, index=True)
    visibility: Mapped[str] = mapped_column(String(20), default=Visibility.PRIVATE.value, server_default="private")
    # The owning municipality's consent to sharing (from the question, or vouched for at import).
    sharing_consent: Mapped[str] = mapped_column(String(20), default="private", server_default="private")
    consent_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consent_changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Hide the owning municipality's name from everyone outside it and the help desk.
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # Review: the day a published case is due to be checked again, and when it last was.
    review_due: Mapped[date | None] = mapped_column(Date, index=True)
    last_reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A newer case that replaces this one (readers who may read it see it first).
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), index=True)
    # "case" (curated from a question) or "article" (お知らせ・手順書・注意喚起, no question, owned by
    # the prefecture); an article's type, null for a case.
    kind: Mapped[str] = mapped_column(String(20), default=CaseKind.CASE.value, server_default="case")
    article_type: Mapped[str | None] = mapped_column(String(20))

    category: Mapped[Category] = relationship()
    municipality: Mapped[Municipality | None] = relationship()
    question: Mapped[Question | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=case_tags, order_by="Tag.name")
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    updated_by: Mapped[User | None] = relationship(foreign_keys=[updated_by_id])
    consent_changed_by: Mapped[User | None] = relationship(foreign_keys=[consent_changed_by_id])
    superseded_by: Mapped[Case | None] = relationship(foreign_keys=[superseded_by_id], remote_side=[id])
    helpful_marks: Mapped[list[CaseHelpful]] = relationship(back_populates="case", cascade="all, delete-orphan")
    attachments: Mapped[list[Attachment]] = relationship(secondary=case_attachments, order_by="Attachment.id")

    @property
    def visibility_enum(self) -> Visibility:
        return Visibility(self.visibility)

    @property
    def consent_enum(self) -> Visibility:
        return Visibility(self.sharing_consent)

    @property
    def shared_visibility(self) -> Visibility:
        """How far the case is actually shared: its visibility, never wider than the owner's
        consent (the services keep the two in order; readers rely on this, not on that)."""
        return Visibility.narrower(self.visibility_enum, self.consent_enum)

    @property
    def shared_beyond_owner(self) -> bool:
        """Published and read by other municipalities: what it carries travels (edits and files
        that would add a sensitive detail are refused)."""
        return self.state == CaseState.PUBLISHED.value and self.shared_visibility is not Visibility.PRIVATE

    @property
    def state_enum(self) -> CaseState:
        return CaseState(self.state)

    @property
    def is_article(self) -> bool:
        return self.kind == CaseKind.ARTICLE.value

    @property
    def kind_label(self) -> str:
        return CaseKind(self.kind or CaseKind.CASE.value).label

    @property
    def article_type_label(self) -> str:
        return ArticleType(self.article_type).label if self.article_type in _ARTICLE_TYPES else ""

    @property
    def text_fields(self) -> tuple[tuple[str, str], ...]:
        """The text fields this kind of entry shows and edits, with their labels."""
        return ARTICLE_TEXT_FIELDS if self.is_article else CASE_TEXT_FIELDS


_ARTICLE_TYPES = {t.value for t in ArticleType}


class CaseHelpful(db.Model):
    """A reader's 「参考になった」 on a case (once per user)."""

    __tablename__ = "case_helpful"
    __table_args__ = (UniqueConstraint("case_id", "user_id", name="uq_case_helpful_case_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="helpful_marks")


class SensitiveName(db.Model):
    """A personal name the help desk lists, flagged by the check before a case is shared."""

    __tablename__ = "sensitive_names"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

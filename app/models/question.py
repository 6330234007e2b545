from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from app.extensions import db
from app.models.base import as_utc, utcnow
from app.models.municipality import Municipality
from app.models.sharing import Visibility
from app.models.taxonomy import Category, Tag, question_tags
from app.models.user import User


class QuestionStatus(str, enum.Enum):
    """Says whose move it is: the help desk's (受付, 対応中) or the municipality's (回答待ち)."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"
    RESOLVED = "resolved"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return {"new": "受付", "in_progress": "対応中", "waiting": "回答待ち", "resolved": "解決",
                "closed": "終了"}[self.value]

    @property
    def whose_move(self) -> str | None:
        """"helpdesk", "municipality", or None once the thread has ended."""
        return {"new": "helpdesk", "in_progress": "helpdesk", "waiting": "municipality"}.get(self.value)

    @classmethod
    def active(cls) -> tuple[str, ...]:
        return (cls.NEW.value, cls.IN_PROGRESS.value, cls.WAITING.value)


class QuestionKind(str, enum.Enum):
    QUESTION = "question"
    INCIDENT = "incident"
    PROCUREMENT = "procurement"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {"question": "質問", "incident": "障害・インシデント", "procurement": "調達・仕様の相談",
                "other": "その他"}[self.value]


class Priority(str, enum.Enum):
    NORMAL = "normal"
    URGENT = "urgent"

    @property
    def label(self) -> str:
        return {"normal": "通常", "urgent": "至急"}[self.value]


class EditablePost:
    """What every post of a thread has: it can be edited (earlier texts kept as revisions) and
    withdrawn (its text gone everywhere; who and when remain)."""

    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @declared_attr
    def withdrawn_by_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    @declared_attr
    def withdrawn_by(cls) -> Mapped[User | None]:
        return relationship(foreign_keys=[cls.withdrawn_by_id])

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None


class Question(EditablePost, db.Model):
    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"), index=True)
    asker_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=QuestionStatus.NEW.value, index=True)
    kind: Mapped[str] = mapped_column(String(20), default=QuestionKind.QUESTION.value, server_default="question")
    priority: Mapped[str] = mapped_column(String(20), default=Priority.NORMAL.value, server_default="normal", index=True)
    urgent_reason: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The help-desk member who owns the question (担当者); None: unassigned.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Time spent 回答待ち (waiting for the municipality) does not count towards response times.
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    waiting_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"))
    sharing_consent: Mapped[str] = mapped_column(String(20), default=Visibility.PRIVATE.value)
    resolved_answer_id: Mapped[int | None] = mapped_column(
        ForeignKey("answers.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    category: Mapped[Category] = relationship()
    asker: Mapped[User] = relationship(foreign_keys=[asker_id])
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    duplicate_of: Mapped[Question | None] = relationship(foreign_keys=[duplicate_of_id], remote_side=[id])
    merged_into: Mapped[Question | None] = relationship(foreign_keys=[merged_into_id], remote_side=[id])
    municipality: Mapped[Municipality] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=question_tags, order_by="Tag.name")
    answers: Mapped[list[Answer]] = relationship(
        back_populates="question", order_by="Answer.id", foreign_keys="Answer.question_id",
        cascade="all, delete-orphan",
    )
    comments: Mapped[list[Comment]] = relationship(
        back_populates="question", order_by="Comment.id", foreign_keys="Comment.question_id",
        cascade="all, delete-orphan",
    )
    resolved_answer: Mapped[Answer | None] = relationship(foreign_keys=[resolved_answer_id], post_update=True)
    notes: Mapped[list[InternalNote]] = relationship(
        back_populates="question", order_by="InternalNote.id", cascade="all, delete-orphan"
    )

    @property
    def consent_enum(self) -> Visibility:
        return Visibility(self.sharing_consent)

    @property
    def status_enum(self) -> QuestionStatus:
        return QuestionStatus(self.status)

    @property
    def kind_enum(self) -> QuestionKind:
        return QuestionKind(self.kind)

    @property
    def priority_enum(self) -> Priority:
        return Priority(self.priority)

    @property
    def is_active(self) -> bool:
        return self.status in QuestionStatus.active()

    def waited_seconds(self, now: datetime | None = None) -> int:
        """Time spent 回答待ち so far (the current wait included)."""
        waited = self.waiting_seconds or 0
        if self.waiting_since is not None:
            waited += int(((now or utcnow()) - as_utc(self.waiting_since)).total_seconds())
        return waited

    @property
    def first_response_seconds(self) -> int | None:
        """From asking to the first public reply of the help desk."""
        if self.first_response_at is None:
            return None
        return int((as_utc(self.first_response_at) - as_utc(self.created_at)).total_seconds())

    @property
    def resolution_seconds(self) -> int | None:
        """From asking to the resolve, without the time spent waiting for the municipality."""
        if self.resolved_at is None:
            return None
        total = int((as_utc(self.resolved_at) - as_utc(self.created_at)).total_seconds())
        return max(0, total - (self.waiting_seconds or 0))


class Answer(EditablePost, db.Model):
    """An answer from the help desk."""

    __tablename__ = "answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The help desk answered with a case of the library (KCS "link"): reuse the reports count.
    linked_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), index=True)

    question: Mapped[Question] = relationship(back_populates="answers", foreign_keys=[question_id])
    author: Mapped[User] = relationship(foreign_keys=[author_id])


class Comment(EditablePost, db.Model):
    """A follow-up on the thread, from the asking municipality or the help desk."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A merged question's text lives on as this comment of the target thread (``merge_into``).
    merged_from_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"), index=True)

    question: Mapped[Question] = relationship(back_populates="comments", foreign_keys=[question_id])
    author: Mapped[User] = relationship(foreign_keys=[author_id])


class InternalNote(EditablePost, db.Model):
    """A help-desk note on a thread (内部メモ): never shown to the municipality, in any form."""

    __tablename__ = "internal_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    question: Mapped[Question] = relationship(back_populates="notes")
    author: Mapped[User] = relationship(foreign_keys=[author_id])


class PostRevision(db.Model):
    """An earlier text of an edited post (the help desk may read it); deleted with a withdrawal."""

    __tablename__ = "post_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_type: Mapped[str] = mapped_column(String(20))     # question, answer, comment, note
    post_id: Mapped[int] = mapped_column(Integer, index=True)
    title: Mapped[str | None] = mapped_column(String(200))  # a question's title before the edit
    body: Mapped[str] = mapped_column(Text)
    edited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    edited_by: Mapped[User | None] = relationship()


class CannedReply(db.Model):
    """A reply text the help desk keeps and inserts into answers (定型文)."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100), unique=True)
    body: Mapped[str] = mapped_column(Text)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    updated_by: Mapped[User | None] = relationship()

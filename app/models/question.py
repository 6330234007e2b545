from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.models.municipality import Municipality
from app.models.sharing import Visibility
from app.models.taxonomy import Category, Tag, question_tags
from app.models.user import User


class QuestionStatus(str, enum.Enum):
    OPEN = "open"
    ANSWERED = "answered"
    RESOLVED = "resolved"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return {"open": "受付中", "answered": "回答済み", "resolved": "解決済み", "closed": "終了（未解決）"}[self.value]


class Question(db.Model):
    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"), index=True)
    asker_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=QuestionStatus.OPEN.value, index=True)
    sharing_consent: Mapped[str] = mapped_column(String(20), default=Visibility.PRIVATE.value)
    resolved_answer_id: Mapped[int | None] = mapped_column(
        ForeignKey("answers.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    category: Mapped[Category] = relationship()
    asker: Mapped[User] = relationship()
    municipality: Mapped[Municipality] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=question_tags, order_by="Tag.name")
    answers: Mapped[list[Answer]] = relationship(
        back_populates="question", order_by="Answer.id", foreign_keys="Answer.question_id",
        cascade="all, delete-orphan",
    )
    comments: Mapped[list[Comment]] = relationship(
        back_populates="question", order_by="Comment.id", cascade="all, delete-orphan"
    )
    resolved_answer: Mapped[Answer | None] = relationship(foreign_keys=[resolved_answer_id], post_update=True)

    @property
    def consent_enum(self) -> Visibility:
        return Visibility(self.sharing_consent)


class Answer(db.Model):
    """An answer from the help desk."""

    __tablename__ = "answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    question: Mapped[Question] = relationship(back_populates="answers", foreign_keys=[question_id])
    author: Mapped[User] = relationship()


class Comment(db.Model):
    """A follow-up on the thread, from the asking municipality or the help desk."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    question: Mapped[Question] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()

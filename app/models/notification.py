"""Notifications, what people follow, the mail queue, and what a reader has seen.

A notification stores *what happened to which object* (kind, question, case, post), never the
text: what a person sees — on the page, in a mail, in a digest — is rendered when it is shown or
sent, after asking the policy whether that person may still read the object.
"""
from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.models.user import User


class NotificationKind(str, enum.Enum):
    NEW_QUESTION = "new_question"          # to the help desk, or the question's owner once assigned
    NEW_POST = "new_post"                  # an answer or comment: asker, watchers, owner
    STATUS = "status"                      # 回答待ち and other status changes
    RESOLVED = "resolved"
    CASE_DRAFTED = "case_drafted"          # a case was drafted from the municipality's question
    CONSENT_REQUEST = "consent_request"    # the help desk asks to widen a case's sharing consent
    CASE_PUBLISHED = "case_published"      # a case in a category or tag the user follows
    ACCOUNT = "account"                    # the user's role or municipality changed
    CASE_REPORT = "case_report"            # a reader reported a case as outdated, wrong or incomplete
    CASE_REPORT_OUTCOME = "case_report_outcome"  # the reporter learns what the help desk did
    EXPERT_REQUEST = "expert_request"      # a request for an expert: filed, proposed, accepted, declined ...

    @property
    def label(self) -> str:
        return {
            "new_question": "新しい相談", "new_post": "回答・コメント", "status": "状態の変更（回答待ちなど）",
            "resolved": "解決", "case_drafted": "相談から事例の下書き", "consent_request": "共有範囲を広げる依頼",
            "case_published": "フォロー中の分類・タグの新しい事例", "account": "自分のアカウントの変更",
            "case_report": "事例への指摘（内容が古い・誤り・不足）", "case_report_outcome": "自分の指摘への対応",
            "expert_request": "専門人材の派遣依頼（依頼・提案・回答・決定）",
        }[self.value]


class Channel(str, enum.Enum):
    APP = "app"          # in the app only
    EMAIL = "email"      # an e-mail at once
    DIGEST = "digest"    # one e-mail a day (07:30)

    @property
    def label(self) -> str:
        return {"app": "画面だけ", "email": "すぐにメール", "digest": "毎朝まとめてメール"}[self.value]


class Notification(db.Model):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    post_type: Mapped[str | None] = mapped_column(String(20))
    post_id: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("consent_requests.id", ondelete="CASCADE"))
    detail: Mapped[str] = mapped_column(String(200), default="", server_default="")  # e.g. a status label
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The daily digest takes notifications of its channel that no digest has sent yet.
    digested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])

    @property
    def kind_enum(self) -> NotificationKind:
        return NotificationKind(self.kind)


class NotificationPreference(db.Model):
    """How a user wants one kind of notification (absent: the kind's default)."""

    __tablename__ = "notification_preferences"
    __table_args__ = (UniqueConstraint("user_id", "kind", name="uq_notification_preferences_user_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str] = mapped_column(String(10))


class Watch(db.Model):
    """Something a user follows: a question (the asker and everyone who posted follow it
    automatically), a category, or a tag."""

    __tablename__ = "watches"
    __table_args__ = (UniqueConstraint("user_id", "target_type", "target_key", name="uq_watches_user_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    target_type: Mapped[str] = mapped_column(String(20))   # question, category, tag
    target_key: Mapped[str] = mapped_column(String(100))   # question id, category slug, tag name
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MailOutbox(db.Model):
    """A mail to send after the commit: one notification (at once) or a user's digest. Rendered
    and checked against the policy when it is sent; retried with growing delays."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    digest_ids: Mapped[str] = mapped_column(Text, default="", server_default="")  # notification ids, comma-separated
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    dropped: Mapped[str] = mapped_column(String(200), default="", server_default="")  # why it was not sent
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")


class QuestionSeen(db.Model):
    """When a user last opened a thread (posts after it are 新着)."""

    __tablename__ = "question_seen"
    __table_args__ = (UniqueConstraint("user_id", "question_id", name="uq_question_seen_user_question"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsentRequest(db.Model):
    """The help desk asks the owning municipality to widen a case's sharing consent; its staff
    accept or decline (from the notification or the case page)."""

    __tablename__ = "consent_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    requested: Mapped[str] = mapped_column(String(20))      # the wider visibility asked for
    reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decision: Mapped[str | None] = mapped_column(String(20))  # accepted, declined
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])


class CaseView(db.Model):
    """A reader opened a case on a day (one per reader per day; not the owner, not bots)."""

    __tablename__ = "case_views"
    __table_args__ = (UniqueConstraint("case_id", "user_id", "day", name="uq_case_views_case_user_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date, index=True)

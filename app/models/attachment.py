from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.models.user import User

# The attachments a case carries: chosen by the help desk from its thread's files, or uploaded
# to the case itself while curating.
case_attachments = Table(
    "case_attachments",
    db.metadata,
    Column("case_id", ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("attachment_id", ForeignKey("attachments.id", ondelete="CASCADE"), primary_key=True),
)


class Attachment(db.Model):
    """A file attached to a post of a thread (the question, an answer, a comment or an internal
    note) or uploaded to a case. Stored under a name the app chooses, outside the web root; the
    type is decided from the content, the name the user gave is kept for display only."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Where it was posted: the thread and, within it, the post ("question", "answer", "comment",
    # "note"); or, for a file uploaded while curating, no thread and post_type "case".
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    post_type: Mapped[str] = mapped_column(String(20))
    post_id: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(100), unique=True)
    has_thumbnail: Mapped[bool] = mapped_column(default=False, server_default="0")
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    uploaded_by: Mapped[User | None] = relationship()

    @property
    def is_image(self) -> bool:
        return self.content_type in ("image/png", "image/jpeg", "image/gif")

    @property
    def is_text(self) -> bool:
        return self.content_type in ("text/plain", "text/csv")

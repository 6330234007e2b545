from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.models.municipality import Municipality


class Role(str, enum.Enum):
    MUNICIPAL = "municipal"
    HELPDESK = "helpdesk"
    VIEWER = "viewer"
    ADMIN = "admin"
    EXPERT = "expert"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.MUNICIPAL: "市町職員",
    Role.HELPDESK: "県ヘルプデスク",
    Role.VIEWER: "閲覧者",
    Role.ADMIN: "管理者",
    Role.EXPERT: "専門人材",
}

ROLES_WITH_MUNICIPALITY = (Role.MUNICIPAL, Role.VIEWER)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True
    )
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # For notification mails (empty: notifications stay in the app).
    email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    # The personal Atom feed's token, stored as its SHA-256 (renewing it ends the old address).
    feed_token_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Changes on password change or disable, so that old sessions stop working.
    session_token: Mapped[str] = mapped_column(String(64))

    municipality: Mapped[Municipality | None] = relationship()
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.is_enabled

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def label(self) -> str:
        return self.display_name or self.username


class ApiToken(db.Model):
    """An API token, stored only as its SHA-256 digest (a random token needs no slow hash)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens")

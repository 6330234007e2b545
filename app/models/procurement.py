"""Structured fields of a procurement case (調達・仕様), one row per case."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.models.case import Case
from app.models.user import User


class SystemCategory(str, enum.Enum):
    CORE = "core"
    INTERNAL = "internal"
    GROUPWARE = "groupware"
    NETWORK = "network"
    SECURITY = "security"
    PC = "pc"
    CLOUD = "cloud"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {"core": "基幹系システム", "internal": "内部情報系システム", "groupware": "グループウェア・メール",
                "network": "ネットワーク・回線", "security": "セキュリティ対策", "pc": "端末（PC・タブレット）",
                "cloud": "クラウドサービス", "other": "その他"}[self.value]


class ProcurementContract(str, enum.Enum):
    PURCHASE = "purchase"
    LEASE = "lease"
    SUBSCRIPTION = "subscription"
    MAINTENANCE = "maintenance"
    OUTSOURCING = "outsourcing"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {"purchase": "買取", "lease": "リース・賃貸借", "subscription": "利用料（クラウド・サブスクリプション）",
                "maintenance": "保守", "outsourcing": "委託", "other": "その他"}[self.value]


class CountUnit(str, enum.Enum):
    USERS = "users"
    DEVICES = "devices"

    @property
    def label(self) -> str:
        return {"users": "利用者", "devices": "台"}[self.value]


# The text fields the sensitive-data check reads, with their labels.
PROCUREMENT_TEXT_FIELDS = (("system_name", "システム・サービス名"), ("vendor", "事業者"),
                           ("spec_items", "主な仕様"))


class ProcurementDetails(db.Model):
    __tablename__ = "procurement_details"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    system_category: Mapped[str] = mapped_column(String(20), default=SystemCategory.OTHER.value, index=True)
    system_name: Mapped[str] = mapped_column(String(200), default="")
    vendor: Mapped[str] = mapped_column(String(200), default="")
    contract_form: Mapped[str] = mapped_column(String(20), default=ProcurementContract.OTHER.value)
    period_months: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)                 # yen, for the whole period
    tax_included: Mapped[bool] = mapped_column(Boolean, default=True)
    count: Mapped[int] = mapped_column(Integer)                  # users or devices
    count_unit: Mapped[str] = mapped_column(String(20), default=CountUnit.USERS.value)
    spec_items: Mapped[str] = mapped_column(Text, default="")
    # What the help desk chose to keep after the check, with the reason (kind: text -> reason).
    kept: Mapped[str] = mapped_column(Text, default="")
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    case: Mapped[Case] = relationship()
    updated_by: Mapped[User | None] = relationship()

    @property
    def system_category_enum(self) -> SystemCategory:
        return SystemCategory(self.system_category)

    @property
    def contract_form_enum(self) -> ProcurementContract:
        return ProcurementContract(self.contract_form)

    @property
    def count_unit_enum(self) -> CountUnit:
        return CountUnit(self.count_unit)

    @property
    def amount_excluding_tax(self) -> int:
        """Tax-included amounts at the 10% consumption tax, rounded down."""
        return self.amount * 10 // 11 if self.tax_included else self.amount

    @property
    def per_unit_per_year(self) -> int | None:
        """Yen per user (or device) per year, excluding tax."""
        if not self.count or not self.period_months:
            return None
        return round(self.amount_excluding_tax * 12 / (self.count * self.period_months))

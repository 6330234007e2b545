"""Shared IT experts (the planning document's second mechanism): the registry, the skills
vocabulary, municipalities' requests, the prefecture's proposals and the agreed assignments with
their cost split."""
from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, ForeignKey, Integer, String, Table, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.models.municipality import Municipality, MunicipalityGroup
from app.models.question import Question
from app.models.user import User


class ExpertKind(str, enum.Enum):
    EXTERNAL = "external"
    RESEARCHER = "researcher"
    SIDE_JOB = "side_job"
    SECONDMENT = "secondment"

    @property
    def label(self) -> str:
        return {"external": "外部専門人材", "researcher": "研究者", "side_job": "兼業・副業",
                "secondment": "出向"}[self.value]


class WorkStyle(str, enum.Enum):
    REMOTE = "remote"
    ONSITE = "onsite"
    BOTH = "both"

    @property
    def label(self) -> str:
        return {"remote": "リモート", "onsite": "現地", "both": "リモート・現地どちらも"}[self.value]

    @property
    def remote(self) -> bool:
        return self in (WorkStyle.REMOTE, WorkStyle.BOTH)

    @property
    def onsite(self) -> bool:
        return self in (WorkStyle.ONSITE, WorkStyle.BOTH)


class ContractForm(str, enum.Enum):
    SPECIAL_PART_TIME = "special_part_time"
    OUTSOURCING = "outsourcing"
    SIDE_JOB = "side_job"

    @property
    def label(self) -> str:
        return {"special_part_time": "特別職非常勤", "outsourcing": "業務委託", "side_job": "兼業"}[self.value]

    @property
    def allocation_eligible(self) -> bool:
        """CIO補佐官 appointed as 特別職非常勤 or engaged by 業務委託: the national measure
        (特別交付税, rate 0.5) covers these two forms."""
        return self in (ContractForm.SPECIAL_PART_TIME, ContractForm.OUTSOURCING)


SKILL_LEVELS = {1: "基礎", 2: "実務", 3: "専門・指導"}


class RequestStatus(str, enum.Enum):
    OPEN = "open"            # waiting for the prefecture to propose someone
    PROPOSED = "proposed"    # a proposal waits for the municipality
    ASSIGNED = "assigned"    # an expert works on it
    CLOSED = "closed"        # finished, or withdrawn by the municipality

    @property
    def label(self) -> str:
        return {"open": "受付", "proposed": "提案中", "assigned": "派遣中", "closed": "終了"}[self.value]


class ProposalStatus(str, enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {"pending": "回答待ち", "accepted": "受諾", "declined": "辞退", "withdrawn": "取り下げ"}[self.value]


expert_regions = Table(
    "expert_regions", db.metadata,
    Column("expert_id", ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("municipality_groups.id", ondelete="CASCADE"), primary_key=True),
)

expert_served = Table(
    "expert_served", db.metadata,
    Column("expert_id", ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True),
    Column("municipality_id", ForeignKey("municipalities.id", ondelete="CASCADE"), primary_key=True),
)


class Skill(db.Model):
    """One word of the skills vocabulary the help desk maintains."""

    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class Expert(db.Model):
    __tablename__ = "experts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    organisation: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20), default=ExpertKind.EXTERNAL.value)
    days_per_month: Mapped[int] = mapped_column(Integer, default=0)
    work_style: Mapped[str] = mapped_column(String(20), default=WorkStyle.BOTH.value)
    # On site anywhere in the prefecture, or only in the listed regions (groups).
    all_regions: Mapped[bool] = mapped_column(Boolean, default=False)
    available_from: Mapped[date | None] = mapped_column(Date)
    available_until: Mapped[date | None] = mapped_column(Date)
    contract_forms: Mapped[str] = mapped_column(String(100), default="")   # ContractForm values, comma-separated
    rate_min: Mapped[int | None] = mapped_column(Integer)                   # yen per day
    rate_max: Mapped[int | None] = mapped_column(Integer)
    # Declared affiliations with vendors, one per line.
    vendor_affiliations: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    user: Mapped[User | None] = relationship()
    skills: Mapped[list[ExpertSkill]] = relationship(back_populates="expert", cascade="all, delete-orphan")
    regions: Mapped[list[MunicipalityGroup]] = relationship(secondary=expert_regions, order_by="MunicipalityGroup.id")
    served: Mapped[list[Municipality]] = relationship(secondary=expert_served, order_by="Municipality.code")

    @property
    def kind_enum(self) -> ExpertKind:
        return ExpertKind(self.kind)

    @property
    def work_style_enum(self) -> WorkStyle:
        return WorkStyle(self.work_style)

    @property
    def contract_form_list(self) -> list[ContractForm]:
        return [ContractForm(v) for v in self.contract_forms.split(",") if v in ContractForm._value2member_map_]

    @property
    def affiliation_list(self) -> list[str]:
        return [line.strip() for line in self.vendor_affiliations.splitlines() if line.strip()]


class ExpertSkill(db.Model):
    __tablename__ = "expert_skills"

    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id", ondelete="RESTRICT"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, default=2)

    expert: Mapped[Expert] = relationship(back_populates="skills")
    skill: Mapped[Skill] = relationship()


class ExpertRequest(db.Model):
    """A municipality's request for an expert (派遣依頼)."""

    __tablename__ = "expert_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True)
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    days_per_month: Mapped[int] = mapped_column(Integer, default=1)
    work_style: Mapped[str] = mapped_column(String(20), default=WorkStyle.BOTH.value)
    budget: Mapped[int | None] = mapped_column(BigInteger)          # yen, for the whole period
    systems: Mapped[str] = mapped_column(Text, default="")
    vendors: Mapped[str] = mapped_column(Text, default="")       # one per line
    status: Mapped[str] = mapped_column(String(20), default=RequestStatus.OPEN.value, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    municipality: Mapped[Municipality] = relationship()
    requester: Mapped[User | None] = relationship()
    question: Mapped[Question | None] = relationship()
    skills: Mapped[list[RequestSkill]] = relationship(back_populates="request", cascade="all, delete-orphan")
    proposals: Mapped[list[ExpertProposal]] = relationship(back_populates="request", order_by="ExpertProposal.id",
                                                           cascade="all, delete-orphan")
    assignment: Mapped[ExpertAssignment | None] = relationship(back_populates="request", uselist=False,
                                                                cascade="all, delete-orphan")
    messages: Mapped[list[RequestMessage]] = relationship(back_populates="request", order_by="RequestMessage.id",
                                                          cascade="all, delete-orphan")

    @property
    def status_enum(self) -> RequestStatus:
        return RequestStatus(self.status)

    @property
    def work_style_enum(self) -> WorkStyle:
        return WorkStyle(self.work_style)

    @property
    def vendor_list(self) -> list[str]:
        return [line.strip() for line in self.vendors.splitlines() if line.strip()]

    @property
    def pending_proposal(self) -> ExpertProposal | None:
        return next((p for p in self.proposals if p.status == ProposalStatus.PENDING.value), None)


class RequestSkill(db.Model):
    __tablename__ = "request_skills"

    request_id: Mapped[int] = mapped_column(ForeignKey("expert_requests.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id", ondelete="RESTRICT"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, default=2)

    request: Mapped[ExpertRequest] = relationship(back_populates="skills")
    skill: Mapped[Skill] = relationship()


class ExpertProposal(db.Model):
    """The prefecture proposes an expert with the terms; the municipality accepts or declines."""

    __tablename__ = "expert_proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("expert_requests.id", ondelete="CASCADE"), index=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id", ondelete="RESTRICT"), index=True)
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)
    days_per_month: Mapped[int] = mapped_column(Integer)
    total_days: Mapped[int] = mapped_column(Integer)
    daily_rate: Mapped[int] = mapped_column(Integer)
    contract_form: Mapped[str] = mapped_column(String(30))
    cio_assistant: Mapped[bool] = mapped_column(Boolean, default=False)
    # "municipality_id:percent,..." as agreed (the requester first).
    split: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default=ProposalStatus.PENDING.value)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decline_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    request: Mapped[ExpertRequest] = relationship(back_populates="proposals")
    expert: Mapped[Expert] = relationship()
    proposed_by: Mapped[User | None] = relationship(foreign_keys=[proposed_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])

    @property
    def status_enum(self) -> ProposalStatus:
        return ProposalStatus(self.status)

    @property
    def contract_form_enum(self) -> ContractForm:
        return ContractForm(self.contract_form)

    @property
    def split_pairs(self) -> list[tuple[int, int]]:
        pairs = []
        for part in self.split.split(","):
            if ":" in part:
                m, p = part.split(":", 1)
                pairs.append((int(m), int(p)))
        return pairs


class ExpertAssignment(db.Model):
    """What the municipality accepted: who, for which period, how many days, at what cost, split how."""

    __tablename__ = "expert_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("expert_requests.id", ondelete="CASCADE"), unique=True)
    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id", ondelete="RESTRICT"), index=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("expert_proposals.id", ondelete="SET NULL"))
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)
    days_per_month: Mapped[int] = mapped_column(Integer)
    total_days: Mapped[int] = mapped_column(Integer)
    daily_rate: Mapped[int] = mapped_column(Integer)
    contract_form: Mapped[str] = mapped_column(String(30))
    cio_assistant: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    request: Mapped[ExpertRequest] = relationship(back_populates="assignment")
    expert: Mapped[Expert] = relationship()
    shares: Mapped[list[AssignmentShare]] = relationship(back_populates="assignment", order_by="AssignmentShare.position",
                                                         cascade="all, delete-orphan")

    @property
    def contract_form_enum(self) -> ContractForm:
        return ContractForm(self.contract_form)

    @property
    def total_cost(self) -> int:
        return self.total_days * self.daily_rate

    @property
    def allocation_eligible(self) -> bool:
        return self.cio_assistant and self.contract_form_enum.allocation_eligible


class AssignmentShare(db.Model):
    __tablename__ = "assignment_shares"
    __table_args__ = (UniqueConstraint("assignment_id", "municipality_id", name="uq_assignment_shares_assignment_municipality"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("expert_assignments.id", ondelete="CASCADE"), index=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id", ondelete="RESTRICT"), index=True)
    percent: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)

    assignment: Mapped[ExpertAssignment] = relationship(back_populates="shares")
    municipality: Mapped[Municipality] = relationship()


class RequestMessage(db.Model):
    """The request's own conversation: the municipality, the prefecture and the assigned expert."""

    __tablename__ = "request_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("expert_requests.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    request: Mapped[ExpertRequest] = relationship(back_populates="messages")
    author: Mapped[User | None] = relationship()

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, String, Table, UniqueConstraint, or_, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

group_members = Table(
    "group_members",
    db.metadata,
    Column("group_id", ForeignKey("municipality_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("municipality_id", ForeignKey("municipalities.id", ondelete="CASCADE"), primary_key=True),
)


class Municipality(db.Model):
    """A city or town (member), or an observer municipality whose staff may only browse."""

    __tablename__ = "municipalities"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    prefecture: Mapped[str] = mapped_column(String(10), default="広島県")
    is_observer: Mapped[bool] = mapped_column(Boolean, default=False)
    # Romanised spellings, space-separated ("shobara syobara"): host names and mail domains carry
    # them (vpn.city.kure.lg.jp), so an anonymous case is checked for them too.
    roman_names: Mapped[str] = mapped_column(String(200), default="", server_default="")

    groups: Mapped[list[MunicipalityGroup]] = relationship(
        secondary=group_members, back_populates="members", order_by="MunicipalityGroup.name"
    )

    def __repr__(self) -> str:
        return f"<Municipality {self.code} {self.name}>"


class MunicipalityGroup(db.Model):
    """A group named in the planning document: joint-use of systems, or a region."""

    __tablename__ = "municipality_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")

    members: Mapped[list[Municipality]] = relationship(
        secondary=group_members, back_populates="groups", order_by="Municipality.code"
    )


class NeighbourLink(db.Model):
    """A symmetric neighbour relation, stored once with the smaller id first."""

    __tablename__ = "neighbour_links"
    __table_args__ = (
        UniqueConstraint("low_id", "high_id", name="uq_neighbour_links_pair"),
        CheckConstraint("low_id < high_id", name="ordered_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    low_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id", ondelete="CASCADE"), index=True)
    high_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id", ondelete="CASCADE"), index=True)

    low: Mapped[Municipality] = relationship(foreign_keys=[low_id])
    high: Mapped[Municipality] = relationship(foreign_keys=[high_id])


# --- who shares with whom (read by the policy and the services) ---------------------------------

def neighbour_ids(municipality_id: int) -> set[int]:
    rows = db.session.execute(
        select(NeighbourLink.low_id, NeighbourLink.high_id).where(
            or_(NeighbourLink.low_id == municipality_id, NeighbourLink.high_id == municipality_id)
        )
    )
    return {high if low == municipality_id else low for low, high in rows}


def neighbour_map() -> dict[int, list[int]]:
    result: dict[int, list[int]] = {}
    for low, high in db.session.execute(select(NeighbourLink.low_id, NeighbourLink.high_id)):
        result.setdefault(low, []).append(high)
        result.setdefault(high, []).append(low)
    return result


def group_mate_ids(municipality_id: int) -> set[int]:
    """Municipalities sharing at least one group with this one."""
    mine = select(group_members.c.group_id).where(group_members.c.municipality_id == municipality_id)
    rows = db.session.scalars(
        select(group_members.c.municipality_id).where(group_members.c.group_id.in_(mine))
    )
    return {mid for mid in rows if mid != municipality_id}


def sharing_partner_ids(municipality_id: int) -> set[int]:
    """Those who see this municipality's `neighbours` cases, and whose it sees (symmetric)."""
    return neighbour_ids(municipality_id) | group_mate_ids(municipality_id)

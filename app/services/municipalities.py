"""Municipalities, their groups and the symmetric neighbour relation."""
from __future__ import annotations

import unicodedata

from sqlalchemy import delete, select

from app.extensions import db
from app.models import Municipality, MunicipalityGroup, NeighbourLink
from app.policy import forget_cached_scopes
from app.services import audit
from app.services.errors import Conflict, ValidationFailed

CHECK_WEIGHTS = (6, 5, 4, 3, 2)


def check_digit(code5: str) -> int:
    """The check digit of a 全国地方公共団体コード: weights 6..2, (11 - sum mod 11) mod 10."""
    total = sum(int(d) * w for d, w in zip(code5, CHECK_WEIGHTS))
    return (11 - total % 11) % 10


def is_valid_code(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit() and check_digit(code[:5]) == int(code[5])


def add_municipality(code: str, name: str, *, kind: str | None = None, prefecture: str = "広島県",
                     observer: bool = False, roman_names: str = "", actor=None) -> Municipality:
    code = unicodedata.normalize("NFKC", code or "").strip()
    name = (name or "").strip()
    roman = " ".join(unicodedata.normalize("NFKC", roman_names or "").lower().split())
    errors: dict[str, str] = {}
    if roman and (len(roman) > 200 or not all(part.replace("-", "").isascii() and part.replace("-", "").isalpha()
                                               for part in roman.split())):
        errors["roman_names"] = "ローマ字表記は半角英字（例: kure、shobara syobara）で、空白で区切ってください。"
    if not is_valid_code(code):
        errors["code"] = f"団体コード「{code}」は検査数字つきの6桁ではありません。"
    elif db.session.scalar(select(Municipality.id).where(Municipality.code == code)):
        errors["code"] = f"団体コード {code} はすでに登録されています。"
    if not name or len(name) > 100:
        errors["name"] = "名称を100文字以内で入力してください。"
    elif db.session.scalar(select(Municipality.id).where(Municipality.name == name)):
        errors["name"] = f"「{name}」はすでに登録されています。"
    if errors:
        raise ValidationFailed(errors)
    municipality = Municipality(code=code, name=name, kind=kind or name[-1], prefecture=prefecture,
                                is_observer=observer, roman_names=roman)
    db.session.add(municipality)
    db.session.flush()
    audit.record(actor, "municipality.add", municipality,
                 f"{name}（{code}、{prefecture}）{'オブザーバー' if observer else ''}")
    return municipality


def add_to_group(group: MunicipalityGroup, municipality: Municipality, actor=None) -> None:
    if municipality in group.members:
        raise Conflict(f"{municipality.name}はすでに「{group.name}」に入っています。")
    group.members.append(municipality)
    db.session.flush()
    forget_cached_scopes()
    audit.record(actor, "group.add", group, f"{group.name} ＋ {municipality.name}")


def remove_from_group(group: MunicipalityGroup, municipality: Municipality, actor=None) -> None:
    if municipality not in group.members:
        raise Conflict(f"{municipality.name}は「{group.name}」に入っていません。")
    group.members.remove(municipality)
    db.session.flush()
    forget_cached_scopes()
    audit.record(actor, "group.remove", group, f"{group.name} − {municipality.name}")


def _pair(a: Municipality, b: Municipality) -> tuple[int, int]:
    if a.id == b.id:
        raise ValidationFailed({"municipality": "同じ市町どうしは近隣に設定できません。"})
    return (a.id, b.id) if a.id < b.id else (b.id, a.id)


def link(a: Municipality, b: Municipality, actor=None) -> NeighbourLink:
    low, high = _pair(a, b)
    existing = db.session.scalar(select(NeighbourLink).where(NeighbourLink.low_id == low, NeighbourLink.high_id == high))
    if existing is not None:
        raise Conflict(f"{a.name}と{b.name}はすでに近隣です。")
    row = NeighbourLink(low_id=low, high_id=high)
    db.session.add(row)
    db.session.flush()
    forget_cached_scopes()
    audit.record(actor, "neighbour.link", None, f"{a.name}（{a.code}）⇔ {b.name}（{b.code}）")
    return row


def unlink(a: Municipality, b: Municipality, actor=None) -> None:
    low, high = _pair(a, b)
    result = db.session.execute(delete(NeighbourLink).where(NeighbourLink.low_id == low, NeighbourLink.high_id == high))
    if result.rowcount == 0:
        raise Conflict(f"{a.name}と{b.name}は近隣に設定されていません。")
    db.session.flush()
    forget_cached_scopes()
    audit.record(actor, "neighbour.unlink", None, f"{a.name}（{a.code}）⇔ {b.name}（{b.code}）")

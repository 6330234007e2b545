"""Procurement knowledge: the structured fields of a procurement case (system, vendor, contract,
period, amount, users or devices, main specification items) and the comparison table of amount
per user (or device) per year.

The comparison is computed from the cases the reader may read and nothing else (the same
``visible_cases_clause`` as every page); an anonymous case's buyer is shown only to whoever may see
its owner. The sensitive-data check (``app/services/sensitive.py``, the one used before a case is
shared) covers the text fields: a finding is masked or kept with a reason before the fields are
saved, a case shared with other municipalities takes no unmasked finding, and what a reader
outside the owner sees is checked again when shown (a case made anonymous later shows
``[市町名]`` where its owner's name was typed).
"""
from __future__ import annotations

import json
import statistics
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select

from app import policy
from app.extensions import db
from app.models import Case, CaseState, ProcurementDetails, User, utcnow
from app.models.procurement import PROCUREMENT_TEXT_FIELDS, CountUnit, ProcurementContract, SystemCategory
from app.services import audit
from app.services.errors import Conflict, Forbidden, SensitiveDataFound, ValidationFailed
from app.services.experts import _choice, _int, _text
from app.services.locking import lock_for_update
from app.services.sensitive import find_sensitive, mask


FIELD_LABELS = dict(PROCUREMENT_TEXT_FIELDS)


def details_of(case: Case) -> ProcurementDetails | None:
    return db.session.get(ProcurementDetails, case.id)


def _names(case: Case, anonymous: bool) -> tuple[list[str], list[str]]:
    from app.services.cases import owner_names, personal_names

    return personal_names(), owner_names(case, anonymous)


def findings_for(case: Case, values: dict[str, str], anonymous: bool | None = None) -> list[dict]:
    names, owners = _names(case, case.anonymous if anonymous is None else anonymous)
    found = []
    for name, _label in PROCUREMENT_TEXT_FIELDS:
        for f in find_sensitive(values.get(name, ""), names, owners):
            found.append({"field": name, "field_label": FIELD_LABELS[name], "kind": f.kind, "label": f.label,
                          "text": f.text, "position": f.start, "end": f.end})
    return found


def _kept(details: ProcurementDetails | None) -> list[dict]:
    if details is None or not details.kept:
        return []
    try:
        value = json.loads(details.kept)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _shared_beyond_owner(case: Case) -> bool:
    return case.shared_beyond_owner


def save_details(user: User, case: Case, data) -> ProcurementDetails:
    """Create or replace the structured fields. ``mask_all`` replaces every finding with its
    placeholder; ``keep_reason`` keeps them with that reason (not on a case shared with other
    municipalities); otherwise findings refuse the save (409 ``sensitive_data``) and nothing is
    written."""
    lock_for_update(case)
    if not policy.can_edit_procurement(user, case):
        if policy.is_helpdesk(user):
            raise Conflict("アーカイブした事例の調達の情報は変更できません。")
        raise Forbidden("調達の情報を編集できるのは県ヘルプデスクです。")
    errors: dict[str, str] = {}
    values = {
        "system_category": _choice(data, "system_category", "システムの種類", SystemCategory, errors),
        "system_name": _text(data, "system_name", "システム・サービス名", errors, required=True, limit=200),
        "vendor": _text(data, "vendor", "事業者", errors, limit=200),
        "contract_form": _choice(data, "contract_form", "契約の形", ProcurementContract, errors),
        "period_months": _int(data, "period_months", "契約期間（月数）", errors, required=True, minimum=1, maximum=240),
        "amount": _int(data, "amount", "金額", errors, required=True, minimum=0, unit="円"),
        "tax_included": (data.get("tax_included") or "included") != "excluded",
        "count": _int(data, "count", "利用者数・台数", errors, required=True, minimum=1, maximum=10_000_000),
        "count_unit": _choice(data, "count_unit", "数える単位", CountUnit, errors),
        "spec_items": _text(data, "spec_items", "主な仕様", errors, limit=10000),
    }
    if errors:
        raise ValidationFailed(errors)
    details = details_of(case)
    found = findings_for(case, values)
    kept = [k for k in _kept(details)
            if any(f["kind"] == k.get("kind") and f["text"] == k.get("text") for f in found)]
    open_findings = [f for f in found if not any(f["kind"] == k.get("kind") and f["text"] == k.get("text")
                                                 for k in kept)]
    mask_all = data.get("mask_all") in ("y", "on", "1", "true", True)
    keep_reason = _text(data, "keep_reason", "残す理由", errors, limit=500)
    if open_findings:
        if mask_all:
            names, owners = _names(case, case.anonymous)
            for name, _label in PROCUREMENT_TEXT_FIELDS:
                values[name] = mask(values[name], find_sensitive(values[name], names, owners))
            kept = []
        elif keep_reason and not _shared_beyond_owner(case):
            kept += [{"kind": f["kind"], "text": f["text"], "label": f["label"], "reason": keep_reason}
                     for f in open_findings]
        else:
            message = ("他の市町に共有中の事例です。個別の情報は伏せてから保存してください。"
                       if _shared_beyond_owner(case) else
                       "個別の情報が含まれています。伏せるか、理由を添えて残してください。")
            raise SensitiveDataFound(message, open_findings)
    if details is None:
        details = ProcurementDetails(case_id=case.id)
        db.session.add(details)
    for key, value in values.items():
        setattr(details, key, value)
    details.kept = json.dumps(kept, ensure_ascii=False) if kept else ""
    details.updated_by = user
    details.updated_at = utcnow()
    db.session.flush()
    audit.record(user, "procurement.save", case, f"#{case.id} {values['system_name']}")
    return details


def delete_details(user: User, case: Case) -> None:
    lock_for_update(case)
    if not policy.can_edit_procurement(user, case):
        if policy.is_helpdesk(user):
            raise Conflict("アーカイブした事例の調達の情報は変更できません。")
        raise Forbidden("調達の情報を編集できるのは県ヘルプデスクです。")
    details = details_of(case)
    if details is not None:
        db.session.delete(details)
        audit.record(user, "procurement.delete", case, f"#{case.id}")


def shown_text(reader: User | None, case: Case, details: ProcurementDetails) -> dict[str, str]:
    """The text fields as this reader sees them. The owner's members and the help desk see them as
    saved; other readers see every finding masked unless it was kept with a reason, and an
    anonymous case's owner name masked in any case."""
    values = {name: getattr(details, name) or "" for name, _label in PROCUREMENT_TEXT_FIELDS}
    if policy.sees_everything(reader) or policy.is_owner_member(reader, case):
        return values
    kept = _kept(details)
    names, owners = _names(case, not policy.can_see_owner(reader, case))
    shown = {}
    for name, text in values.items():
        findings = [f for f in find_sensitive(text, names, owners)
                    if f.kind == "owner" or not any(k.get("kind") == f.kind and k.get("text") == f.text for k in kept)]
        shown[name] = mask(text, findings)
    return shown


# --- comparison -------------------------------------------------------------------------------

@dataclass
class ComparisonRow:
    case: Case
    details: ProcurementDetails
    buyer: str
    text: dict[str, str]

    @property
    def per_unit_per_year(self) -> int | None:
        return self.details.per_unit_per_year


@dataclass
class Comparison:
    rows: list[ComparisonRow]
    categories: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def values(self) -> list[int]:
        return [r.per_unit_per_year for r in self.rows if r.per_unit_per_year is not None]

    @property
    def median(self) -> int | None:
        return round(statistics.median(self.values)) if self.values else None

    @property
    def minimum(self) -> int | None:
        return min(self.values) if self.values else None

    @property
    def maximum(self) -> int | None:
        return max(self.values) if self.values else None


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").casefold().replace(" ", "")


def buyer_label(reader: User | None, case: Case) -> str:
    if not policy.can_see_owner(reader, case):
        return "市町名非公開"
    return case.municipality.name if case.municipality else "県ヘルプデスク"


def comparison(reader: User | None, system_category: str = "", system: str = "", sort: str = "per_unit") -> Comparison:
    """Every procurement case the reader may read (archived ones left out), filtered by the kind
    of system and a part of the system's name as the reader sees it."""
    rows = db.session.execute(
        select(Case, ProcurementDetails).join(ProcurementDetails, ProcurementDetails.case_id == Case.id)
        .where(policy.visible_cases_clause(reader), Case.state != CaseState.ARCHIVED.value)
        .order_by(Case.id)).all()
    counts: dict[str, int] = {}
    result = []
    wanted = _fold(system)
    for case, details in rows:
        counts[details.system_category] = counts.get(details.system_category, 0) + 1
        if system_category and details.system_category != system_category:
            continue
        text = shown_text(reader, case, details)
        if wanted and wanted not in _fold(text["system_name"]) and wanted not in _fold(case.title):
            continue
        result.append(ComparisonRow(case, details, buyer_label(reader, case), text))
    if sort == "amount":
        result.sort(key=lambda r: (-r.details.amount, r.case.id))
    elif sort == "newest":
        result.sort(key=lambda r: -r.case.id)
    else:
        result.sort(key=lambda r: (r.per_unit_per_year is None, r.per_unit_per_year or 0, r.case.id))
    categories = [(c.value, c.label, counts.get(c.value, 0)) for c in SystemCategory]
    return Comparison(result, categories)

"""Masking details on the review before sharing: one finding, every open finding at once, and
undoing the last mask.

A mask replaces a finding with its placeholder (``[IPアドレス]``) in the case's own text. Every
masked finding is audited like ``cases.mask_finding``: the field and the kind of detail, never the
text. The page that shows the result carries a signed record of what the last mask replaced
(``undo_token``); ``undo`` puts the text back only when every field it touched is still exactly as
the mask left it, and never into a case that is shared beyond its owner (an edit of such a case may
not add details either). The undo is audited too, again without the text.
"""
from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app import policy
from app.extensions import db
from app.models import Case, User, utcnow
from app.search.sync import queue_case
from app.services import audit
from app.services.cases import SHARED_FIELD_LABELS, SHARED_FIELDS, owner_names, personal_names
from app.services.errors import Conflict, Forbidden, ValidationFailed
from app.services.locking import lock_for_update
from app.services.sensitive import Finding, find_sensitive

UNDO_SALT = "case-mask-undo"
UNDO_MAX_AGE = 60 * 60  # seconds: an undo is for the review at hand, not for later


@dataclass(frozen=True)
class Masked:
    """One replaced finding: where its placeholder now stands in the field, and what it replaced."""

    field: str
    start: int
    placeholder: str
    original: str
    label: str  # the kind of detail (IPv4アドレス), for the messages and the audit log

    @property
    def field_label(self) -> str:
        return SHARED_FIELD_LABELS.get(self.field, self.field)


def _fingerprint(text: str) -> str:
    return sha256(text.encode("utf-8")).hexdigest()


def _lock_for_editing(user: User, case: Case) -> None:
    lock_for_update(case)
    if not policy.can_edit_case(user, case):
        raise Forbidden("この事例を編集することはできません。")


def _replace(case: Case, field: str, findings: list[Finding]) -> list[Masked]:
    """Replace the findings (in the field's current text, without overlaps) by their placeholders."""
    value = getattr(case, field) or ""
    out, masked, cursor, shift = [], [], 0, 0
    for finding in sorted(findings, key=lambda f: f.start):
        if finding.start < cursor or value[finding.start:finding.end] != finding.text:
            continue
        out.append(value[cursor:finding.start])
        out.append(finding.placeholder)
        masked.append(Masked(field, finding.start + shift, finding.placeholder, finding.text, finding.label))
        shift += len(finding.placeholder) - len(finding.text)
        cursor = finding.end
    out.append(value[cursor:])
    setattr(case, field, "".join(out))
    return masked


def _changed(user: User, case: Case) -> None:
    case.updated_at = utcnow()
    case.updated_by = user
    db.session.flush()
    queue_case(case)


def mask_one(user: User, case: Case, field: str, position: int, text: str) -> list[Masked]:
    """Mask the finding ``text`` at ``position`` in ``field`` (one click on the review page)."""
    _lock_for_editing(user, case)
    if field not in SHARED_FIELDS:
        raise ValidationFailed({"field": "項目が正しくありません。"})
    value = getattr(case, field) or ""
    match = next((f for f in find_sensitive(value, personal_names(), owner_names(case, True))
                  if f.start == position and f.text == text), None)
    if match is None:
        raise Conflict("その箇所は変更されています。もう一度確認してください。")
    masked = _replace(case, field, [match])
    _changed(user, case)
    _audit_masks(user, case, masked)
    return masked


def mask_all(user: User, case: Case, anonymous: bool, kept_texts=()) -> list[Masked]:
    """Mask every open finding of the case's text fields: those the review shows for this
    anonymity (``cases.sensitive_findings``) that are not kept with a reason. Tags and attached
    files are not text the review can mask; they are edited on the case editor."""
    _lock_for_editing(user, case)
    kept = set(kept_texts)
    names, owners = personal_names(), owner_names(case, anonymous)
    masked: list[Masked] = []
    for field in SHARED_FIELDS:
        found = [f for f in find_sensitive(getattr(case, field) or "", names, owners) if f.text not in kept]
        if found:
            masked += _replace(case, field, found)
    if not masked:
        raise Conflict("伏せる箇所はありません（残すものを除く）。")
    _changed(user, case)
    _audit_masks(user, case, masked, note="（すべて伏せる）")
    return masked


def _audit_masks(user: User, case: Case, masked: list[Masked], note: str = "") -> None:
    for item in masked:
        audit.record(user, "case.mask", case, f"#{case.id} {item.field_label}: {item.label}を伏せ字にしました{note}")


# --- undo -------------------------------------------------------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=UNDO_SALT)


def undo_token(user: User, case: Case, masked: list[Masked]) -> str:
    """A signed record of the last mask, for the page's 「元に戻す」 (it holds the replaced text,
    like the page did before the mask; it is never stored or logged)."""
    fields = sorted({m.field for m in masked})
    return _serializer().dumps({
        "case": case.id, "user": user.id,
        "masks": [[m.field, m.start, m.placeholder, m.original, m.label] for m in masked],
        "fields": {field: _fingerprint(getattr(case, field) or "") for field in fields},
    })


def can_undo(case: Case) -> bool:
    """Masked text goes back only into a case that is not shared beyond its owner."""
    return not case.shared_beyond_owner


def undo(user: User, case: Case, token: str) -> list[Masked]:
    """Put back what the last mask replaced, if the fields are as the mask left them."""
    try:
        payload = _serializer().loads(token or "", max_age=UNDO_MAX_AGE)
    except SignatureExpired:
        raise Conflict("時間が経ったため、元に戻せません。必要なら事例の編集で直してください。") from None
    except BadSignature:
        raise ValidationFailed({"undo": "元に戻す内容が正しくありません。"}) from None
    if payload.get("case") != case.id or payload.get("user") != user.id:
        raise ValidationFailed({"undo": "元に戻す内容が正しくありません。"})
    _lock_for_editing(user, case)
    if not can_undo(case):
        raise Conflict("他の市町に共有中の事例には、伏せた情報を戻せません。")
    fields: dict[str, str] = payload.get("fields") or {}
    for field, fingerprint in fields.items():
        if field not in SHARED_FIELDS or _fingerprint(getattr(case, field) or "") != fingerprint:
            raise Conflict("伏せ字にした後で内容が変更されているため、元に戻せません。")
    restored = [Masked(*item) for item in payload.get("masks") or []]
    for field in fields:
        value = getattr(case, field) or ""
        for item in sorted((m for m in restored if m.field == field), key=lambda m: m.start, reverse=True):
            if value[item.start:item.start + len(item.placeholder)] != item.placeholder:
                raise Conflict("伏せ字にした後で内容が変更されているため、元に戻せません。")
            value = value[:item.start] + item.original + value[item.start + len(item.placeholder):]
        setattr(case, field, value)
    _changed(user, case)
    for item in restored:
        audit.record(user, "case.unmask", case, f"#{case.id} {item.field_label}: {item.label}の伏せ字を元に戻しました")
    return restored

"""The audit log as people read it: role, visibility, state and field codes in a summary are shown
with their Japanese labels. The stored summaries are not changed (they stay as the services wrote
them); only the page translates, and a summary it does not recognise is shown as stored."""
from __future__ import annotations

import re

from app.models import CASE_TEXT_FIELDS, CaseState, Role, Visibility

ROLE_CODES = "|".join(r.value for r in Role)
VISIBILITY_CODES = "|".join(v.value for v in Visibility)
FIELD_LABELS = {
    "title": "件名", **dict(CASE_TEXT_FIELDS), "category": "分類", "tags": "タグ",
}

_USER_CREATE = re.compile(rf"^(?P<user>.+?): (?P<role>{ROLE_CODES})(?P<rest>(?:（.*）)?)$", re.S)
_USER_ASSIGN = re.compile(
    rf"^(?P<user>.+?): (?P<r1>{ROLE_CODES})/(?P<m1>.+?) → (?P<r2>{ROLE_CODES})/(?P<m2>.+)$", re.S)
_VISIBILITY = re.compile(
    rf"^(?P<case>#\d+) (?P<v1>{VISIBILITY_CODES})(?P<a1>・匿名)? → (?P<v2>{VISIBILITY_CODES})(?P<a2>・匿名)?(?P<rest>.*)$", re.S)
_CONSENT = re.compile(rf"^(?P<case>#\d+) 同意 (?P<v1>{VISIBILITY_CODES}) → (?P<v2>{VISIBILITY_CODES})(?P<rest>.*)$", re.S)
_EXPORT = re.compile(r"^(?P<head>.*)（(?P<state>[a-z_]+)）$", re.S)


def _role(code: str) -> str:
    return Role(code).label


def _place(name: str) -> str:
    return "所属なし" if name == "-" else name


def _visibility(code: str) -> str:
    return Visibility(code).label


def format_summary(action: str, summary: str) -> str:
    text = summary or ""
    if action == "user.create" and (m := _USER_CREATE.match(text)):
        return f"{m['user']}: {_role(m['role'])}{m['rest']}"
    if action == "user.assign" and (m := _USER_ASSIGN.match(text)):
        return (f"{m['user']}: {_role(m['r1'])}（{_place(m['m1'])}）→ "
                f"{_role(m['r2'])}（{_place(m['m2'])}）")
    if action == "case.visibility" and (m := _VISIBILITY.match(text)):
        return (f"{m['case']} 公開範囲「{_visibility(m['v1'])}」{m['a1'] or ''} → "
                f"「{_visibility(m['v2'])}」{m['a2'] or ''}{m['rest']}")
    if action == "case.consent" and (m := _CONSENT.match(text)):
        return f"{m['case']} 共有への同意「{_visibility(m['v1'])}」→「{_visibility(m['v2'])}」{m['rest']}"
    if action == "case.edit" and ": " in text:
        head, _, tail = text.rpartition(": ")
        names = tail.split(", ")
        if names and all(name in FIELD_LABELS for name in names):
            return f"{head}: " + "、".join(FIELD_LABELS[name] for name in names)
    if action == "case.export" and (m := _EXPORT.match(text)):
        state = m["state"]
        if state in {s.value for s in CaseState}:
            return f"{m['head']}（{CaseState(state).label}）"
        if state == "all":
            return f"{m['head']}（すべて）"
    return text

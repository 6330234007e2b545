"""Every change of a case is a revision: who, when, what, and the case as it then was.

Revisions are written at commit time, for every case whose content or sharing differs from its
latest revision, whatever code changed it (the editor, masking, publishing, consent, archive,
a withdrawal that removes text, an import). What kind of change it was comes from the audit
events written in the same transaction (``case.mask`` → 伏せ字) and from notes a service leaves
(``note``: 版3を復元); who made it from the same places, else the case's ``updated_by``.

Diffs are side by side: lines are matched with ``difflib``; within a changed line, characters
(Japanese has no spaces to split words on).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from app.models import AuditEvent, Case, CaseRevision, Category, Visibility, case_tags
from app.models.taxonomy import Tag
from app.services.audit import ACTION_LABELS

SNAPSHOT_FIELDS = ("title", "issue", "environment", "cause", "resolution", "category_id", "tags", "state",
                   "visibility", "sharing_consent", "anonymous", "municipality_id")
FIELD_LABELS = {"title": "件名", "issue": "症状・質問", "environment": "環境", "cause": "原因", "resolution": "対応",
                "category_id": "分類", "tags": "タグ", "state": "状態", "visibility": "公開範囲",
                "sharing_consent": "共有への同意", "anonymous": "匿名", "municipality_id": "所有する団体"}
TEXT_FIELDS = ("title", "issue", "environment", "cause", "resolution")


def field_label(case: Case | None, name: str) -> str:
    """A field's name as the case's own page says it (an article's one text field is 本文)."""
    if case is not None and case.is_article and name == "issue":
        return "本文"
    return FIELD_LABELS[name]
STATE_LABELS = {"draft": "下書き", "published": "公開", "archived": "アーカイブ"}
_INFO_CASES, _INFO_NOTES = "history_cases", "history_notes"


def note(session: Session, case: Case, label: str, actor=None) -> None:
    """Say what the coming change of ``case`` is (「版3を復元」), and who makes it."""
    session.info.setdefault(_INFO_NOTES, {}).setdefault(case.id, []).append((label, actor.id if actor else None))
    session.info.setdefault(_INFO_CASES, set()).add(case.id)


def touch(session: Session, case_ids) -> None:
    """Cases changed by bulk statements (which the session does not track): check them at commit."""
    session.info.setdefault(_INFO_CASES, set()).update(case_ids)


def snapshot(session: Session, case: Case) -> dict:
    tag_names = session.scalars(select(Tag.name).join(case_tags, case_tags.c.tag_id == Tag.id)
                                .where(case_tags.c.case_id == case.id).order_by(Tag.name))
    return _snapshot(case, tag_names)


def _snapshot(case: Case, tag_names) -> dict:
    return {"title": case.title or "", "issue": case.issue or "", "environment": case.environment or "",
            "cause": case.cause or "", "resolution": case.resolution or "", "category_id": case.category_id,
            "tags": "、".join(tag_names), "state": case.state, "visibility": case.visibility,
            "sharing_consent": case.sharing_consent, "anonymous": bool(case.anonymous),
            "municipality_id": case.municipality_id}


def revision_values(revision: CaseRevision) -> dict:
    return {name: (bool(getattr(revision, name)) if name == "anonymous" else getattr(revision, name))
            for name in SNAPSHOT_FIELDS}


def latest(session: Session, case_id: int) -> CaseRevision | None:
    return session.scalar(select(CaseRevision).where(CaseRevision.case_id == case_id)
                          .order_by(CaseRevision.number.desc()).limit(1))


def _collect(session: Session, flush_context) -> None:
    cases = session.info.setdefault(_INFO_CASES, set())
    audits = session.info.setdefault("history_audits", {})
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, Case):
            if obj.id is not None:
                cases.add(obj.id)
        elif isinstance(obj, AuditEvent) and obj.target_type == "case" and obj.target_id.isdigit():
            audits.setdefault(int(obj.target_id), []).append((ACTION_LABELS.get(obj.action, obj.action), obj.actor_id))


def _after_flush(session: Session, flush_context) -> None:
    # New cases get their id in the flush: collect them now that they have one.
    _collect(session, flush_context)


def _forget(session: Session, *args) -> None:
    for key in (_INFO_CASES, _INFO_NOTES, "history_audits"):
        session.info.pop(key, None)


def write_revisions(session: Session) -> None:
    """Record a revision for every collected case that differs from its latest revision."""
    if not session.info.get(_INFO_CASES):
        return
    session.flush()  # pending changes (and their audit events) are collected by the flush
    case_ids = sorted(session.info.get(_INFO_CASES) or ())
    notes = session.info.get(_INFO_NOTES) or {}
    audits = session.info.get("history_audits") or {}
    _forget(session)
    for start in range(0, len(case_ids), REVISION_BATCH):
        _write_revisions_of(session, case_ids[start:start + REVISION_BATCH], notes, audits)
    session.flush()
    _forget(session)


REVISION_BATCH = 500


def _write_revisions_of(session: Session, case_ids: list[int], notes: dict, audits: dict) -> None:
    """The revisions of some cases, read with three statements (an import of 100,000 cases
    spent more time here, three statements a case, than storing the cases)."""
    cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(case_ids)))}
    tag_names: dict[int, list[str]] = {}
    for case_id, name in session.execute(
            select(case_tags.c.case_id, Tag.name).join(Tag, case_tags.c.tag_id == Tag.id)
            .where(case_tags.c.case_id.in_(case_ids)).order_by(case_tags.c.case_id, Tag.name)):
        tag_names.setdefault(case_id, []).append(name)
    newest = (select(CaseRevision.case_id, func.max(CaseRevision.number).label("number"))
              .where(CaseRevision.case_id.in_(case_ids)).group_by(CaseRevision.case_id).subquery())
    latest_of = {r.case_id: r for r in session.scalars(select(CaseRevision).join(
        newest, (CaseRevision.case_id == newest.c.case_id) & (CaseRevision.number == newest.c.number)))}
    categories = {c.id: c for c in session.scalars(select(Category))}   # a few dozen
    rows = []
    for case_id in case_ids:
        case = cases.get(case_id)
        if case is None:
            continue
        current = _snapshot(case, tag_names.get(case_id, []))
        last = latest_of.get(case_id)
        before = revision_values(last) if last is not None else None
        if before == current:
            continue
        changed = [field_label(case, k) for k in SNAPSHOT_FIELDS if before is None or before[k] != current[k]]
        labels, actor_id = [], None
        for label, who in notes.get(case_id, []) + audits.get(case_id, []):
            if label not in labels:
                labels.append(label)
            actor_id = actor_id or who
        if before is None:
            labels.insert(0, "作成")
        elif not labels:
            labels.append("変更")
        category = categories.get(case.category_id)
        rows.append(dict(
            case_id=case_id, number=(last.number + 1) if last else 1, actor_id=actor_id or case.updated_by_id,
            actions="・".join(labels)[:300], changed="・".join(changed)[:300],
            category_name=category.name if category else "", **current,
        ))
    if rows:   # one statement for the batch (an ORM object per revision was a fifth of an import)
        session.execute(insert(CaseRevision), rows)


event.listen(Session, "after_flush", _after_flush)
event.listen(Session, "before_commit", write_revisions)
event.listen(Session, "after_rollback", _forget)
event.listen(Session, "after_soft_rollback", _forget)


# --- reading --------------------------------------------------------------------------------------

def revisions(session: Session, case: Case) -> list[CaseRevision]:
    return list(session.scalars(select(CaseRevision).where(CaseRevision.case_id == case.id)
                                .order_by(CaseRevision.number.desc())))


def count(session: Session, case: Case) -> int:
    return session.scalar(select(func.count()).select_from(CaseRevision).where(CaseRevision.case_id == case.id)) or 0


@dataclass
class DiffRow:
    kind: str                       # equal, replace, delete, insert
    left_no: int | None
    right_no: int | None
    left: list[tuple[str, str]] = field(default_factory=list)    # (op, text): op is "", "del"
    right: list[tuple[str, str]] = field(default_factory=list)   # (op, text): op is "", "ins"


def _chars(old: str, new: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op == "equal":
            left.append(("", old[i1:i2]))
            right.append(("", new[j1:j2]))
        else:
            if i2 > i1:
                left.append(("del", old[i1:i2]))
            if j2 > j1:
                right.append(("ins", new[j1:j2]))
    return left, right


def side_by_side(old: str, new: str) -> list[DiffRow]:
    """Rows of a side-by-side diff: lines matched, characters marked within changed lines."""
    a, b = (old or "").splitlines(), (new or "").splitlines()
    rows: list[DiffRow] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [DiffRow("equal", i1 + k + 1, j1 + k + 1, [("", a[i1 + k])], [("", b[j1 + k])])
                     for k in range(i2 - i1)]
            continue
        pairs = max(i2 - i1, j2 - j1)
        for k in range(pairs):
            li, rj = i1 + k, j1 + k
            has_left, has_right = li < i2, rj < j2
            if has_left and has_right:
                left, right = _chars(a[li], b[rj])
                rows.append(DiffRow("replace", li + 1, rj + 1, left, right))
            elif has_left:
                rows.append(DiffRow("delete", li + 1, None, [("del", a[li])], []))
            else:
                rows.append(DiffRow("insert", None, rj + 1, [], [("ins", b[rj])]))
    return rows


def _display(session: Session, name: str, values: dict) -> str:
    value = values[name]
    if name == "category_id":
        category = session.get(Category, value) if value else None
        return category.name if category else values.get("category_name", "")
    if name == "state":
        return STATE_LABELS.get(value, value)
    if name in ("visibility", "sharing_consent"):
        return Visibility(value).label if value in {v.value for v in Visibility} else str(value)
    if name == "anonymous":
        return "匿名" if value else "市町名を表示"
    if name == "municipality_id":
        return str(value or "県")
    return value or ""


def compare(session: Session, older: CaseRevision, newer: CaseRevision) -> list[dict]:
    """Each field of two revisions, with a side-by-side diff where it changed."""
    a, b = revision_values(older), revision_values(newer)
    a["category_name"], b["category_name"] = older.category_name, newer.category_name
    case = session.get(Case, newer.case_id)
    out = []
    for name in SNAPSHOT_FIELDS:
        if name == "municipality_id":
            continue
        left, right = _display(session, name, a), _display(session, name, b)
        out.append({"name": name, "label": field_label(case, name), "changed": left != right,
                    "rows": side_by_side(left, right) if left != right else [], "text": right})
    return out

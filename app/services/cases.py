"""Drafting, editing and publishing cases."""
from __future__ import annotations

from app import policy
from app.extensions import db
from app.models import Answer, Case, CaseState, Question, User, as_utc, utcnow
from app.search.sync import queue_case
from app.services import audit
from app.services.errors import Conflict, Forbidden, ValidationFailed
from app.services.validation import clean_body, clean_category, clean_title, parse_tag_names, tags_for

EDITABLE_TEXT = {"issue": "症状・質問", "environment": "環境", "cause": "原因", "resolution": "対応"}


def _thread_follow_ups(question: Question, answer: Answer) -> str:
    """Comments posted after the resolving answer often hold the last step that worked."""
    answered_at = as_utc(answer.created_at)
    later = [c for c in question.comments if answered_at and as_utc(c.created_at) >= answered_at]
    if not later:
        return ""
    parts = ["", "", "**スレッドでの補足**"]
    for comment in later:
        parts.append("")
        parts.append(comment.body.strip())
    return "\n".join(parts)


def create_draft_from_question(user: User, question: Question, answer: Answer) -> Case:
    case = Case(
        title=question.title,
        issue=question.body,
        environment="",
        cause="",
        resolution=answer.body + _thread_follow_ups(question, answer),
        category=question.category,
        tags=list(question.tags),
        municipality_id=question.municipality_id,
        sharing_consent=question.sharing_consent,
        question=question,
        state=CaseState.DRAFT.value,
        created_by=user,
        updated_by=user,
    )
    db.session.add(case)
    db.session.flush()
    return case


def update_case(user: User, case: Case, data: dict) -> Case:
    """Change the given fields (a partial update); unknown or absent keys are left alone."""
    if not policy.can_edit_case(user, case):
        raise Forbidden("この事例を編集することはできません。")
    errors: dict[str, str] = {}
    changes: dict = {}
    if "title" in data:
        changes["title"] = clean_title(data["title"], errors)
    for field, label in EDITABLE_TEXT.items():
        if field in data:
            required = field in ("issue", "resolution")
            changes[field] = clean_body(data[field], errors, field=field, label=label, required=required)
    if "category" in data:
        changes["category"] = clean_category(data["category"], errors)
    if "tags" in data:
        changes["tags"] = parse_tag_names(data["tags"], errors)
    if errors:
        raise ValidationFailed(errors)
    if "tags" in changes:
        changes["tags"] = tags_for(changes["tags"])
    for key, value in changes.items():
        setattr(case, key, value)
    case.updated_by = user
    case.updated_at = utcnow()
    db.session.flush()
    queue_case(case)
    return case


def publish_case(user: User, case: Case) -> Case:
    if case.state == CaseState.PUBLISHED.value and policy.is_helpdesk(user):
        raise Conflict("この事例はすでに公開されています。")
    if not policy.can_publish_case(user, case):
        raise Forbidden("この事例を公開することはできません。")
    errors: dict[str, str] = {}
    clean_title(case.title, errors)
    clean_body(case.issue, errors, field="issue", label="症状・質問")
    clean_body(case.resolution, errors, field="resolution", label="対応")
    if errors:
        raise ValidationFailed(errors)
    now = utcnow()
    case.state = CaseState.PUBLISHED.value
    case.published_at = now
    case.updated_at = now
    case.updated_by = user
    db.session.flush()
    queue_case(case)
    audit.record(user, "case.publish", case, f"#{case.id} {case.title}（公開範囲: {case.visibility}）")
    return case

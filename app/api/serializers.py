"""JSON shapes of the API objects. What an object shows depends on who asks (policy)."""
from __future__ import annotations

from datetime import datetime

from markupsafe import escape
from sqlalchemy import select

from app import policy
from app.extensions import db
from app.models import CASE_TEXT_FIELDS, Answer, Case, Comment, Municipality, Question, User, as_utc
from app.rendering import render_markdown


def iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


def municipality_json(m: Municipality | None) -> dict | None:
    if m is None:
        return None
    return {"code": m.code, "name": m.name}


def author_json(user: User) -> dict:
    return {"username": user.username, "name": user.label, "role": user.role}


def answer_json(answer: Answer) -> dict:
    return {
        "id": answer.id,
        "body": answer.body,
        "body_html": str(render_markdown(answer.body)),
        "author": author_json(answer.author),
        "created_at": iso(answer.created_at),
    }


def comment_json(comment: Comment) -> dict:
    return {
        "id": comment.id,
        "body": comment.body,
        "body_html": str(render_markdown(comment.body)),
        "author": author_json(comment.author),
        "created_at": iso(comment.created_at),
    }


def question_summary_json(q: Question) -> dict:
    return {
        "id": q.id,
        "title": q.title,
        "status": q.status,
        "category": q.category.slug,
        "tags": [t.name for t in q.tags],
        "municipality": municipality_json(q.municipality),
        "sharing_consent": q.sharing_consent,
        "created_at": iso(q.created_at),
        "updated_at": iso(q.updated_at),
    }


def question_json(q: Question, user: User | None) -> dict:
    data = question_summary_json(q)
    case = db.session.scalar(select(Case).where(Case.question_id == q.id))
    data.update(
        body=q.body,
        body_html=str(render_markdown(q.body)),
        asker=author_json(q.asker),
        resolved_answer_id=q.resolved_answer_id,
        resolved_at=iso(q.resolved_at),
        # What a thread says about its case goes through the policy (an archived case is not named).
        case_id=case.id if case is not None and policy.can_view_case(user, case) else None,
        answers=[answer_json(a) for a in q.answers],
        comments=[comment_json(c) for c in q.comments],
    )
    return data


def case_owner_json(case: Case, user: User | None) -> dict | None:
    """The owning municipality, or null for readers an anonymous case hides it from."""
    return municipality_json(case.municipality) if policy.can_see_owner(user, case) else None


def case_visibility_json(case: Case, user: User | None) -> str | None:
    """How far the case is shared, or null where saying it would narrow down a hidden owner."""
    return case.shared_visibility.value if policy.can_see_sharing_route(user, case) else None


def case_summary_json(case: Case, user: User | None) -> dict:
    return {
        "id": case.id,
        "title": case.title,
        "category": case.category.slug,
        "tags": [t.name for t in case.tags],
        "municipality": case_owner_json(case, user),
        "visibility": case_visibility_json(case, user),
        "anonymous": case.anonymous,
        "published_at": iso(case.published_at),
        "updated_at": iso(case.updated_at),
    }


def case_json(case: Case, user: User | None) -> dict:
    from app.services.cases import helpful_count

    data = {
        "id": case.id,
        "title": case.title,
        "title_html": str(escape(case.title)),
        "state": case.state,
        "visibility": case_visibility_json(case, user),
        "anonymous": case.anonymous,
        "sharing_consent": case.sharing_consent if policy.can_see_sharing_route(user, case) else None,
        "helpful_count": helpful_count(case),
        "category": case.category.slug,
        "category_name": case.category.name,
        "tags": [t.name for t in case.tags],
        "municipality": case_owner_json(case, user),
        "question_id": case.question_id if case.question and policy.can_view_question(user, case.question) else None,
        "created_at": iso(case.created_at),
        "updated_at": iso(case.updated_at),
        "published_at": iso(case.published_at),
    }
    for field, _label in CASE_TEXT_FIELDS:
        value = getattr(case, field) or ""
        data[field] = value
        data[f"{field}_html"] = str(render_markdown(value))
    return data

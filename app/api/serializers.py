"""JSON shapes of the API objects. What an object shows depends on who asks (policy)."""
from __future__ import annotations

from datetime import datetime

from markupsafe import escape
from sqlalchemy import select

from app import policy
from app.extensions import db
from app.models import CASE_TEXT_FIELDS, Case, Municipality, Question, User, as_utc
from app.rendering import render_markdown


def iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


def municipality_json(m: Municipality | None) -> dict | None:
    if m is None:
        return None
    return {"code": m.code, "name": m.name}


def author_json(user: User) -> dict:
    return {"username": user.username, "name": user.label, "role": user.role}


def attachment_json(attachment) -> dict:
    from flask import url_for

    return {"id": attachment.id, "filename": attachment.filename, "content_type": attachment.content_type,
            "size": attachment.size, "url": url_for("api.download_attachment", attachment_id=attachment.id)}


def post_json(post, files: dict | None = None, kind: str = "") -> dict:
    """An answer, comment or internal note: a withdrawn one keeps only who withdrew it and when."""
    data = {
        "id": post.id,
        "body": post.body,
        "body_html": str(render_markdown(post.body)),
        "author": author_json(post.author),
        "created_at": iso(post.created_at),
        "edited_at": iso(post.edited_at),
        "withdrawn": post.is_withdrawn,
        "attachments": [attachment_json(a) for a in (files or {}).get((kind, post.id), [])],
    }
    if post.is_withdrawn:
        data["withdrawn_at"] = iso(post.withdrawn_at)
        data["withdrawn_by"] = author_json(post.withdrawn_by) if post.withdrawn_by else None
    return data




def question_summary_json(q: Question) -> dict:
    return {
        "id": q.id,
        "title": q.title,
        "status": q.status,
        "whose_move": q.status_enum.whose_move,
        "kind": q.kind,
        "priority": q.priority,
        "category": q.category.slug,
        "tags": [t.name for t in q.tags],
        "municipality": municipality_json(q.municipality),
        "owner": author_json(q.owner) if q.owner else None,
        "sharing_consent": q.sharing_consent,
        "created_at": iso(q.created_at),
        "updated_at": iso(q.updated_at),
        "first_response_seconds": q.first_response_seconds,
        "resolution_seconds": q.resolution_seconds,
    }


def question_json(q: Question, user: User | None) -> dict:
    from app.services.attachments import of_thread

    data = question_summary_json(q)
    case = db.session.scalar(select(Case).where(Case.question_id == q.id))
    files = of_thread(q, user)
    data.update(
        body=q.body,
        body_html=str(render_markdown(q.body)),
        urgent_reason=q.urgent_reason,
        edited_at=iso(q.edited_at),
        withdrawn=q.is_withdrawn,
        asker=author_json(q.asker),
        resolved_answer_id=q.resolved_answer_id,
        resolved_at=iso(q.resolved_at),
        duplicate_of=q.duplicate_of_id if q.duplicate_of and policy.can_view_question(user, q.duplicate_of) else None,
        merged_into=q.merged_into_id if q.merged_into and policy.can_view_question(user, q.merged_into) else None,
        # What a thread says about its case goes through the policy (an archived case is not named).
        case_id=case.id if case is not None and policy.can_view_case(user, case) else None,
        attachments=[attachment_json(a) for a in files.get(("question", q.id), [])],
        answers=[post_json(a, files, "answer") for a in q.answers],
        comments=[post_json(c, files, "comment") for c in q.comments],
    )
    if policy.can_read_internal_notes(user):
        data["internal_notes"] = [post_json(n, files, "note") for n in q.notes]
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
        "kind": case.kind,
        "article_type": case.article_type,
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
        "kind": case.kind,
        "article_type": case.article_type,
        "article_type_label": case.article_type_label or None,
        "visibility": case_visibility_json(case, user),
        "anonymous": case.anonymous,
        "sharing_consent": case.sharing_consent if policy.can_see_sharing_route(user, case) else None,
        "helpful_count": helpful_count(case),
        "category": case.category.slug,
        "category_name": case.category.name,
        "tags": [t.name for t in case.tags],
        "municipality": case_owner_json(case, user),
        "question_id": case.question_id if case.question and policy.can_view_question(user, case.question) else None,
        "attachments": [attachment_json(a) for a in case.attachments],
        "created_at": iso(case.created_at),
        "updated_at": iso(case.updated_at),
        "published_at": iso(case.published_at),
    }
    for field, _label in CASE_TEXT_FIELDS:
        value = getattr(case, field) or ""
        data[field] = value
        data[f"{field}_html"] = str(render_markdown(value))
    return data

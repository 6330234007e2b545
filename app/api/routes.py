"""JSON API v1. Thin handlers: parse, load through policy-scoped getters, call a service, commit."""
from __future__ import annotations

import json

from flask import current_app, request
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

from app import policy
from app.api import bp
from app.api.auth import api_user, token_required
from app.api.errors import ApiError, json_error
from app.api.openapi import openapi_document
from app.api.serializers import attachment_json, case_json, case_summary_json, question_json, question_summary_json
from app.extensions import db
from app.models import Case, Question, QuestionStatus
from app.params import has_lone_surrogates, int_param, clean_text, search_params_from
from app.search.service import search_cases
from app.services import cases as case_service
from app.services import questions as question_service
from app.services.errors import SensitiveDataFound, ServiceError

MAX_PER_PAGE = 100


@bp.errorhandler(ApiError)
def handle_api_error(error: ApiError):
    db.session.rollback()
    return json_error(error.status, error.code, error.message, **error.extra)


@bp.errorhandler(ServiceError)
def handle_service_error(error: ServiceError):
    db.session.rollback()
    extra = {"fields": error.errors} if error.errors else {}
    if isinstance(error, SensitiveDataFound):
        extra["findings"] = [
            {k: f[k] for k in ("field", "kind", "label", "text", "position", "attachment_id") if k in f}
            for f in error.findings
        ]
    return json_error(error.status, error.code, error.message, **extra)


def json_body() -> dict:
    """The request's JSON object ({} for an empty body), or a clear 400/413/415."""

    try:
        raw = request.get_data(cache=True)
    except HTTPException as error:
        if error.code == 413:
            raise ApiError(413, "payload_too_large", "送信されたデータが大きすぎます。") from None
        raise
    if not raw:
        return {}
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Content-Type: application/json で送信してください。")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_encoding", "本文は UTF-8 で送信してください。") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ApiError(400, "malformed_json", f"JSON の形式が正しくありません: {error}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "JSON オブジェクトを送信してください。")
    if has_lone_surrogates(data):
        raise ApiError(400, "invalid_encoding", "文字列に不正な文字（対になっていないサロゲート）が含まれています。")
    return clean_text(data)


def paging() -> tuple[int, int]:
    return (int_param(request.args, "page", "page（ページ）", 1),
            int_param(request.args, "per_page", "per_page（1ページの件数）", current_app.config["PER_PAGE"],
                      maximum=MAX_PER_PAGE))


def list_response(query, serialize):
    page, per_page = paging()
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return {"total": total, "page": page, "per_page": per_page, "results": [serialize(r) for r in rows]}


def visible_question(question_id: int) -> Question:
    question = policy.get_visible_question(api_user(), question_id)
    if question is None:
        raise ApiError(404, "not_found", "相談が見つかりません。")
    return question


def visible_case(case_id: int) -> Case:
    case = policy.get_visible_case(api_user(), case_id)
    if case is None:
        raise ApiError(404, "not_found", "事例が見つかりません。")
    return case


@bp.get("/openapi.json")
def openapi():
    return openapi_document()


@bp.post("/questions")
@token_required
def create_question():
    question = question_service.ask_question(api_user(), json_body())
    db.session.commit()
    return question_json(question, api_user()), 201


@bp.get("/questions")
@token_required
def list_questions():
    query = select(Question).where(policy.visible_questions_clause(api_user()))
    status = request.args.get("status")
    if status:
        if status not in {s.value for s in QuestionStatus}:
            raise ApiError(400, "invalid_parameter",
                           "status は " + "・".join(s.value for s in QuestionStatus) + " のいずれかです。")
        query = query.where(Question.status == status)
    query = query.order_by(Question.created_at.desc(), Question.id.desc())
    return list_response(query, question_summary_json)


@bp.get("/questions/<int:question_id>")
@token_required
def get_question(question_id: int):
    return question_json(visible_question(question_id), api_user())


@bp.post("/questions/<int:question_id>/answers")
@token_required
def create_answer(question_id: int):
    question = visible_question(question_id)
    answer = question_service.post_answer(api_user(), question, json_body())
    db.session.commit()
    return {"id": answer.id, "question_id": question.id, "status": question.status}, 201


@bp.post("/questions/<int:question_id>/comments")
@token_required
def create_comment(question_id: int):
    question = visible_question(question_id)
    comment = question_service.post_comment(api_user(), question, json_body())
    db.session.commit()
    return {"id": comment.id, "question_id": question.id, "status": question.status}, 201


@bp.post("/questions/<int:question_id>/notes")
@token_required
def create_note(question_id: int):
    """An internal note (help desk only): never shown to the municipality."""
    question = visible_question(question_id)
    note = question_service.post_note(api_user(), question, json_body())
    db.session.commit()
    return {"id": note.id, "question_id": question.id}, 201


@bp.patch("/questions/<int:question_id>")
@token_required
def update_question(question_id: int):
    """The help desk's handling: owner (user id or name, null to unassign), priority and its reason,
    kind, and status ``waiting`` (回答待ち)."""
    question = visible_question(question_id)
    data = json_body()
    allowed = {"owner", "priority", "urgent_reason", "kind", "status"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, "validation_failed", f"変更できない項目です: {', '.join(unknown)}",
                       fields={k: "変更できない項目です。" for k in unknown})
    if "status" in data and data["status"] != QuestionStatus.WAITING.value:
        raise ApiError(422, "validation_failed", "status で設定できるのは waiting（回答待ち）だけです。",
                       fields={"status": "waiting だけを指定できます。"})
    if "owner" in data:
        question_service.assign(api_user(), question, data["owner"])
    if {"priority", "urgent_reason", "kind"} & set(data):
        question_service.set_handling(api_user(), question, data)
    if data.get("status") == QuestionStatus.WAITING.value:
        question_service.await_municipality(api_user(), question)
    db.session.commit()
    return question_json(question, api_user())


@bp.post("/questions/<int:question_id>/resolve")
@token_required
def resolve_question(question_id: int):
    question = visible_question(question_id)
    case = question_service.resolve_question(api_user(), question, json_body().get("answer_id"))
    db.session.commit()
    return case_json(case, api_user()), 201


def uploaded_files() -> list:
    """The request's files (multipart/form-data, field ``file``, one or more)."""
    if not request.mimetype.startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "multipart/form-data の file 欄でファイルを送信してください。")
    try:
        files = request.files.getlist("file")
    except HTTPException as error:
        if error.code == 413:
            raise ApiError(413, "payload_too_large", "送信されたデータが大きすぎます。") from None
        raise
    from app.services.attachments import Upload

    uploads = [Upload(f.filename or "", f.read()) for f in files if f and f.filename]
    if not uploads:
        raise ApiError(422, "validation_failed", "file 欄にファイルがありません。", fields={"file": "ファイルを選んでください。"})
    return uploads


@bp.post("/questions/<int:question_id>/attachments")
@token_required
def upload_question_attachments(question_id: int):
    """Attach files to the question itself (post_type=question) or to one of its posts, by its
    author (form fields post_type and post_id)."""
    question = visible_question(question_id)
    kind = request.form.get("post_type") or "question"
    if kind == "note" and not policy.can_read_internal_notes(api_user()):
        raise ApiError(404, "not_found", "投稿が見つかりません。")
    post = question_service.find_post(question, kind, request.form.get("post_id") or question.id)
    if post is None:
        raise ApiError(404, "not_found", "投稿が見つかりません。")
    stored = question_service.attach_files(api_user(), post, uploaded_files())
    db.session.commit()
    return {"attachments": [attachment_json(a) for a in stored]}, 201


@bp.post("/cases/<int:case_id>/attachments")
@token_required
def upload_case_attachments(case_id: int):
    """Add files to a case (help desk); they are carried by the case at once."""
    case = visible_case(case_id)
    uploads = uploaded_files()
    checked = (request.form.get("files_checked") or "").strip().lower() in ("true", "1", "yes")
    case_service.update_attachments(api_user(), case, [a.id for a in case.attachments], uploads, files_checked=checked)
    db.session.commit()
    return case_json(case, api_user()), 201


@bp.get("/attachments/<int:attachment_id>")
@token_required
def download_attachment(attachment_id: int):
    attachment = policy.get_readable_attachment(api_user(), attachment_id)
    if attachment is None:
        raise ApiError(404, "not_found", "添付ファイルが見つかりません。")
    from app.attachments.routes import send_attachment

    return send_attachment(attachment)


@bp.get("/cases")
@token_required
def search_cases_api():
    """Search the case library: the same rules, ranking and permission filter as the page."""
    params, errors = search_params_from(request.args)
    if errors:
        raise ApiError(400, "invalid_parameter", " ".join(errors.values()), fields=errors)
    result = search_cases(api_user(), params)
    if result.unavailable:
        raise ApiError(503, "search_unavailable", result.unavailable)
    return {
        "total": result.total,
        "total_is_lower_bound": result.total_is_lower_bound,
        "page": result.page,
        "per_page": result.per_page,
        "results": [
            {**case_summary_json(hit.case, api_user()), "snippet": str(hit.snippet), "score": round(hit.score, 4)}
            for hit in result.hits
        ],
        "facets": {
            name: [{"value": value, "label": label, "count": count} for value, label, count in values]
            for name, values in result.facets.items()
        },
        "suggestion": {"q": result.suggestion.query} if result.suggestion else None,
    }


@bp.get("/cases/<int:case_id>")
@token_required
def get_case(case_id: int):
    return case_json(visible_case(case_id), api_user())


@bp.patch("/cases/<int:case_id>")
@token_required
def update_case(case_id: int):
    case = visible_case(case_id)
    if not policy.can_edit_case(api_user(), case):
        raise ApiError(403, "forbidden", "この事例を編集することはできません。")
    data = json_body()
    allowed = {"title", "issue", "environment", "cause", "resolution", "category", "tags"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, "validation_failed", f"変更できない項目です: {', '.join(unknown)}",
                       fields={k: "変更できない項目です。" for k in unknown})
    case_service.update_case(api_user(), case, data)
    db.session.commit()
    return case_json(case, api_user())


@bp.post("/cases/<int:case_id>/publish")
@token_required
def publish_case(case_id: int):
    """Publish a draft with a visibility (default private) and anonymity; 409 consent_required
    beyond the owner's consent, 409 sensitive_data with the findings that are neither masked
    nor listed in ``keep``."""
    case = visible_case(case_id)
    data = json_body()
    case_service.publish_case(api_user(), case, data.get("visibility"), data.get("anonymous", False),
                              data.get("keep"))
    db.session.commit()
    return case_json(case, api_user())


@bp.post("/cases/<int:case_id>/consent")
@token_required
def change_consent(case_id: int):
    case = visible_case(case_id)
    data = json_body()
    case_service.change_consent(api_user(), case, data.get("visibility"))
    db.session.commit()
    return case_json(case, api_user())


@bp.post("/cases/<int:case_id>/helpful")
@token_required
def mark_helpful(case_id: int):
    case = visible_case(case_id)
    count = case_service.mark_helpful(api_user(), case)
    db.session.commit()
    return {"id": case.id, "helpful_count": count}


@bp.post("/cases/<int:case_id>/archive")
@token_required
def archive_case(case_id: int):
    case = visible_case(case_id)
    case_service.archive_case(api_user(), case)
    db.session.commit()
    return case_json(case, api_user())

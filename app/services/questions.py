"""Asking, answering, commenting, resolving and closing questions."""
from __future__ import annotations

from app import policy
from app.extensions import db
from app.models import Answer, Case, Comment, Question, QuestionStatus, User, utcnow
from app.services import cases as case_service
from app.services.errors import Conflict, Forbidden, ValidationFailed
from app.services.validation import (
    clean_body, clean_category, clean_consent, clean_title, parse_int, parse_tag_names, tags_for,
)


def ask_question(user: User, data: dict) -> Question:
    if not policy.can_ask(user):
        raise Forbidden("相談を登録できるのは市町職員だけです。")
    errors: dict[str, str] = {}
    title = clean_title(data.get("title"), errors)
    body = clean_body(data.get("body"), errors)
    category = clean_category(data.get("category"), errors)
    tag_names = parse_tag_names(data.get("tags"), errors)
    consent = clean_consent(data.get("sharing_consent"), errors)
    if errors:
        raise ValidationFailed(errors)
    question = Question(
        title=title,
        body=body,
        category=category,
        tags=tags_for(tag_names),
        asker=user,
        municipality_id=user.municipality_id,
        status=QuestionStatus.OPEN.value,
        sharing_consent=consent,
    )
    db.session.add(question)
    db.session.flush()
    return question


def post_answer(user: User, question: Question, data: dict) -> Answer:
    if not policy.can_answer(user, question):
        raise Forbidden("この相談に回答することはできません。")
    errors: dict[str, str] = {}
    body = clean_body(data.get("body"), errors, label="回答")
    if errors:
        raise ValidationFailed(errors)
    answer = Answer(question=question, author=user, body=body)
    db.session.add(answer)
    if question.status == QuestionStatus.OPEN.value:
        question.status = QuestionStatus.ANSWERED.value
    question.updated_at = utcnow()
    db.session.flush()
    return answer


def post_comment(user: User, question: Question, data: dict) -> Comment:
    if not policy.can_comment(user, question):
        raise Forbidden("この相談にコメントすることはできません。")
    errors: dict[str, str] = {}
    body = clean_body(data.get("body"), errors, label="コメント")
    if errors:
        raise ValidationFailed(errors)
    comment = Comment(question=question, author=user, body=body)
    db.session.add(comment)
    question.updated_at = utcnow()
    db.session.flush()
    return comment


def resolve_question(user: User, question: Question, answer_id) -> Case:
    """Mark the answer that resolved the question and create the draft case from the thread."""
    if not policy.can_resolve(user, question):
        if question.status in (QuestionStatus.RESOLVED.value, QuestionStatus.CLOSED.value):
            raise Conflict("この相談はすでに解決済みまたは終了しています。")
        raise Forbidden("この相談を解決済みにすることはできません。")
    answer_id = parse_int(answer_id)
    if answer_id is None:
        raise ValidationFailed({"answer_id": "解決した回答を選んでください。"})
    answer = next((a for a in question.answers if a.id == answer_id), None)
    if answer is None:
        raise ValidationFailed({"answer_id": "この相談の回答ではありません。"})
    now = utcnow()
    question.status = QuestionStatus.RESOLVED.value
    question.resolved_answer = answer
    question.resolved_at = now
    question.updated_at = now
    db.session.flush()
    return case_service.create_draft_from_question(user, question, answer)


def close_question(user: User, question: Question) -> Question:
    if not policy.can_close(user, question):
        if question.status in (QuestionStatus.RESOLVED.value, QuestionStatus.CLOSED.value):
            raise Conflict("この相談はすでに解決済みまたは終了しています。")
        raise Forbidden("この相談を終了することはできません。")
    now = utcnow()
    question.status = QuestionStatus.CLOSED.value
    question.closed_at = now
    question.updated_at = now
    db.session.flush()
    return question

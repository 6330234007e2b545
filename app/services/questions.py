"""A question thread's life: asking, the help desk's work on it (owner, priority, status that says
whose move it is, answers and internal notes), the municipality's replies, edits and withdrawals,
duplicates and merges, resolving and closing.

Status: 受付 (new) until the help desk acts; 対応中 (in_progress) while it is the help desk's move;
回答待ち (waiting) when the help desk asked the municipality something, until the municipality
writes; 解決 (resolved) and 終了 (closed) end it. Time spent 回答待ち does not count towards the
resolution time. Every change that decides from the thread's current state locks its row first.
"""
from __future__ import annotations

from sqlalchemy import func, select, update

from app import policy
from app.extensions import db
from app.models import (
    Answer, Attachment, CannedReply, Case, CaseRevision, CaseState, Comment, InternalNote, PostRevision, Priority, Question,
    QuestionCaseRef, QuestionKind, QuestionStatus, Role, User, Visibility, as_utc, utcnow,
)
from app.search.sync import queue_case
from app.services import attachments as attachment_service
from app.services import audit
from app.services import notifications
from app.services import cases as case_service
from app.services import curation, history
from app.services.accounts import get_user
from app.services.errors import Conflict, Forbidden, ValidationFailed
from app.services.locking import lock_for_update
from app.services.validation import (
    clean_body, clean_category, clean_consent, clean_title, parse_int, parse_tag_names, tags_for,
)

WITHDRAWN_TEXT = "［取り下げられた投稿］"
POST_LABELS = {"question": "相談内容", "answer": "回答", "comment": "コメント", "note": "内部メモ"}
MAX_REASON_CHARS = 200


def _clean_choice(value, enum_class, errors: dict[str, str], field: str, label: str, default: str) -> str:
    if value in (None, ""):
        return default
    if not isinstance(value, str) or value not in {v.value for v in enum_class}:
        choices = "・".join(v.value for v in enum_class)
        errors[field] = f"{label}は {choices} のいずれかです。"
        return default
    return value


def _clean_priority(data: dict, errors: dict[str, str], default: str = Priority.NORMAL.value) -> tuple[str, str]:
    priority = _clean_choice(data.get("priority"), Priority, errors, "priority", "優先度", default)
    reason = data.get("urgent_reason")
    reason = reason.strip() if isinstance(reason, str) else ""
    if priority == Priority.URGENT.value and not reason:
        errors["urgent_reason"] = "至急の理由を書いてください（例: 窓口業務が止まっている）。"
    elif len(reason) > MAX_REASON_CHARS:
        errors["urgent_reason"] = f"至急の理由は{MAX_REASON_CHARS}文字以内にしてください。"
    return priority, reason if priority == Priority.URGENT.value else ""


def _check_files(uploads, errors: dict[str, str]) -> None:
    try:
        attachment_service.check_uploads(list(uploads))
    except ValidationFailed as error:
        errors.update(error.errors)


def ask_question(user: User, data: dict, uploads=()) -> Question:
    if not policy.can_ask(user):
        raise Forbidden("相談を登録できるのは市町職員だけです。")
    errors: dict[str, str] = {}
    title = clean_title(data.get("title"), errors)
    body = clean_body(data.get("body"), errors)
    category = curation.current_category(clean_category(data.get("category"), errors), errors)
    tag_names = curation.current_tag_names(parse_tag_names(data.get("tags"), errors), errors)
    consent = clean_consent(data.get("sharing_consent"), errors)
    about = _about_case(user, data.get("about_case"), errors)
    kind = _clean_choice(data.get("kind"), QuestionKind, errors, "kind", "種類", QuestionKind.QUESTION.value)
    priority, reason = _clean_priority(data, errors)
    _check_files(uploads, errors)
    if errors:
        raise ValidationFailed(errors)
    question = Question(
        title=title, body=body, category=category, tags=tags_for(tag_names), asker=user,
        municipality_id=user.municipality_id, status=QuestionStatus.NEW.value, sharing_consent=consent,
        kind=kind, priority=priority, urgent_reason=reason,
    )
    db.session.add(question)
    db.session.flush()
    if about is not None:
        db.session.add(QuestionCaseRef(question_id=question.id, case_id=about.id))
    attachment_service.store(user, list(uploads), question=question, post_type="question", post_id=question.id)
    notifications.question_asked(question, user)
    return question


def _about_case(user: User, value, errors: dict[str, str]) -> Case | None:
    """「この事例について相談する」: the case the question refers to (one the asker may read)."""
    if value in (None, ""):
        return None
    case_id = parse_int(value)
    case = policy.get_visible_case(user, case_id) if case_id is not None else None
    if case is None or not policy.can_ask_about_case(user, case):
        errors["about_case"] = "参照する事例が見つかりません。"
        return None
    return case


def case_asked_about(question: Question, user: User | None) -> Case | None:
    """The case the question was asked about, if ``user`` may read it."""
    case_id = db.session.scalar(select(QuestionCaseRef.case_id).where(QuestionCaseRef.question_id == question.id))
    case = db.session.get(Case, case_id) if case_id is not None else None
    return case if case is not None and policy.can_view_case(user, case) else None


# --- whose move it is -------------------------------------------------------------------------

def _stop_waiting(question: Question, now) -> None:
    if question.waiting_since is not None:
        question.waiting_seconds = question.waited_seconds(now)
        question.waiting_since = None


def _helpdesk_replied(user: User, question: Question, await_reply: bool) -> None:
    """A public post of the help desk: the first response, the owner if there was none, and the
    status (回答待ち when it asks the municipality something, else 対応中)."""
    now = utcnow()
    if question.first_response_at is None:
        question.first_response_at = now
    if question.owner_id is None:
        question.owner = user
    if await_reply:
        if question.waiting_since is None:
            question.waiting_since = now
        question.status = QuestionStatus.WAITING.value
    else:
        _stop_waiting(question, now)
        question.status = QuestionStatus.IN_PROGRESS.value


def _clean_flag(value, field: str) -> bool:
    if value in (None, ""):
        return False
    if isinstance(value, bool):
        return value
    if value in ("y", "on", "1", "true"):
        return True
    raise ValidationFailed({field: f"{field} は true か false です。"})


def post_answer(user: User, question: Question, data: dict, uploads=()) -> Answer:
    lock_for_update(question)
    if not policy.can_answer(user, question):
        raise Forbidden("この相談に回答することはできません。")
    errors: dict[str, str] = {}
    body = clean_body(data.get("body"), errors, label="回答")
    _check_files(uploads, errors)
    if errors:
        raise ValidationFailed(errors)
    await_reply = _clean_flag(data.get("await_reply"), "await_reply")
    answer = Answer(question=question, author=user, body=body)
    db.session.add(answer)
    _helpdesk_replied(user, question, await_reply)
    question.updated_at = utcnow()
    db.session.flush()
    attachment_service.store(user, list(uploads), question=question, post_type="answer", post_id=answer.id)
    notifications.post_added(question, "answer", answer.id, user)
    return answer


def link_refusal(question: Question, case: Case) -> str | None:
    """Why ``case`` cannot answer ``question`` (the asking municipality could not open it), or None."""
    label = f"事例 #{case.id}"
    if case.state == CaseState.DRAFT.value:
        return f"{label} は下書きです。公開してからリンクしてください。"
    if case.state == CaseState.ARCHIVED.value:
        return f"{label} はアーカイブされています。"
    if policy.municipality_may_read(question.municipality_id, case):
        return None
    asker = question.municipality.name
    shared = case.shared_visibility
    consent = ""
    if Visibility(case.visibility).width > case.consent_enum.width:
        consent = f"（所有する市町の同意が「{case.consent_enum.consent_label}」までのため）"
    if shared is Visibility.PRIVATE:
        reason = f"所有する団体の中だけで公開されている{consent}"
    else:
        reason = f"近隣・同じグループの市町までの共有{consent}で、{asker}は所有する市町の近隣でも同じグループでもない"
    return (f"{label} は{asker}には共有されていないため、この相談にはリンクできません: {reason}ためです。"
            "共有範囲を広げる依頼をするか、回答を書いてください。")


def answer_with_case(user: User, question: Question, data: dict) -> Answer:
    """「この事例で回答」: an answer that links a case of the library (KCS "link"). Only a published
    case the asking municipality may read; otherwise the reason is the error."""
    lock_for_update(question)
    if not policy.can_answer(user, question):
        raise Forbidden("この相談に回答することはできません。")
    case_id = parse_int(data.get("case_id"))
    case = policy.get_visible_case(user, case_id) if case_id is not None else None
    if case is None:
        raise ValidationFailed({"case_id": "事例番号が見つかりません。"})
    refusal = link_refusal(question, case)
    if refusal is not None or not policy.can_link_case(user, question, case):
        raise ValidationFailed({"case_id": refusal or "この事例はリンクできません。"})
    errors: dict[str, str] = {}
    text = data.get("body") if isinstance(data.get("body"), str) and data.get("body").strip() else \
        "次の事例で回答します。手順と原因をご確認ください。解決しない場合はコメントでお知らせください。"
    body = clean_body(text, errors, label="回答")
    if errors:
        raise ValidationFailed(errors)
    await_reply = _clean_flag(data.get("await_reply"), "await_reply")
    answer = Answer(question=question, author=user, body=body, linked_case_id=case.id)
    db.session.add(answer)
    _helpdesk_replied(user, question, await_reply)
    question.updated_at = utcnow()
    db.session.flush()
    notifications.post_added(question, "answer", answer.id, user)
    return answer


def linked_case(answer: Answer, user: User | None) -> Case | None:
    """The case an answer links, if ``user`` may read it now."""
    if answer.linked_case_id is None or answer.is_withdrawn:
        return None
    case = db.session.get(Case, answer.linked_case_id)
    return case if case is not None and policy.can_view_case(user, case) else None


def questions_answered(user: User | None, case: Case) -> int:
    """How many questions ``user`` may read that an answer linking this case answered (withdrawn
    answers do not count): the help desk counts all, a municipality its own. Counting others'
    threads would tell a reader that another municipality asked, and when."""
    return db.session.scalar(
        select(func.count(func.distinct(Answer.question_id)))
        .join(Question, Question.id == Answer.question_id)
        .where(Answer.linked_case_id == case.id, Answer.withdrawn_at.is_(None), policy.visible_questions_clause(user))
    ) or 0


def post_comment(user: User, question: Question, data: dict, uploads=()) -> Comment:
    lock_for_update(question)
    if not policy.can_comment(user, question):
        raise Forbidden("この相談にコメントすることはできません。")
    errors: dict[str, str] = {}
    body = clean_body(data.get("body"), errors, label="コメント")
    _check_files(uploads, errors)
    if errors:
        raise ValidationFailed(errors)
    await_reply = _clean_flag(data.get("await_reply"), "await_reply")
    comment = Comment(question=question, author=user, body=body)
    db.session.add(comment)
    if policy.is_helpdesk(user):
        _helpdesk_replied(user, question, await_reply)
    elif question.status == QuestionStatus.WAITING.value:
        # The municipality wrote back: the help desk's move again.
        _stop_waiting(question, utcnow())
        question.status = QuestionStatus.IN_PROGRESS.value
    question.updated_at = utcnow()
    db.session.flush()
    attachment_service.store(user, list(uploads), question=question, post_type="comment", post_id=comment.id)
    notifications.post_added(question, "comment", comment.id, user)
    return comment


def post_note(user: User, question: Question, data: dict, uploads=()) -> InternalNote:
    if not policy.can_write_internal_note(user, question):
        raise Forbidden("内部メモを書けるのは県ヘルプデスクだけです。")
    errors: dict[str, str] = {}
    body = clean_body(data.get("body"), errors, label="内部メモ")
    _check_files(uploads, errors)
    if errors:
        raise ValidationFailed(errors)
    note = InternalNote(question=question, author=user, body=body)
    db.session.add(note)
    db.session.flush()
    attachment_service.store(user, list(uploads), question=question, post_type="note", post_id=note.id)
    return note


# --- the help desk's handling -------------------------------------------------------------------

def _helpdesk_member(value) -> User | None:
    """An enabled help-desk user by id or user name (None for 'unassigned')."""
    if value in (None, "", 0, "0"):
        return None
    user_id = parse_int(value)
    if user_id is not None:
        user = db.session.get(User, user_id)
    else:
        user = get_user(value) if isinstance(value, str) else None
    if user is None or not user.is_enabled or user.role != Role.HELPDESK.value:
        raise ValidationFailed({"owner": "担当者には有効な県ヘルプデスクのアカウントを選んでください。"})
    return user


def assign(user: User, question: Question, owner_value, expected_owner_id=...) -> Question:
    """Take (owner = yourself), hand over to a colleague, or leave unassigned. With
    ``expected_owner_id`` the change happens only if the owner is still the one the page showed."""
    lock_for_update(question)
    if not policy.can_run_desk(user, question):
        raise Forbidden("担当を変更できるのは県ヘルプデスクだけです（終わった相談は変更できません）。")
    owner = _helpdesk_member(owner_value)
    if expected_owner_id is not ... and question.owner_id != expected_owner_id:
        current = question.owner.label if question.owner else "未割り当て"
        raise Conflict(f"担当者はすでに変わっています（現在: {current}）。画面を読み込み直してください。")
    previous = question.owner_id
    question.owner = owner
    if owner is not None and question.status == QuestionStatus.NEW.value:
        question.status = QuestionStatus.IN_PROGRESS.value
    question.updated_at = utcnow()
    db.session.flush()
    if owner is not None and owner.id != previous and owner.id != user.id:
        notifications.question_assigned(question, owner, user)
    return question


def set_handling(user: User, question: Question, data: dict) -> Question:
    """The help desk changes priority, its reason and the kind of question."""
    lock_for_update(question)
    if not policy.can_run_desk(user, question):
        raise Forbidden("優先度と種類を変更できるのは県ヘルプデスクだけです。")
    errors: dict[str, str] = {}
    kind = _clean_choice(data.get("kind"), QuestionKind, errors, "kind", "種類", question.kind)
    priority, reason = _clean_priority({"priority": data.get("priority") or question.priority,
                                        "urgent_reason": data.get("urgent_reason", question.urgent_reason)}, errors)
    if errors:
        raise ValidationFailed(errors)
    question.kind, question.priority, question.urgent_reason = kind, priority, reason
    question.updated_at = utcnow()
    db.session.flush()
    return question


def await_municipality(user: User, question: Question) -> Question:
    """Mark 回答待ち without a post (the question was asked by phone, say)."""
    lock_for_update(question)
    if not policy.can_run_desk(user, question):
        raise Forbidden("回答待ちにできるのは県ヘルプデスクだけです。")
    if question.status == QuestionStatus.WAITING.value:
        raise Conflict("すでに回答待ちです。")
    question.waiting_since = utcnow()
    question.status = QuestionStatus.WAITING.value
    db.session.flush()
    notifications.status_changed(question, user)
    return question


# --- resolving and closing ------------------------------------------------------------------------

def _end(question: Question, status: QuestionStatus) -> None:
    now = utcnow()
    _stop_waiting(question, now)
    question.status = status.value
    question.updated_at = now
    if status is QuestionStatus.RESOLVED:
        question.resolved_at = now
    else:
        question.closed_at = now


def resolve_question(user: User, question: Question, answer_id) -> Case:
    """Mark the answer that resolved the question and create the draft case from the thread."""
    lock_for_update(question)
    if not policy.can_resolve(user, question):
        if not question.is_active:
            raise Conflict("この相談はすでに解決済みまたは終了しています。")
        raise Forbidden("この相談を解決済みにすることはできません。")
    answer_id = parse_int(answer_id)
    if answer_id is None:
        raise ValidationFailed({"answer_id": "解決した回答を選んでください。"})
    answer = next((a for a in question.answers if a.id == answer_id and not a.is_withdrawn), None)
    if answer is None:
        raise ValidationFailed({"answer_id": "この相談の回答ではありません。"})
    question.resolved_answer = answer
    _end(question, QuestionStatus.RESOLVED)
    db.session.flush()
    linked = db.session.get(Case, answer.linked_case_id) if answer.linked_case_id else None
    if linked is not None and linked.state == CaseState.PUBLISHED.value \
            and policy.municipality_may_read(question.municipality_id, linked):
        # Resolved by a case of the library: no new draft, the link is the reuse.
        notifications.question_resolved(question, user)
        return linked
    case = case_service.create_draft_from_question(user, question, answer)
    notifications.question_resolved(question, user)
    notifications.case_drafted(case, user)
    return case


def close_question(user: User, question: Question) -> Question:
    lock_for_update(question)
    if not policy.can_close(user, question):
        if not question.is_active:
            raise Conflict("この相談はすでに解決済みまたは終了しています。")
        raise Forbidden("この相談を終了することはできません。")
    _end(question, QuestionStatus.CLOSED)
    db.session.flush()
    notifications.status_changed(question, user)
    return question


def close_as_duplicate(user: User, question: Question, original_id) -> Question:
    """Close a question that asks what another one already asks; each thread links the other."""
    lock_for_update(question)
    if not policy.can_run_desk(user, question):
        raise Forbidden("重複として終了できるのは県ヘルプデスクだけです（終わった相談は除く）。")
    original = _other_question(user, original_id, question)
    question.duplicate_of = original
    _end(question, QuestionStatus.CLOSED)
    db.session.flush()
    notifications.status_changed(question, user)
    return question


def merge_into(user: User, source: Question, target_id) -> Question:
    """Move every post of ``source`` into the target thread of the same municipality (in time
    order there) and close ``source`` with a link to it."""
    lock_for_update(source)
    if not policy.can_run_desk(user, source):
        raise Forbidden("スレッドを統合できるのは県ヘルプデスクだけです（終わった相談は除く）。")
    target = _other_question(user, target_id, source)
    lock_for_update(target)
    if target.municipality_id != source.municipality_id:
        raise ValidationFailed({"target": "統合できるのは同じ市町の相談どうしだけです。"})
    if not target.is_active:
        raise ValidationFailed({"target": "統合先の相談はすでに終わっています。"})
    for model in (Answer, Comment, InternalNote):
        db.session.execute(update(model).where(model.question_id == source.id).values(question_id=target.id))
    # The source's own text becomes a comment of the target, with its author, time and files.
    moved = Comment(question_id=target.id, author_id=source.asker_id, created_at=source.created_at,
                    merged_from_id=source.id, body=f"（統合された相談 #{source.id}「{source.title}」）\n\n{source.body}")
    db.session.add(moved)
    db.session.flush()
    db.session.execute(update(Attachment).where(Attachment.question_id == source.id, Attachment.post_type == "question")
                       .values(post_type="comment", post_id=moved.id))
    db.session.execute(update(Attachment).where(Attachment.question_id == source.id).values(question_id=target.id))
    if target.first_response_at is None or (
            source.first_response_at is not None and as_utc(source.first_response_at) < as_utc(target.first_response_at)):
        target.first_response_at = source.first_response_at
    source.merged_into = target
    source.resolved_answer = None
    _end(source, QuestionStatus.CLOSED)
    target.updated_at = utcnow()
    db.session.flush()
    db.session.expire(source)
    db.session.expire(target)
    return target


def _other_question(user: User, value, question: Question) -> Question:
    other_id = parse_int(value)
    other = policy.get_visible_question(user, other_id) if other_id is not None else None
    if other is None:
        raise ValidationFailed({"target": "相談番号が見つかりません。"})
    if other.id == question.id:
        raise ValidationFailed({"target": "同じ相談は指定できません。"})
    return other


# --- edits and withdrawals ------------------------------------------------------------------------

POST_MODELS = {"question": Question, "answer": Answer, "comment": Comment, "note": InternalNote}


def post_type(post) -> str:
    return next(name for name, model in POST_MODELS.items() if isinstance(post, model))


def find_post(question: Question, kind: str, post_id) -> object | None:
    """A post of this thread by kind and id (the question itself for kind 'question')."""
    if kind == "question":
        return question
    model = POST_MODELS.get(kind)
    post_id = parse_int(post_id)
    if model is None or post_id is None:
        return None
    post = db.session.get(model, post_id)
    return post if post is not None and post.question_id == question.id else None


def edit_post(user: User, post, data: dict):
    """The author changes the text; the earlier text is kept as a revision for the help desk."""
    lock_for_update(post)
    if not policy.can_edit_post(user, post):
        raise Forbidden("この投稿は編集できません（自分の投稿だけ、取り下げ・終了したものは除く）。")
    errors: dict[str, str] = {}
    kind = post_type(post)
    body = clean_body(data.get("body"), errors, label=POST_LABELS[kind])
    title = clean_title(data.get("title", post.title), errors) if kind == "question" else None
    if errors:
        raise ValidationFailed(errors)
    if body == post.body and (title is None or title == post.title):
        return post
    db.session.add(PostRevision(post_type=kind, post_id=post.id, body=post.body,
                                title=post.title if kind == "question" else None, edited_by=user))
    post.body = body
    if title is not None:
        post.title = title
    post.edited_at = utcnow()
    db.session.flush()
    return post


def revisions(post) -> list[PostRevision]:
    return list(db.session.scalars(
        select(PostRevision).where(PostRevision.post_type == post_type(post), PostRevision.post_id == post.id)
        .order_by(PostRevision.id)
    ))


def withdraw_post(user: User, post):
    """Remove a post's text everywhere (a password pasted by mistake): the post, its earlier
    versions, and the same text in a case drafted from the thread. A question merged into another
    thread lives on there as a comment (``Comment.merged_from_id``): withdrawing either withdraws
    both, and both threads' cases lose the texts of both. Who withdrew it and when stay."""
    lock_for_update(post)
    if not policy.can_withdraw_post(user, post):
        raise Forbidden("この投稿は取り下げられません。")
    posts = [post, *(twin for twin in [_merged_twin(post)] if twin is not None and not twin.is_withdrawn)]
    texts = [t for each in posts for t in [each.body, *(r.body for r in revisions(each))] if t.strip()]
    for each in posts:
        _withdraw(user, each, texts)
    return post


def _merged_twin(post):
    """The other copy of a merged question's text: the comment ``merge_into`` made of it, or, for
    that comment, the merged question."""
    if isinstance(post, Question):
        return db.session.scalar(select(Comment).where(Comment.merged_from_id == post.id).limit(1))
    if isinstance(post, Comment) and post.merged_from_id is not None:
        return db.session.get(Question, post.merged_from_id)
    return None


def _withdraw(user: User, post, texts: list[str]) -> None:
    lock_for_update(post)
    kind = post_type(post)
    db.session.execute(PostRevision.__table__.delete().where(
        PostRevision.post_type == kind, PostRevision.post_id == post.id))
    post.body = ""
    post.withdrawn_at = utcnow()
    post.withdrawn_by = user
    if kind == "answer":
        post.linked_case_id = None
    attachment_service.delete_for_post(kind, post.id)
    question = post if kind == "question" else post.question
    case = db.session.scalar(select(Case).where(Case.question_id == question.id))
    if case is not None:
        _remove_from_case(user, case, texts)
    db.session.flush()
    audit.record(user, "post.withdraw", question, f"相談 #{question.id} の{POST_LABELS[kind]}を取り下げ")


def _remove_from_case(user: User, case: Case, texts: list[str]) -> None:
    lock_for_update(case)
    changed = False
    for field in ("title", "issue", "environment", "cause", "resolution"):
        value = getattr(case, field) or ""
        for text in sorted(texts, key=len, reverse=True):
            if text.strip() and text.strip() in value:
                value = value.replace(text.strip(), WITHDRAWN_TEXT)
        if value != (getattr(case, field) or ""):
            setattr(case, field, value)
            changed = True
    # Earlier revisions of the case lose the text too (they are part of "everywhere").
    for revision in db.session.scalars(select(CaseRevision).where(CaseRevision.case_id == case.id)):
        for field in ("title", "issue", "environment", "cause", "resolution"):
            value = getattr(revision, field) or ""
            for text in sorted(texts, key=len, reverse=True):
                if text.strip() and text.strip() in value:
                    value = value.replace(text.strip(), WITHDRAWN_TEXT)
            if value != (getattr(revision, field) or ""):
                setattr(revision, field, value)
    if changed:
        case.updated_at = utcnow()
        case.updated_by = user
        queue_case(case)
        history.note(db.session, case, "取り下げられた投稿の文章を除去", user)
        audit.record(user, "case.edit", case, f"#{case.id}: 取り下げられた投稿の文章を除きました")


def timeline(question: Question, user: User | None) -> list[tuple[str, object]]:
    """Answers, comments and (for the help desk) internal notes, in time order."""
    items = [("answer", a) for a in question.answers] + [("comment", c) for c in question.comments]
    if policy.can_read_internal_notes(user):
        items += [("note", n) for n in question.notes]
    return sorted(items, key=lambda item: (as_utc(item[1].created_at), item[0], item[1].id))


def thread_links(question: Question, user: User | None) -> dict[str, list[Question]]:
    """Questions closed as duplicates of this one, or merged into it, that the user may see."""
    result = {}
    for name, column in (("duplicates", Question.duplicate_of_id), ("merged", Question.merged_into_id)):
        result[name] = list(db.session.scalars(
            select(Question).where(column == question.id, policy.visible_questions_clause(user)).order_by(Question.id)))
    return result


# --- canned replies -------------------------------------------------------------------------------

def save_canned_reply(user: User, reply: CannedReply | None, title, body) -> CannedReply:
    if not policy.can_manage_canned_replies(user):
        raise Forbidden("定型文を管理できるのは県ヘルプデスクだけです。")
    errors: dict[str, str] = {}
    title = title.strip() if isinstance(title, str) else ""
    if not title or len(title) > 100:
        errors["title"] = "名前を100文字以内で入力してください。"
    body = clean_body(body, errors, label="本文")
    if not errors:
        taken = db.session.scalar(select(CannedReply.id).where(CannedReply.title == title))
        if taken is not None and (reply is None or taken != reply.id):
            errors["title"] = f"「{title}」という定型文はすでにあります。"
    if errors:
        raise ValidationFailed(errors)
    if reply is None:
        reply = CannedReply(title=title, body=body, updated_by=user)
        db.session.add(reply)
    else:
        reply.title, reply.body, reply.updated_by = title, body, user
    db.session.flush()
    return reply


def attach_files(user: User, post, uploads) -> list[Attachment]:
    """Add files to a post after it was written (its author, while it may still be edited)."""
    lock_for_update(post)
    if not policy.can_edit_post(user, post):
        raise Forbidden("この投稿にはファイルを添付できません（自分の投稿だけ、取り下げ・終了したものは除く）。")
    if not uploads:
        raise ValidationFailed({"attachments": "ファイルを選んでください。"})
    question = post if isinstance(post, Question) else post.question
    return attachment_service.store(user, list(uploads), question=question, post_type=post_type(post), post_id=post.id)

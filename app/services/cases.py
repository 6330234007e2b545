"""Drafting, editing and publishing cases."""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from app import policy
from app.extensions import db
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.models import (
    Answer, Case, CaseHelpful, CaseRevision, Category, CaseState, CaseView, ConsentRequest, Question, SensitiveName, User,
    Visibility, as_utc, utcnow,
)
from app.search.sync import queue_case
from app.services import attachments as attachment_service
from app.services import audit, curation, history, review
from app.services import notifications
from app.services.errors import Conflict, ConsentRequired, Forbidden, SensitiveDataFound, ValidationFailed
from app.services.locking import lock_for_update
from app.services.sensitive import find_sensitive
from app.models.case import ArticleType, CaseKind
from app.services.validation import (
    clean_body, clean_category, clean_consent, clean_title, parse_tag_names, tags_for,
)

JST = ZoneInfo("Asia/Tokyo")
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


# --- articles ---------------------------------------------------------------------------------

ARTICLE_TYPES = {t.value: t for t in ArticleType}


def clean_article_type(value, errors: dict[str, str], field: str = "article_type") -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        errors[field] = "記事の種類（お知らせ・手順書・注意喚起）を選んでください。"
        return ""
    if not isinstance(value, str) or value.strip() not in ARTICLE_TYPES:
        errors[field] = "記事の種類は notice（お知らせ）、procedure（手順書）、advisory（注意喚起）のいずれかです。"
        return ""
    return value.strip()


def create_article(user: User, data: dict, uploads=()) -> Case:
    """The help desk writes an article (お知らせ・手順書・注意喚起) directly, as a draft: no question,
    owned by the prefecture (which decides itself how far it is shared, at publication)."""
    if not policy.can_write_article(user):
        raise Forbidden("記事を書けるのは県ヘルプデスクだけです。")
    errors: dict[str, str] = {}
    title = clean_title(data.get("title"), errors)
    article_type = clean_article_type(data.get("article_type"), errors)
    category = curation.current_category(clean_category(data.get("category"), errors), errors)
    tag_names = curation.current_tag_names(parse_tag_names(data.get("tags"), errors), errors)
    body = clean_body(data.get("body"), errors, field="body", label="本文")
    if errors:
        raise ValidationFailed(errors)
    case = Case(
        kind=CaseKind.ARTICLE.value, article_type=article_type, title=title, issue=body, environment="",
        cause="", resolution="", category=category, tags=tags_for(tag_names), municipality_id=None,
        sharing_consent=Visibility.ALL.value, visibility=Visibility.PRIVATE.value, question=None,
        state=CaseState.DRAFT.value, created_by=user, updated_by=user,
    )
    db.session.add(case)
    db.session.flush()
    history.note(db.session, case, "記事を作成", user)
    if uploads:
        update_attachments(user, case, [], uploads)
    audit.record(user, "case.edit", case, f"#{case.id} {ArticleType(article_type).label}「{case.title}」を作成")
    return case


def update_case(user: User, case: Case, data: dict) -> Case:
    """Change the given fields (a partial update); unknown or absent keys are left alone."""
    lock_for_update(case)  # how far it is shared decides what the edit may add
    if not policy.can_edit_case(user, case):
        raise Forbidden("この事例を編集することはできません。")
    errors: dict[str, str] = {}
    changes: dict = {}
    if "title" in data:
        changes["title"] = clean_title(data["title"], errors)
    for field, label in EDITABLE_TEXT.items():
        if field in data:
            # An article's body is kept in ``issue``; it has no other required text.
            required = field == "issue" if case.is_article else field in ("issue", "resolution")
            label = "本文" if case.is_article and field == "issue" else label
            changes[field] = clean_body(data[field], errors, field=field, label=label, required=required)
    if "article_type" in data:
        if case.is_article:
            changes["article_type"] = clean_article_type(data["article_type"], errors)
        elif data["article_type"] not in (None, ""):
            errors["article_type"] = "記事の種類を付けられるのは記事だけです。"
    if "category" in data:
        changes["category"] = curation.current_category(clean_category(data["category"], errors), errors,
                                                        keep=case.category)
    if "tags" in data:
        changes["tags"] = curation.current_tag_names(parse_tag_names(data["tags"], errors), errors,
                                                     keep=[t.name for t in case.tags])
    if errors:
        raise ValidationFailed(errors)
    if case.shared_beyond_owner:
        # A case already shared beyond its owner: an edit may not add details that must not travel.
        values = {k: v for k, v in changes.items() if k in SHARED_FIELDS}
        if "tags" in changes:
            values["tags_names"] = changes["tags"]
        before = {(f["field"], f["text"]) for f in sensitive_findings(case)}
        added = [f for f in sensitive_findings(case, values=values) if (f["field"], f["text"]) not in before]
        if added:
            raise SensitiveDataFound(
                f"公開中の事例に個別の情報が {len(added)} 件加わります。伏せてから保存してください: "
                + "、".join(f"{f['label']}「{f['text']}」" for f in added), added)
    if "tags" in changes:
        changes["tags"] = tags_for(changes["tags"])
    changed = [key for key, value in changes.items() if getattr(case, key) != value]
    for key, value in changes.items():
        setattr(case, key, value)
    case.updated_by = user
    case.updated_at = utcnow()
    if changed and case.state == CaseState.PUBLISHED.value:
        # The help desk worked on the published text: that is a review too.
        case.last_reviewed_at = case.updated_at
        review.schedule(case, case.updated_at)
    db.session.flush()
    queue_case(case)
    if changed:
        audit.record(user, "case.edit", case, f"#{case.id} {case.title}: {', '.join(changed)}")
    return case


# --- history ----------------------------------------------------------------------------------

def get_revision(case: Case, revision_id) -> CaseRevision | None:
    revision = db.session.get(CaseRevision, revision_id) if isinstance(revision_id, int) else None
    return revision if revision is not None and revision.case_id == case.id else None


def restore_revision(user: User, case: Case, revision: CaseRevision) -> Case:
    """Bring an earlier revision's content (title, texts, category, tags) back as a new revision.
    Sharing stays as it is (consent is the owner's decision). It is an edit: a case shared beyond
    its owner takes back no detail the sensitive-data check finds (a masked IP address, say)."""
    lock_for_update(case)
    if not policy.can_restore_revision(user, case):
        raise Forbidden("この事例の以前の版を復元することはできません。")
    if revision.case_id != case.id or not policy.can_read_revision_text(user, case, revision):
        raise Forbidden("この版を読むことはできません。")
    current = history.snapshot(db.session, case)
    wanted = {field: getattr(revision, field) for field in ("title", *EDITABLE_TEXT)}
    category = db.session.get(Category, revision.category_id) if revision.category_id else None
    if category is None:
        category = case.category
    if all(current[k] == v for k, v in wanted.items()) and current["tags"] == revision.tags \
            and current["category_id"] == category.id:
        raise Conflict(f"版{revision.number}は現在の内容と同じです。")
    history.note(db.session, case, f"版{revision.number}を復元", user)
    data = {**wanted, "category": category.slug, "tags": revision.tag_list}
    return update_case(user, case, data)


# --- sharing ----------------------------------------------------------------------------------

SHARED_FIELDS = ("title", "issue", "environment", "cause", "resolution")
SHARED_FIELD_LABELS = {"title": "件名", **EDITABLE_TEXT, "tags": "タグ"}


def personal_names() -> list[str]:
    return list(db.session.scalars(select(SensitiveName.name).order_by(SensitiveName.name)))


def owner_names(case: Case, anonymous: bool) -> list[str]:
    """What would give away an anonymous case's owner: its name, code and romanised names (as
    in ``vpn.city.kure.lg.jp``)."""
    if not anonymous or case.municipality is None:
        return []
    m = case.municipality
    return [m.name, m.code, *m.roman_names.split()]


def _field_texts(case: Case, values: dict | None = None) -> dict[str, str]:
    values = values or {}
    texts = {field: values.get(field, getattr(case, field)) or "" for field in SHARED_FIELDS}
    texts["tags"] = "、".join(values.get("tags_names") or [t.name for t in case.tags])
    return texts


UNCHECKED = "unchecked"
UNCHECKED_LABEL = "中身を自動で確認できないファイル"


def sensitive_findings(case: Case, anonymous: bool | None = None, values: dict | None = None,
                       attachments: list | None = None) -> list[dict]:
    """Every sensitive detail in the case's fields and tags, and in the names (all files) and texts
    (text files) of its attachments, as {field, kind, label, text, position}; an attachment's
    findings name it (``attachment_id``, ``attachment``). A file whose content the check cannot
    read (an image, PDF, Excel, Word or ZIP file: a screenshot shows IP addresses as well as a log
    does) is a finding of kind ``unchecked``, its text the file name: a person opens it and keeps
    it with a reason, or takes it off the case."""
    names = personal_names()
    owners = owner_names(case, case.anonymous if anonymous is None else anonymous)
    findings = []
    for field, text in _field_texts(case, values).items():
        for finding in find_sensitive(text, names, owners):
            findings.append({"field": field, "kind": finding.kind, "label": finding.label,
                             "text": finding.text, "position": finding.start, "end": finding.end})
    for attachment in (case.attachments if attachments is None else attachments):
        for part, text in (("name", attachment.filename), ("text", attachment_service.full_text(attachment))):
            for finding in find_sensitive(text, names, owners):
                findings.append({"field": "attachments", "kind": finding.kind, "label": finding.label,
                                 "text": finding.text, "position": finding.start, "end": finding.end,
                                 "attachment_id": attachment.id, "attachment": attachment.filename, "part": part})
        if not attachment.is_text:
            findings.append({"field": "attachments", "kind": UNCHECKED, "label": UNCHECKED_LABEL,
                             "text": attachment.filename, "position": 0, "end": len(attachment.filename),
                             "attachment_id": attachment.id, "attachment": attachment.filename, "part": "content"})
    return findings


def _clean_visibility(value, field: str = "visibility", required: bool = False) -> str:
    errors: dict[str, str] = {}
    value = clean_consent(value, errors, field=field, required=required, label="公開範囲")
    if errors:
        raise ValidationFailed(errors)
    return value


def _clean_keep(keep) -> dict[str, str]:
    """{"text": reason} for the findings the help desk keeps on purpose (a reason is required)."""
    if keep in (None, ""):
        return {}
    if not isinstance(keep, list) or not all(isinstance(k, dict) for k in keep):
        raise ValidationFailed({"keep": "keep は {text, reason} のリストで指定してください。"})
    kept = {}
    for item in keep:
        text, reason = item.get("text"), item.get("reason")
        if not isinstance(text, str) or not text or not isinstance(reason, str) or not reason.strip():
            raise ValidationFailed({"keep": "残す項目には、その文字列と理由の両方が必要です。"})
        kept[text] = reason.strip()
    return kept


def _apply_sharing(user: User, case: Case, visibility: str, anonymous, keep) -> tuple[str, dict[str, str]]:
    visibility = _clean_visibility(visibility)
    if not isinstance(anonymous, bool):
        raise ValidationFailed({"anonymous": "anonymous は true か false です。"})
    kept = _clean_keep(keep)
    if Visibility(visibility).width > Visibility(case.sharing_consent).width:
        raise ConsentRequired(
            f"所有する市町の同意（{Visibility(case.sharing_consent).label}）より広くは公開できません。"
        )
    if visibility != Visibility.PRIVATE.value:
        open_findings = [f for f in sensitive_findings(case, anonymous) if f["text"] not in kept]
        if open_findings:
            files = sum(f["kind"] == UNCHECKED for f in open_findings)
            details = len(open_findings) - files
            raise SensitiveDataFound("".join([
                f"個別の情報が {details} 件あります。伏せるか、理由を添えて残してください。" if details else "",
                f"中身を自動で確認できないファイルが {files} 件あります。開いて確認し、理由を添えて残すか、事例から外してください。"
                if files else ""]), open_findings)
    case.visibility = visibility
    case.anonymous = anonymous
    return visibility, kept


def _kept_summary(kept: dict[str, str]) -> str:
    """Kept findings for the audit log: the reason, and the text unless it is a secret."""
    parts = []
    for text, reason in kept.items():
        shown = "（パスワード等のため記録しません）" if any(f.kind == "secret" for f in find_sensitive(text)) else f"「{text}」"
        parts.append(f"／残した{shown}: {reason}")
    return "".join(parts)


def publish_case(user: User, case: Case, visibility: str | None = None, anonymous: bool = False,
                 keep=None) -> Case:
    """Publish a draft: its visibility (default private) never wider than the owner's consent;
    beyond the owner, every sensitive detail must be masked or kept with a reason."""
    lock_for_update(case)  # the consent and state decided on are the ones written against
    if case.state == CaseState.PUBLISHED.value and policy.is_helpdesk(user):
        raise Conflict("この事例はすでに公開されています。")
    if not policy.can_publish_case(user, case):
        raise Forbidden("この事例を公開することはできません。")
    errors: dict[str, str] = {}
    clean_title(case.title, errors)
    if case.is_article:
        clean_body(case.issue, errors, field="issue", label="本文")
    else:
        clean_body(case.issue, errors, field="issue", label="症状・質問")
        clean_body(case.resolution, errors, field="resolution", label="対応")
    if errors:
        raise ValidationFailed(errors)
    visibility, kept = _apply_sharing(user, case, visibility, anonymous, keep)
    now = utcnow()
    case.state = CaseState.PUBLISHED.value
    case.published_at = now
    case.updated_at = now
    case.updated_by = user
    review.schedule(case, now)
    db.session.flush()
    queue_case(case)
    audit.record(user, "case.publish", case,
                 f"#{case.id} {case.title}（公開範囲: {Visibility(visibility).label}{'・匿名' if case.anonymous else ''}）"
                 + _kept_summary(kept))
    notifications.case_published(case, user)
    return case


def change_visibility(user: User, case: Case, visibility: str | None, anonymous: bool = False, keep=None) -> Case:
    lock_for_update(case)
    if not policy.can_change_visibility(user, case):
        if case.state != CaseState.PUBLISHED.value and policy.is_helpdesk(user):
            raise Conflict("この事例は公開中ではないため、公開範囲を変更できません。")
        raise Forbidden("この事例の公開範囲を変更することはできません。")
    before = f"{case.visibility}{'・匿名' if case.anonymous else ''}"
    visibility, kept = _apply_sharing(user, case, visibility, anonymous, keep)
    case.updated_at = utcnow()
    case.updated_by = user
    db.session.flush()
    queue_case(case)
    audit.record(user, "case.visibility", case,
                 f"#{case.id} {before} → {visibility}{'・匿名' if case.anonymous else ''}" + _kept_summary(kept))
    return case


def change_consent(user: User, case: Case, consent) -> Case:
    """The owner's staff change how far the case may be shared. Narrowing narrows a published
    case at once (pages, API and search)."""
    lock_for_update(case)  # a publish deciding from the old consent waits, then sees this one
    if not policy.can_change_consent(user, case):
        if case.state == CaseState.ARCHIVED.value and policy.is_owner_staff(user, case):
            raise Conflict("この事例はアーカイブされているため、同意を変更できません。")
        raise Forbidden("この事例の共有への同意を変更できるのは、所有する市町の職員だけです。")
    consent = _clean_visibility(consent, required=True)
    before = case.sharing_consent
    case.sharing_consent = consent
    case.consent_changed_at = utcnow()
    case.consent_changed_by = user
    narrowed = Visibility(case.visibility).width > Visibility(consent).width
    if narrowed:
        case.visibility = consent
        case.updated_at = utcnow()
    db.session.flush()
    queue_case(case)
    audit.record(user, "case.consent", case,
                 f"#{case.id} 同意 {before} → {consent}" + ("（公開範囲も狭めました）" if narrowed else ""))
    return case


def archive_case(user: User, case: Case, reason: str = "") -> Case:
    """Withdraw a case (for example one shared by mistake): gone for every reader but the help
    desk, and from the index."""
    lock_for_update(case)
    if not policy.can_archive_case(user, case):
        if case.state == CaseState.ARCHIVED.value and policy.is_helpdesk(user):
            raise Conflict("この事例はすでにアーカイブされています。")
        raise Forbidden("この事例をアーカイブすることはできません。")
    case.state = CaseState.ARCHIVED.value
    case.updated_at = utcnow()
    case.updated_by = user
    db.session.flush()
    queue_case(case)
    audit.record(user, "case.archive", case, f"#{case.id} {case.title}" + (f"／理由: {reason.strip()}" if reason.strip() else ""))
    return case


def restore_case(user: User, case: Case) -> Case:
    """Bring an archived case back as a draft (the help desk reviews and publishes it again)."""
    lock_for_update(case)
    if not policy.can_restore_case(user, case):
        if case.state != CaseState.ARCHIVED.value and policy.is_helpdesk(user):
            raise Conflict("この事例はアーカイブされていません。")
        raise Forbidden("この事例を戻すことはできません。")
    case.state = CaseState.DRAFT.value
    case.updated_at = utcnow()
    case.updated_by = user
    db.session.flush()
    queue_case(case)
    audit.record(user, "case.restore", case, f"#{case.id} {case.title}")
    return case


def mark_helpful(user: User, case: Case) -> int:
    """「参考になった」 once per reader; returns the case's count."""
    if not policy.can_mark_helpful(user, case):
        raise Forbidden("この事例に「参考になった」を付けることはできません。")
    exists = db.session.scalar(select(CaseHelpful.id).where(CaseHelpful.case_id == case.id,
                                                            CaseHelpful.user_id == user.id))
    if exists is None:
        try:
            with db.session.begin_nested():  # two clicks at once: the second finds the first
                db.session.add(CaseHelpful(case_id=case.id, user_id=user.id))
        except IntegrityError:
            pass
    return helpful_count(case)


def helpful_count(case: Case) -> int:
    return db.session.scalar(select(func.count()).select_from(CaseHelpful).where(CaseHelpful.case_id == case.id))


def mask_finding(user: User, case: Case, field: str, position: int, text: str) -> Case:
    """Replace one finding with its placeholder (one click on the review page); audited with the
    field and the kind of detail, never the masked text."""
    lock_for_update(case)
    if not policy.can_edit_case(user, case):
        raise Forbidden("この事例を編集することはできません。")
    if field not in SHARED_FIELDS:
        raise ValidationFailed({"field": "項目が正しくありません。"})
    value = getattr(case, field) or ""
    match = next((f for f in find_sensitive(value, personal_names(), owner_names(case, True))
                  if f.start == position and f.text == text), None)
    if match is None:
        raise Conflict("その箇所は変更されています。もう一度確認してください。")
    setattr(case, field, value[:match.start] + match.placeholder + value[match.end:])
    case.updated_at = utcnow()
    case.updated_by = user
    db.session.flush()
    queue_case(case)
    audit.record(user, "case.mask", case,
                 f"#{case.id} {SHARED_FIELD_LABELS.get(field, field)}: {match.label}を伏せ字にしました")
    return case


def has_marked_helpful(user: User, case: Case) -> bool:
    return db.session.scalar(select(CaseHelpful.id).where(CaseHelpful.case_id == case.id,
                                                          CaseHelpful.user_id == user.id)) is not None


def update_attachments(user: User, case: Case, chosen_ids, uploads=(), files_checked: bool = False) -> Case:
    """Set which files the case carries (chosen from its thread's files and its own) and add new
    ones. A case already shared beyond its owner takes no file that holds a sensitive detail, and a
    file the check cannot read only when the help desk says it opened it and found none
    (``files_checked``; recorded in the audit log)."""
    lock_for_update(case)
    if not policy.can_edit_case(user, case):
        raise Forbidden("この事例を編集することはできません。")
    before = {a.id for a in case.attachments}
    added = attachment_service.store(user, list(uploads), question=None, post_type="case", post_id=case.id)
    chosen = attachment_service.choose_for_case(user, case, [*(chosen_ids or []), *(a.id for a in added)])
    new = [a for a in chosen if a.id not in before]
    if case.shared_beyond_owner and new:
        findings = [f for f in sensitive_findings(case, attachments=new) if f["field"] == "attachments"]
        detected = [f for f in findings if f["kind"] != UNCHECKED]
        unread = [f for f in findings if f["kind"] == UNCHECKED]
        if detected:
            raise SensitiveDataFound(
                f"共有中の事例に、個別の情報を含む添付ファイルは付けられません（{len(detected)}件）: "
                + "、".join(f"{f['attachment']}の{f['label']}「{f['text']}」" for f in detected), detected)
        if unread and not files_checked:
            raise SensitiveDataFound(
                "共有中の事例に新しく付けるファイルのうち、中身を自動で確認できないもの（画像・PDF・Excel・Word・ZIP）があります: "
                + "、".join(f"「{f['attachment']}」" for f in unread)
                + "。開いて個別の情報がないことを確かめ、確認したことを示して（画面では「新しく付けるファイルを開き、"
                "…確認しました」のチェック、API では files_checked=true）保存してください。", unread)
        if unread:
            audit.record(user, "case.attachment_checked", case,
                         f"#{case.id}: 中身を確認済みとして添付 " + "、".join(f["attachment"] for f in unread))
    case.updated_by = user
    case.updated_at = utcnow()
    db.session.flush()
    queue_case(case)
    if {a.id for a in chosen} != before:
        audit.record(user, "case.edit", case, f"#{case.id}: 添付ファイル {len(chosen)}件")
    return case


# --- asking the owner to widen its consent --------------------------------------------------------

def request_wider_consent(user: User, case: Case, requested, reason: str = "") -> ConsentRequest:
    """The help desk asks the owning municipality to agree to wider sharing; its staff are told
    and accept or decline. One open request per case at a time."""
    lock_for_update(case)
    if not policy.can_request_consent(user, case):
        raise Forbidden("共有範囲を広げる依頼ができるのは県ヘルプデスクだけです。")
    requested = _clean_visibility(requested, field="requested", required=True)
    if Visibility(requested).width <= Visibility(case.sharing_consent).width:
        raise ValidationFailed({"requested": "いまの同意より広い範囲を選んでください。"})
    reason = (reason or "").strip()
    if len(reason) > 500:
        raise ValidationFailed({"reason": "理由は500文字以内にしてください。"})
    if open_consent_request(case) is not None:
        raise Conflict("この事例には、返事を待っている依頼がすでにあります。")
    request = ConsentRequest(case_id=case.id, requested=requested, reason=reason, requested_by=user)
    db.session.add(request)
    db.session.flush()
    notifications.consent_requested(request, case, user)
    audit.record(user, "case.consent_request", case, f"#{case.id} 同意 {case.sharing_consent} → {requested} を依頼")
    return request


def open_consent_request(case: Case) -> ConsentRequest | None:
    return db.session.scalar(select(ConsentRequest).where(
        ConsentRequest.case_id == case.id, ConsentRequest.decision.is_(None)).order_by(ConsentRequest.id.desc()))


def answer_consent_request(user: User, request: ConsentRequest, accept: bool) -> ConsentRequest:
    """The owner's staff accept (the consent widens to what was asked) or decline."""
    lock_for_update(request)
    case = db.session.get(Case, request.case_id)
    if not policy.can_change_consent(user, case):
        raise Forbidden("この依頼に答えられるのは、事例を所有する市町の職員だけです。")
    if request.decision is not None:
        raise Conflict("この依頼にはすでに返事があります。")
    if accept:
        change_consent(user, case, request.requested)
    request.decision = "accepted" if accept else "declined"
    request.decided_by = user
    request.decided_at = utcnow()
    db.session.flush()
    if request.requested_by is not None:
        notifications.consent_answered(request, case, user)
    return request


# --- views ----------------------------------------------------------------------------------------

_BOT = re.compile(r"bot|crawl|spider|slurp|preview|curl|wget|python-requests|httpx|headless", re.IGNORECASE)


def record_view(user: User, case: Case, user_agent: str = "") -> bool:
    """One view per reader per day (Japan time), not by the owner's staff, not by bots; the
    reports count these. Returns whether this one counted."""
    if case.state != CaseState.PUBLISHED.value or user is None or _BOT.search(user_agent or ""):
        return False
    if case.municipality_id is not None and user.municipality_id == case.municipality_id:
        return False
    day = datetime.now(JST).date()
    if db.session.scalar(select(CaseView.id).where(CaseView.case_id == case.id, CaseView.user_id == user.id,
                                                   CaseView.day == day)) is not None:
        return False
    try:
        with db.session.begin_nested():  # the same reader twice at once: the second finds the first
            db.session.add(CaseView(case_id=case.id, user_id=user.id, day=day))
    except IntegrityError:
        return False
    return True

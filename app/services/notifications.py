"""Telling people what happened: in the app, by e-mail at once, or in a daily digest.

Services call the event functions below in the transaction of the change. They record, per
recipient, *which* object changed; nothing of its text. What a person sees of it is rendered
when it is shown or sent (``describe``), and only if the policy says that person may read the
object then: a moved or disabled user, an archived case, an internal note never leave the app.

Mails go through ``MailOutbox`` rows written in the same transaction and sent after the commit
(``deliver_pending``: by a background thread after the request, the ``notify send`` command, and
retried with growing delays), so a request never waits on the mail server.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import and_, delete, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app import policy
from app.extensions import db
from app.models import (
    Case, CaseReport, CaseState, Channel, ConsentRequest, ExpertRequest, MailOutbox, Notification,
    NotificationKind, NotificationPreference, Question, QuestionStatus, Role, User, Watch, utcnow,
)

log = logging.getLogger(__name__)
JST = ZoneInfo("Asia/Tokyo")
RETRY_MINUTES = (1, 5, 30, 120, 720)
MAX_ATTEMPTS = len(RETRY_MINUTES) + 1

# What a kind goes to when the user chose nothing: what needs an answer comes by mail at once.
DEFAULT_CHANNELS = {
    NotificationKind.NEW_QUESTION: Channel.EMAIL, NotificationKind.NEW_POST: Channel.EMAIL,
    NotificationKind.STATUS: Channel.EMAIL, NotificationKind.RESOLVED: Channel.APP,
    NotificationKind.CASE_DRAFTED: Channel.APP, NotificationKind.CONSENT_REQUEST: Channel.EMAIL,
    NotificationKind.CASE_PUBLISHED: Channel.DIGEST, NotificationKind.ACCOUNT: Channel.EMAIL,
    NotificationKind.CASE_REPORT: Channel.EMAIL, NotificationKind.CASE_REPORT_OUTCOME: Channel.APP,
    NotificationKind.EXPERT_REQUEST: Channel.EMAIL,
}


# --- preferences and follows ----------------------------------------------------------------------

def channel_for(user: User, kind: NotificationKind) -> Channel:
    chosen = db.session.scalar(select(NotificationPreference.channel).where(
        NotificationPreference.user_id == user.id, NotificationPreference.kind == kind.value))
    return Channel(chosen) if chosen else DEFAULT_CHANNELS[kind]


def set_channels(user: User, choices: dict[str, str]) -> None:
    for kind in NotificationKind:
        value = choices.get(kind.value)
        if value not in {c.value for c in Channel}:
            continue
        row = db.session.scalar(select(NotificationPreference).where(
            NotificationPreference.user_id == user.id, NotificationPreference.kind == kind.value))
        if row is None:
            db.session.add(NotificationPreference(user_id=user.id, kind=kind.value, channel=value))
        else:
            row.channel = value
    db.session.flush()


def follow(user: User, target_type: str, target_key: str) -> None:
    exists = db.session.scalar(select(Watch.id).where(
        Watch.user_id == user.id, Watch.target_type == target_type, Watch.target_key == str(target_key)))
    if exists is None:
        try:
            with db.session.begin_nested():  # two requests at once: the second finds the first
                db.session.add(Watch(user_id=user.id, target_type=target_type, target_key=str(target_key)))
        except IntegrityError:
            pass


def unfollow(user_id: int, target_type: str, target_key: str) -> int:
    result = db.session.execute(delete(Watch).where(
        Watch.user_id == user_id, Watch.target_type == target_type, Watch.target_key == str(target_key)))
    return result.rowcount or 0


def follows(user: User, target_type: str, target_key) -> bool:
    return db.session.scalar(select(Watch.id).where(
        Watch.user_id == user.id, Watch.target_type == target_type, Watch.target_key == str(target_key))) is not None


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="unfollow")


def unfollow_token(user_id: int, target_type: str, target_key) -> str:
    return _serializer().dumps([user_id, target_type, str(target_key)])


def read_unfollow_token(token: str) -> tuple[int, str, str] | None:
    try:
        user_id, target_type, target_key = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    return int(user_id), str(target_type), str(target_key)


# --- recording events -----------------------------------------------------------------------------

def _helpdesk_users() -> list[User]:
    return list(db.session.scalars(select(User).where(User.role == Role.HELPDESK.value, User.is_enabled.is_(True))))


def _question_watchers(question: Question) -> list[User]:
    return list(db.session.scalars(select(User).join(Watch, Watch.user_id == User.id).where(
        Watch.target_type == "question", Watch.target_key == str(question.id))))


def _record(kind: NotificationKind, recipients, actor: User | None, **refs) -> None:
    seen: set[int] = set()
    for user in recipients:
        if user is None or user.id in seen or (actor is not None and user.id == actor.id) or not user.is_enabled:
            continue
        seen.add(user.id)
        notification = Notification(user_id=user.id, kind=kind.value, actor_id=actor.id if actor else None, **refs)
        db.session.add(notification)
        if channel_for(user, kind) is Channel.EMAIL and user.email:
            db.session.flush()
            db.session.add(MailOutbox(user_id=user.id, notification_id=notification.id))
            db.session.info["mail_pending"] = True


def question_asked(question: Question, actor: User) -> None:
    follow(actor, "question", question.id)
    recipients = [question.owner] if question.owner else _helpdesk_users()
    _record(NotificationKind.NEW_QUESTION, recipients, actor, question_id=question.id)


def question_assigned(question: Question, owner: User, actor: User) -> None:
    """A question handed to a colleague reaches its new owner like a new question."""
    _record(NotificationKind.NEW_QUESTION, [owner], actor, question_id=question.id)


def post_added(question: Question, post_type: str, post_id: int, actor: User) -> None:
    """An answer or a comment (internal notes notify nobody outside the help desk: they notify nobody)."""
    follow(actor, "question", question.id)
    recipients = [question.asker, question.owner, *_question_watchers(question)]
    if question.owner is None and not policy.is_helpdesk(actor):
        recipients += _helpdesk_users()  # the municipality wrote on an unassigned question
    _record(NotificationKind.NEW_POST, recipients, actor, question_id=question.id, post_type=post_type, post_id=post_id)


def status_changed(question: Question, actor: User) -> None:
    recipients = [question.asker, *_question_watchers(question)]
    if question.owner:
        recipients.append(question.owner)
    _record(NotificationKind.STATUS, recipients, actor, question_id=question.id, detail=question.status)


def question_resolved(question: Question, actor: User) -> None:
    _record(NotificationKind.RESOLVED, [question.asker, question.owner, *_question_watchers(question)], actor,
            question_id=question.id)


def case_drafted(case: Case, actor: User) -> None:
    if case.question is None:
        return
    _record(NotificationKind.CASE_DRAFTED, [case.question.asker, *_question_watchers(case.question)], actor,
            case_id=case.id, question_id=case.question_id)


def consent_requested(request: ConsentRequest, case: Case, actor: User) -> None:
    staff = db.session.scalars(select(User).where(
        User.municipality_id == case.municipality_id, User.role == Role.MUNICIPAL.value, User.is_enabled.is_(True)))
    _record(NotificationKind.CONSENT_REQUEST, staff, actor, case_id=case.id, request_id=request.id)


def consent_answered(request: ConsentRequest, case: Case, actor: User) -> None:
    """The help desk member who asked learns the answer (as a status of the case's consent)."""
    _record(NotificationKind.CONSENT_REQUEST, [request.requested_by], actor, case_id=case.id, request_id=request.id)


def case_published(case: Case, actor: User) -> None:
    """To those who follow the case's category or one of its tags (and may read it when it is sent)."""
    keys = [and_(Watch.target_type == "category", Watch.target_key == case.category.slug)]
    keys += [and_(Watch.target_type == "tag", Watch.target_key == tag.name) for tag in case.tags]
    followers = db.session.scalars(select(User).join(Watch, Watch.user_id == User.id).where(or_(*keys)).distinct())
    _record(NotificationKind.CASE_PUBLISHED, [u for u in followers if policy.can_view_case(u, case)], actor,
            case_id=case.id)


def case_reported(case: Case, report_id: int, actor: User) -> None:
    """A reader reported a case (outdated, wrong, incomplete): the help desk's queue."""
    _record(NotificationKind.CASE_REPORT, _helpdesk_users(), actor, case_id=case.id, post_type="case_report",
            post_id=report_id)


def case_report_answered(case: Case, report_id: int, reporter: User | None, actor: User) -> None:
    """The reporter learns the outcome (shown only while they may still read the case)."""
    _record(NotificationKind.CASE_REPORT_OUTCOME, [reporter], actor, case_id=case.id, post_type="case_report",
            post_id=report_id)


EXPERT_EVENTS = {
    "filed": "新しい派遣依頼", "proposed": "専門人材の提案", "accepted": "提案が受け入れられました",
    "declined": "提案が辞退されました", "withdrawn": "提案が取り下げられました", "assigned": "派遣が決まりました",
    "closed": "派遣依頼が終了しました",
}


def expert_request_event(request, event: str, actor: User, recipients) -> None:
    """A step of an expert request (``EXPERT_EVENTS``) to those it concerns; shown and mailed only
    while the recipient may see the request (policy.can_view_request, asked at send time)."""
    _record(NotificationKind.EXPERT_REQUEST, recipients, actor, post_type="expert_request", post_id=request.id,
            detail=event)


def municipality_staff(municipality_id: int) -> list[User]:
    return list(db.session.scalars(select(User).where(
        User.municipality_id == municipality_id, User.role == Role.MUNICIPAL.value, User.is_enabled.is_(True))))


def helpdesk_users() -> list[User]:
    return _helpdesk_users()


def account_changed(user: User, actor: User | None, summary: str) -> None:
    _record(NotificationKind.ACCOUNT, [user], actor, detail=summary[:200])


# --- what a person sees -----------------------------------------------------------------------------

@dataclass
class Rendered:
    subject: str
    text: str
    path: str                  # a link inside the app
    unfollow: tuple[str, str] | None = None   # (target_type, target_key) a mail may offer to stop


def describe(notification: Notification, user: User) -> Rendered | None:
    """The notification as ``user`` may see it now, or None when it may not (any more)."""
    kind = notification.kind_enum
    actor = notification.actor.label if notification.actor else "県ヘルプデスク"
    if notification.question_id is not None and kind is not NotificationKind.CASE_DRAFTED:
        question = db.session.get(Question, notification.question_id)
        if question is None or not policy.can_view_question(user, question):
            return None
        path = f"/questions/{question.id}"
        title = f"相談 #{question.id}「{question.title}」"
        if kind is NotificationKind.NEW_QUESTION:
            return Rendered(f"新しい相談: {question.title}", f"{question.municipality.name}から{title}が届きました。", path,
                            ("question", str(question.id)))
        if kind is NotificationKind.NEW_POST:
            if notification.post_type == "note" and not policy.can_read_internal_notes(user):
                return None
            label = "回答" if notification.post_type == "answer" else "コメント"
            return Rendered(f"{label}がありました: {question.title}", f"{actor}が{title}に{label}を投稿しました。",
                            f"{path}#{notification.post_type}-{notification.post_id}", ("question", str(question.id)))
        if kind is NotificationKind.STATUS:
            status = QuestionStatus(notification.detail).label if notification.detail in {s.value for s in QuestionStatus} else ""
            extra = "県ヘルプデスクが返事を待っています。" if notification.detail == "waiting" else ""
            return Rendered(f"状態が「{status}」になりました: {question.title}", f"{title}の状態が「{status}」になりました。{extra}",
                            path, ("question", str(question.id)))
        if kind is NotificationKind.RESOLVED:
            return Rendered(f"解決しました: {question.title}", f"{title}が解決済みになりました。", path,
                            ("question", str(question.id)))
    if notification.case_id is not None:
        case = db.session.get(Case, notification.case_id)
        if case is None:
            return None
        if kind is NotificationKind.CONSENT_REQUEST:
            request = db.session.get(ConsentRequest, notification.request_id) if notification.request_id else None
            if request is None or not (policy.can_change_consent(user, case) or policy.can_request_consent(user, case)):
                return None
            from app.models import Visibility

            wanted = Visibility(request.requested).consent_label
            state = {"accepted": "（同意済み）", "declined": "（お断り済み）"}.get(request.decision or "", "")
            return Rendered(f"事例の共有範囲を広げる依頼: {case.title}",
                            f"県ヘルプデスクが、事例 #{case.id}「{case.title}」を「{wanted}」まで共有してよいか尋ねています"
                            f"{state}。理由: {request.reason or '（なし）'}", f"/cases/{case.id}#consent")
        if not policy.can_view_case(user, case):
            return None
        if kind in (NotificationKind.CASE_REPORT, NotificationKind.CASE_REPORT_OUTCOME):
            from app.services.review import describe_report_notification

            described = describe_report_notification(notification, user, case)
            return Rendered(*described) if described else None
        if kind is NotificationKind.CASE_DRAFTED:
            return Rendered(f"事例の下書きが作られました: {case.title}",
                            f"相談 #{case.question_id} から事例 #{case.id}「{case.title}」の下書きが作られました。",
                            f"/cases/{case.id}")
        if kind is NotificationKind.CASE_PUBLISHED:
            if case.state != CaseState.PUBLISHED.value:
                return None
            owner = case.municipality.name if case.municipality and policy.can_see_owner(user, case) else "市町名非公開"
            if case.municipality is None:
                owner = "県ヘルプデスク"
            return Rendered(f"新しい事例: {case.title}",
                            f"フォロー中の分類「{case.category.name}」またはタグの事例が公開されました: 「{case.title}」（{owner}）。",
                            f"/cases/{case.id}", ("category", case.category.slug))
    if kind is NotificationKind.EXPERT_REQUEST and notification.post_id is not None:
        from app.models.expert import ExpertRequest

        request = db.session.get(ExpertRequest, notification.post_id)
        if request is None or not policy.can_view_request(user, request):
            return None
        event = EXPERT_EVENTS.get(notification.detail, "派遣依頼の更新")
        return Rendered(f"{event}: {request.title}",
                        f"{actor}: 派遣依頼 #{request.id}「{request.title}」（{request.municipality.name}）— {event}。",
                        f"/experts/requests/{request.id}")
    if kind is NotificationKind.ACCOUNT:
        return Rendered("アカウントの設定が変わりました", f"{actor}があなたのアカウントを変更しました: {notification.detail}",
                        "/notifications")
    return None


def _load_for_describing(query) -> tuple[list[Notification], list[object]]:
    """Notifications with what ``describe`` looks up (actors, questions, cases, consent requests)
    loaded in a few statements, so that describing each one finds them in the session instead of
    querying one at a time (the bell runs on every page). Keep the second value while describing:
    the session's identity map holds its objects weakly."""
    rows = db.session.scalars(query.options(selectinload(Notification.actor))).all()
    question_ids = {n.question_id for n in rows if n.question_id is not None}
    case_ids = {n.case_id for n in rows if n.case_id is not None}
    request_ids = {n.request_id for n in rows if n.request_id is not None}
    subjects: list[object] = []
    if question_ids:
        subjects += db.session.scalars(select(Question).where(Question.id.in_(question_ids))
                                       .options(selectinload(Question.municipality))).all()
    if case_ids:
        subjects += db.session.scalars(select(Case).where(Case.id.in_(case_ids))).all()
    if request_ids:
        subjects += db.session.scalars(select(ConsentRequest).where(ConsentRequest.id.in_(request_ids))).all()
    report_ids = {n.post_id for n in rows if n.post_id is not None and n.kind in (
        NotificationKind.CASE_REPORT.value, NotificationKind.CASE_REPORT_OUTCOME.value)}
    if report_ids:
        subjects += db.session.scalars(select(CaseReport).where(CaseReport.id.in_(report_ids))).all()
    expert_ids = {n.post_id for n in rows if n.post_id is not None and n.kind == NotificationKind.EXPERT_REQUEST.value}
    if expert_ids:
        subjects += db.session.scalars(select(ExpertRequest).where(ExpertRequest.id.in_(expert_ids))
                                       .options(selectinload(ExpertRequest.municipality))).all()
    return rows, subjects


def visible_notifications(user: User, limit: int = 50, offset: int = 0) -> list[tuple[Notification, Rendered]]:
    rows, _subjects = _load_for_describing(
        select(Notification).where(Notification.user_id == user.id)
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit).offset(offset))
    return [(n, r) for n in rows if (r := describe(n, user)) is not None]


BELL_CAP = 20   # the bell counts up to this many (shown as 「20+」 beyond)


def unread_count(user: User, cap: int = BELL_CAP) -> int:
    """Unread notifications the user may still see (the policy decides each one), counted up to
    ``cap``: the bell is on every page, so it asks the policy about the newest few, not all."""
    rows, _subjects = _load_for_describing(select(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)).order_by(Notification.id.desc())
        .limit(cap * 2))
    visible = 0
    for notification in rows:
        if describe(notification, user) is not None:
            visible += 1
            if visible >= cap:
                break
    return visible


def mark_read(user: User, notification_id: int | None = None) -> int:
    query = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    return db.session.execute(query.values(read_at=utcnow())).rowcount or 0


# --- sending mail -----------------------------------------------------------------------------------

def _absolute(path: str) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


def _mail_for(row: MailOutbox, user: User):
    """(subject, body, unfollow target) or None if there is nothing the user may see."""
    if row.notification_id is not None:
        notification = db.session.get(Notification, row.notification_id)
        rendered = describe(notification, user) if notification is not None else None
        if rendered is None:
            return None
        body = f"{rendered.text}\n\n{_absolute(rendered.path)}\n"
        return f"【相談窓口】{rendered.subject}", body, rendered.unfollow
    ids = [int(i) for i in row.digest_ids.split(",") if i]
    items = []
    for notification in db.session.scalars(select(Notification).where(Notification.id.in_(ids)).order_by(Notification.id)):
        rendered = describe(notification, user)
        if rendered is not None:
            items.append(f"・{rendered.text}\n  {_absolute(rendered.path)}")
    if not items:
        return None
    body = f"{user.label} さん\n\n昨日からのお知らせ（{len(items)}件）です。\n\n" + "\n\n".join(items) + "\n"
    return f"【相談窓口】お知らせのまとめ（{len(items)}件）", body, None


def _footer(user: User, target) -> tuple[str, dict[str, str]]:
    settings = _absolute("/notifications/settings")
    text = f"\n--\n通知の受け取り方の変更: {settings}\n"
    headers: dict[str, str] = {}
    if target is not None:
        link = _absolute(f"/unfollow/{unfollow_token(user.id, *target)}")
        text += f"この{('相談' if target[0] == 'question' else '分類')}のフォローをやめる: {link}\n"
        headers = {"List-Unsubscribe": f"<{link}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return text, headers


def deliver_pending(limit: int = 100) -> dict[str, int]:
    """Send due mails: render each for its recipient now (the policy asked now), send, record;
    a failure is retried later with a growing delay, a mail with nothing to show is dropped."""
    from app.mail import build_message, send

    counts = {"sent": 0, "dropped": 0, "failed": 0}
    now = utcnow()
    rows = db.session.scalars(select(MailOutbox).where(
        MailOutbox.sent_at.is_(None), MailOutbox.dropped == "", MailOutbox.next_attempt_at <= now)
        .order_by(MailOutbox.id).limit(limit)).all()
    for row in rows:
        claimed = db.session.execute(update(MailOutbox).where(
            MailOutbox.id == row.id, MailOutbox.sent_at.is_(None), MailOutbox.attempts == row.attempts)
            .values(attempts=row.attempts + 1, next_attempt_at=now + timedelta(minutes=RETRY_MINUTES[min(row.attempts, len(RETRY_MINUTES) - 1)])))
        db.session.commit()
        if claimed.rowcount != 1:
            continue  # another process took it
        user = db.session.get(User, row.user_id)
        mail = _mail_for(row, user) if user is not None and user.is_enabled and user.email else None
        if mail is None:
            row.dropped = "宛先がないか、受け取る人が読めない内容です"
            db.session.commit()
            counts["dropped"] += 1
            continue
        subject, body, target = mail
        footer, headers = _footer(user, target)
        try:
            send(build_message(user.email, subject, body + footer, headers))
        except Exception as error:  # the mail server is down or refused: retried later
            db.session.rollback()
            row = db.session.get(MailOutbox, row.id)
            row.last_error = f"{type(error).__name__}: {error}"[:2000]
            if row.attempts >= MAX_ATTEMPTS:
                row.dropped = "再試行の上限に達しました"
            db.session.commit()
            counts["failed"] += 1
            log.warning("mail %s to user %s failed: %s", row.id, row.user_id, error)
            continue
        row.sent_at = utcnow()
        db.session.commit()
        counts["sent"] += 1
    return counts


def queue_digests(now: datetime | None = None) -> int:
    """One mail per user with digest notifications not yet sent in a digest; returns how many.
    Each notification is claimed by a conditional update, so two runs at once (two servers' timers)
    never put the same one in two mails."""
    now = now or utcnow()
    queued = 0
    users = db.session.scalars(select(User).where(User.is_enabled.is_(True), User.email != "")).all()
    for user in users:
        pending = [n.id for n in db.session.scalars(select(Notification).where(
            Notification.user_id == user.id, Notification.digested_at.is_(None)).order_by(Notification.id))
            if channel_for(user, n.kind_enum) is Channel.DIGEST]
        claimed = [nid for nid in pending if db.session.execute(
            update(Notification).where(Notification.id == nid, Notification.digested_at.is_(None))
            .values(digested_at=now)).rowcount == 1]
        if claimed:
            db.session.add(MailOutbox(user_id=user.id, digest_ids=",".join(str(nid) for nid in claimed)))
            queued += 1
        db.session.commit()
    return queued


def pending_mail_count() -> int:
    return db.session.scalar(select(func.count()).select_from(MailOutbox).where(
        MailOutbox.sent_at.is_(None), MailOutbox.dropped == "")) or 0


# --- after the commit ------------------------------------------------------------------------------

@event.listens_for(Session, "after_commit")
def _remember_committed_mail(session: Session) -> None:
    if session.info.pop("mail_pending", False):
        session.info["mail_committed"] = True


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_mail(session: Session) -> None:
    session.info.pop("mail_pending", None)


def send_after_request(app) -> None:
    """Start a background thread that sends what this request queued (the response does not wait)."""
    if not db.session.info.pop("mail_committed", False) or not app.config.get("MAIL_SEND_AFTER_REQUEST"):
        return

    def run():
        with app.app_context():
            try:
                deliver_pending()
            except Exception:
                log.exception("sending queued mail failed; it will be retried")
            finally:
                db.session.remove()

    threading.Thread(target=run, name="mail-outbox", daemon=True).start()

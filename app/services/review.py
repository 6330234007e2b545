"""Keeping published cases right: review dates, readers' reports, and the case that supersedes one.

Review: a published case is due for review a number of months after it was published or last
confirmed (12 by default, per category: 情報セキュリティ 6; the help desk changes it per category).
Cases past their date are listed for the help desk; readers see 「最終確認: 2025年4月」 on them.
Confirming without change, or an edit of the published case, sets a new date.

Reports: any reader of a published case reports it as outdated, wrong or incomplete with a
comment; the help desk is notified and answers each report with an outcome that the reporter
learns (only while they may still read the case).
"""
from __future__ import annotations

import calendar
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import policy
from app.extensions import db
from app.models import (
    Case, CaseReport, CaseState, Category, CategorySettings, Notification, NotificationKind, ReportOutcome, ReportReason,
    User, as_utc, utcnow,
)
from app.search.sync import queue_case
from app.services import audit
from app.services import notifications
from app.services.errors import Conflict, Forbidden, ValidationFailed
from app.services.locking import lock_for_update
from app.services.validation import parse_int

JST = ZoneInfo("Asia/Tokyo")
DEFAULT_REVIEW_MONTHS = 12
CATEGORY_REVIEW_MONTHS = {"security": 6}   # the shipped default for 情報セキュリティ
MAX_COMMENT_CHARS = 2000
MAX_NOTE_CHARS = 1000


# --- review dates -----------------------------------------------------------------------------------

def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def today() -> date:
    return datetime.now(JST).date()


def _local_day(moment: datetime) -> date:
    return as_utc(moment).astimezone(JST).date()


def review_months(category: Category) -> int:
    settings = db.session.get(CategorySettings, category.id)
    if settings is not None and settings.review_months:
        return settings.review_months
    return CATEGORY_REVIEW_MONTHS.get(category.slug, DEFAULT_REVIEW_MONTHS)


def schedule(case: Case, reviewed_at: datetime | None = None, months: int | None = None) -> None:
    """The next review date, counted from ``reviewed_at`` (default now), ``months`` later (default:
    the category's period; a bulk import looks it up once per category)."""
    months = months if months is not None else review_months(case.category)
    case.review_due = review_due(reviewed_at, months)


def review_due(reviewed_at: datetime | None, months: int) -> date:
    """The day a case reviewed (or published) at ``reviewed_at`` is due again."""
    return add_months(_local_day(reviewed_at or utcnow()), months)


def last_checked(case: Case) -> datetime | None:
    return case.last_reviewed_at or case.published_at


def is_past_due(case: Case, on: date | None = None) -> bool:
    return (case.state == CaseState.PUBLISHED.value and case.review_due is not None
            and case.review_due < (on or today()))


def last_checked_label(case: Case) -> str:
    """「最終確認: 2025年4月」 (Japan time)."""
    moment = last_checked(case)
    if moment is None:
        return ""
    local = as_utc(moment).astimezone(JST)
    return f"最終確認: {local.year}年{local.month}月"


def past_due(user: User, on: date | None = None) -> list[Case]:
    if not policy.can_review_cases(user):
        raise Forbidden("見直しの一覧はヘルプデスクだけが見られます。")
    return list(db.session.scalars(
        select(Case).where(Case.state == CaseState.PUBLISHED.value, Case.review_due < (on or today()))
        .order_by(Case.review_due, Case.id).options(selectinload(Case.category), selectinload(Case.municipality))))


def confirm(user: User, case: Case) -> Case:
    """「内容を確認した（変更なし）」: a new review date from today."""
    lock_for_update(case)
    if not policy.can_confirm_case(user, case):
        if policy.is_helpdesk(user):
            raise Conflict("公開中の事例だけを確認済みにできます。")
        raise Forbidden("事例を確認済みにできるのはヘルプデスクだけです。")
    now = utcnow()
    case.last_reviewed_at = now
    schedule(case, now)
    db.session.flush()
    audit.record(user, "case.review", case, f"#{case.id} 内容を確認（次回 {case.review_due.isoformat()}）")
    return case


def set_review_months(user: User, category: Category, months) -> CategorySettings:
    if not policy.can_curate_taxonomy(user):
        raise Forbidden("見直しの間隔を変えられるのはヘルプデスクだけです。")
    value = parse_int(months) if months not in (None, "") else None
    if months not in (None, "") and (value is None or not 1 <= value <= 60):
        raise ValidationFailed({"review_months": "見直しの間隔は1〜60か月の数字で入力してください（空欄は既定）。"})
    settings = db.session.get(CategorySettings, category.id)
    if settings is None:
        settings = CategorySettings(category_id=category.id)
        db.session.add(settings)
    settings.review_months = value
    db.session.flush()
    audit.record(user, "category.review_months", category,
                 f"{category.name}: 見直し {value or '既定（' + str(CATEGORY_REVIEW_MONTHS.get(category.slug, DEFAULT_REVIEW_MONTHS)) + '）'}か月")
    return settings


# --- supersedes ---------------------------------------------------------------------------------------

def set_superseded_by(user: User, case: Case, target_value) -> Case:
    """Point ``case`` to the newer case that replaces it (empty: no longer superseded)."""
    lock_for_update(case)
    if not policy.can_supersede_case(user, case):
        raise Forbidden("置き換える事例を設定できるのはヘルプデスクだけです（アーカイブした事例を除く）。")
    if target_value in (None, ""):
        case.superseded_by_id = None
        db.session.flush()
        queue_case(case)
        audit.record(user, "case.supersede", case, f"#{case.id}: 置き換えを解除")
        return case
    target_id = parse_int(target_value)
    target = policy.get_visible_case(user, target_id) if target_id is not None else None
    if target is None:
        raise ValidationFailed({"superseded_by": "事例番号が見つかりません。"})
    if target.id == case.id:
        raise ValidationFailed({"superseded_by": "同じ事例は指定できません。"})
    if target.state != CaseState.PUBLISHED.value:
        raise ValidationFailed({"superseded_by": f"事例 #{target.id} は公開中ではありません。公開中の事例を指定してください。"})
    seen, step = {case.id}, target
    while step is not None and step.superseded_by_id is not None:
        if step.superseded_by_id in seen:
            raise ValidationFailed({"superseded_by": f"事例 #{target.id} はこの事例に置き換えられているため、循環します。"})
        seen.add(step.id)
        step = db.session.get(Case, step.superseded_by_id)
        if step is not None and step.id in seen:
            raise ValidationFailed({"superseded_by": f"事例 #{target.id} はこの事例に置き換えられているため、循環します。"})
    case.superseded_by_id = target.id
    db.session.flush()
    queue_case(case)
    audit.record(user, "case.supersede", case, f"#{case.id} → #{target.id} に置き換え")
    return case


def newer_case_for(user: User, case: Case) -> Case | None:
    """The newest readable case in the chain that replaces ``case`` (readers see it first). A
    replacement the reader may not read is never named."""
    found, seen, step = None, {case.id}, case
    while step.superseded_by_id is not None and step.superseded_by_id not in seen:
        seen.add(step.superseded_by_id)
        step = db.session.get(Case, step.superseded_by_id)
        if step is None:
            break
        if policy.can_view_case(user, step) and step.state == CaseState.PUBLISHED.value:
            found = step
    return found


# --- readers' reports -----------------------------------------------------------------------------------

def report(user: User, case: Case, reason, comment) -> CaseReport:
    lock_for_update(case)  # two clicks at once: the second sees the first report
    if not policy.can_report_case(user, case):
        raise Forbidden("この事例について指摘することはできません。")
    errors: dict[str, str] = {}
    if reason not in {r.value for r in ReportReason}:
        errors["reason"] = "「内容が古い」「誤りがある」「不足している」から選んでください。"
    comment = comment.strip() if isinstance(comment, str) else ""
    if not comment:
        errors["comment"] = "どこが古い・誤り・不足なのかを書いてください。"
    elif len(comment) > MAX_COMMENT_CHARS:
        errors["comment"] = f"コメントは{MAX_COMMENT_CHARS}文字以内にしてください。"
    if errors:
        raise ValidationFailed(errors)
    if db.session.scalar(select(CaseReport.id).where(CaseReport.case_id == case.id, CaseReport.reporter_id == user.id,
                                                     CaseReport.outcome.is_(None))) is not None:
        raise Conflict("この事例へのあなたの指摘は、まだヘルプデスクが対応中です。")
    row = CaseReport(case_id=case.id, reporter_id=user.id, reason=reason, comment=comment)
    db.session.add(row)
    db.session.flush()
    notifications.case_reported(case, row.id, user)
    return row


def answer_report(user: User, report_row: CaseReport, outcome, note) -> CaseReport:
    lock_for_update(report_row)
    if not policy.can_handle_case_reports(user):
        raise Forbidden("指摘に対応できるのはヘルプデスクだけです。")
    if not report_row.is_open:
        raise Conflict("この指摘にはすでに対応済みです。")
    errors: dict[str, str] = {}
    if outcome not in {o.value for o in ReportOutcome}:
        errors["outcome"] = "対応の結果を選んでください。"
    note = note.strip() if isinstance(note, str) else ""
    if len(note) > MAX_NOTE_CHARS:
        errors["note"] = f"指摘した人への説明は{MAX_NOTE_CHARS}文字以内にしてください。"
    if errors:
        raise ValidationFailed(errors)
    report_row.outcome = outcome
    report_row.outcome_note = note
    report_row.handled_by_id = user.id
    report_row.handled_at = utcnow()
    db.session.flush()
    case = db.session.get(Case, report_row.case_id)
    if report_row.reporter is not None:
        notifications.case_report_answered(case, report_row.id, report_row.reporter, user)
    audit.record(user, "case.report_answer", case,
                 f"#{case.id} 指摘 {report_row.id}（{report_row.reason_enum.label}）: {ReportOutcome(outcome).label}")
    return report_row


def open_reports(user: User) -> list[CaseReport]:
    if not policy.can_handle_case_reports(user):
        raise Forbidden("指摘の一覧はヘルプデスクだけが見られます。")
    return list(db.session.scalars(select(CaseReport).where(CaseReport.outcome.is_(None))
                                   .order_by(CaseReport.created_at, CaseReport.id)))


def reports_of_case(user: User, case: Case) -> list[CaseReport]:
    """The help desk sees every report of the case; anyone else only their own."""
    query = select(CaseReport).where(CaseReport.case_id == case.id).order_by(CaseReport.id.desc())
    if not policy.can_handle_case_reports(user):
        query = query.where(CaseReport.reporter_id == user.id)
    return list(db.session.scalars(query))


def get_report(report_id: int) -> CaseReport | None:
    return db.session.get(CaseReport, report_id)


def describe_report_notification(notification: Notification, user: User, case: Case) -> tuple[str, str, str] | None:
    """(subject, text, path) of a report notification for ``user``, who may read ``case``; None
    when they may not see the report (any more)."""
    row = db.session.get(CaseReport, notification.post_id) if notification.post_id else None
    if row is None or row.case_id != case.id:
        return None
    title = f"事例 #{case.id}「{case.title}」"
    if notification.kind == NotificationKind.CASE_REPORT.value:
        if not policy.can_handle_case_reports(user):
            return None
        return (f"事例への指摘（{row.reason_enum.label}）: {case.title}",
                f"{title}に「{row.reason_enum.label}」との指摘がありました。", f"/cases/review#report-{row.id}")
    if row.reporter_id != user.id or row.outcome_enum is None:
        return None
    note = f" {row.outcome_note}" if row.outcome_note else ""
    return (f"指摘への対応: {case.title}",
            f"{title}へのあなたの指摘（{row.reason_enum.label}）: {row.outcome_enum.label}。{note}".rstrip(),
            f"/cases/{case.id}#reports")


"""What the help desk achieved, counted from the database: questions per month, the open backlog,
response and resolution times, reuse of the case library, the most read and most helpful cases,
searches that found nothing; and, for a municipality, its own questions and cases.

Every count over cases goes through the reader's case scope (``policy.visible_cases_clause``), so a
report never counts a case its reader may not see; municipal staff only ever get their own
municipality's questions.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import policy
from app.extensions import db
from app.models import (
    Answer, Case, CaseHelpful, CaseState, CaseView, Municipality, Question, QuestionKind, QuestionStatus,
    SearchMiss, User, as_utc, utcnow,
)

JST = ZoneInfo("Asia/Tokyo")
AGE_BUCKETS = ((1, "1日未満"), (3, "1〜3日"), (7, "3〜7日"), (30, "7〜30日"), (None, "30日以上"))


def month_key(moment: datetime) -> str:
    return as_utc(moment).astimezone(JST).strftime("%Y-%m")


def months_between(start: date, end: date) -> list[str]:
    months, current = [], date(start.year, start.month, 1)
    while current <= end:
        months.append(current.strftime("%Y-%m"))
        current = date(current.year + (current.month == 12), current.month % 12 + 1, 1)
    return months


def jst_start(day: date) -> datetime:
    return datetime.combine(day, time.min, JST)


def fiscal_year_of(day: date) -> int:
    """年度: April to March."""
    return day.year if day.month >= 4 else day.year - 1


@dataclass
class Period:
    start: date
    end: date            # inclusive

    @property
    def months(self) -> list[str]:
        return months_between(self.start, self.end)

    def clause(self, column):
        return (column >= jst_start(self.start)) & (column < jst_start(self.end + timedelta(days=1)))

    @classmethod
    def last_months(cls, count: int = 12, today: date | None = None) -> "Period":
        today = today or utcnow().astimezone(JST).date()
        first = date(today.year, today.month, 1)
        for _ in range(count - 1):
            first = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
        return cls(first, today)

    @classmethod
    def fiscal_year(cls, year: int) -> "Period":
        return cls(date(year, 4, 1), date(year + 1, 3, 31))


@dataclass
class Dashboard:
    period: Period
    by_month: dict[str, dict[str, Counter]] = field(default_factory=dict)   # dimension -> month -> Counter
    backlog: dict[str, Counter] = field(default_factory=dict)               # age label -> Counter(status)
    median_first_response: dict[str, float | None] = field(default_factory=dict)  # month -> hours
    median_resolution: dict[str, float | None] = field(default_factory=dict)
    link_rate: tuple[int, int] = (0, 0)                                     # answered by a case, all
    most_viewed: list[tuple[Case, int]] = field(default_factory=list)
    most_helpful: list[tuple[Case, int]] = field(default_factory=list)
    misses_by_week: list[tuple[str, int]] = field(default_factory=list)


def _questions(user: User, period: Period):
    return db.session.scalars(
        select(Question).where(policy.visible_questions_clause(user), period.clause(Question.created_at))
        .options(selectinload(Question.category), selectinload(Question.municipality)))


def dashboard(user: User, period: Period) -> Dashboard:
    result = Dashboard(period)
    dims = {"category": defaultdict(Counter), "kind": defaultdict(Counter), "municipality": defaultdict(Counter)}
    first: dict[str, list[float]] = defaultdict(list)
    resolved: dict[str, list[float]] = defaultdict(list)
    question_ids = []
    for q in _questions(user, period):
        month = month_key(q.created_at)
        dims["category"][month][q.category.name] += 1
        dims["kind"][month][QuestionKind(q.kind).label] += 1
        dims["municipality"][month][q.municipality.name] += 1
        if q.first_response_seconds is not None:
            first[month].append(q.first_response_seconds / 3600)
        if q.resolution_seconds is not None:
            resolved[month_key(q.resolved_at)].append(q.resolution_seconds / 3600)
        question_ids.append(q.id)
    result.by_month = {name: dict(values) for name, values in dims.items()}
    result.median_first_response = {m: statistics.median(first[m]) if first[m] else None for m in period.months}
    result.median_resolution = {m: statistics.median(resolved[m]) if resolved[m] else None for m in period.months}
    linked = db.session.scalar(select(func.count(func.distinct(Answer.question_id))).where(
        Answer.question_id.in_(question_ids), Answer.linked_case_id.is_not(None))) if question_ids else 0
    result.link_rate = (linked or 0, len(question_ids))

    now = utcnow()
    result.backlog = {label: Counter() for _days, label in AGE_BUCKETS}
    active = db.session.scalars(select(Question).where(
        policy.visible_questions_clause(user), Question.status.in_(QuestionStatus.active())))
    for q in active:
        age_days = (now - as_utc(q.created_at)).total_seconds() / 86400
        label = next(label for days, label in AGE_BUCKETS if days is None or age_days < days)
        result.backlog[label][QuestionStatus(q.status).label] += 1

    visible = policy.visible_cases_clause(user)
    result.most_viewed = _top_cases(select(CaseView.case_id, func.count()).where(
        CaseView.day >= period.start, CaseView.day <= period.end), visible)
    result.most_helpful = _top_cases(select(CaseHelpful.case_id, func.count()).where(
        period.clause(CaseHelpful.created_at)), visible)
    weeks: Counter = Counter()
    for (moment,) in db.session.execute(select(SearchMiss.created_at).where(period.clause(SearchMiss.created_at))):
        local = as_utc(moment).astimezone(JST).date()
        monday = local - timedelta(days=local.weekday())
        weeks[monday.isoformat()] += 1
    result.misses_by_week = sorted(weeks.items())
    return result


def _top_cases(counts_query, visible, limit: int = 10) -> list[tuple[Case, int]]:
    """The most counted cases among those the reader may see (the scope is part of the query, so an
    invisible case neither appears nor pushes a visible one off the list)."""
    case_id = counts_query.selected_columns[0]
    rows = db.session.execute(counts_query.join(Case, Case.id == case_id).where(visible)
                              .group_by(case_id).order_by(func.count().desc(), case_id).limit(limit)).all()
    cases = {c.id: c for c in db.session.scalars(select(Case).where(Case.id.in_([r[0] for r in rows])))}
    return [(cases[cid], count) for cid, count in rows]


@dataclass
class MunicipalReport:
    municipality: Municipality
    period: Period
    questions_by_month: dict[str, Counter] = field(default_factory=dict)     # month -> Counter(status label)
    cases_published: int = 0
    cases_shared: int = 0
    helpful_from_others: list[tuple[Case, int]] = field(default_factory=list)
    views_from_others: int = 0


def municipal_report(user: User, period: Period) -> MunicipalReport:
    """A municipality's own questions and cases, and how other municipalities used its cases."""
    municipality = user.municipality
    report = MunicipalReport(municipality, period)
    by_month: dict[str, Counter] = defaultdict(Counter)
    for q in _questions(user, period):
        if q.municipality_id == municipality.id:
            by_month[month_key(q.created_at)][QuestionStatus(q.status).label] += 1
    report.questions_by_month = dict(by_month)
    own = ((Case.municipality_id == municipality.id) & (Case.state == CaseState.PUBLISHED.value)
           & policy.visible_cases_clause(user))
    report.cases_published = db.session.scalar(select(func.count()).select_from(Case).where(own)) or 0
    report.cases_shared = db.session.scalar(select(func.count()).select_from(Case).where(
        own, Case.visibility != "private", Case.sharing_consent != "private")) or 0
    others = User.municipality_id.is_distinct_from(municipality.id)
    rows = db.session.execute(
        select(Case, func.count(CaseHelpful.id)).join(CaseHelpful, CaseHelpful.case_id == Case.id)
        .join(User, User.id == CaseHelpful.user_id)
        .where(own, others, period.clause(CaseHelpful.created_at))
        .group_by(Case.id).order_by(func.count(CaseHelpful.id).desc()).limit(20)).all()
    report.helpful_from_others = [(case, count) for case, count in rows]
    report.views_from_others = db.session.scalar(
        select(func.count()).select_from(CaseView).join(Case, Case.id == CaseView.case_id)
        .join(User, User.id == CaseView.user_id)
        .where(own, others, CaseView.day >= period.start, CaseView.day <= period.end)) or 0
    return report


# --- rows for spreadsheets ------------------------------------------------------------------------

QUESTION_COLUMNS = ["番号", "件名", "市町", "分類", "種類", "優先度", "状態", "担当", "受付日時", "初回応答（時間）",
                    "解決日時", "解決まで（時間）"]
CASE_COLUMNS = ["番号", "件名", "市町", "分類", "タグ", "公開範囲", "公開日", "参考になった", "閲覧（他の市町）"]


def _local(moment) -> str:
    return as_utc(moment).astimezone(JST).strftime("%Y-%m-%d %H:%M") if moment else ""


def question_rows(user: User, period: Period) -> list[dict]:
    rows = []
    for q in db.session.scalars(
            select(Question).where(policy.visible_questions_clause(user), period.clause(Question.created_at))
            .order_by(Question.created_at).options(selectinload(Question.category), selectinload(Question.municipality),
                                                   selectinload(Question.owner))):
        rows.append({
            "番号": q.id, "件名": q.title, "市町": q.municipality.name, "分類": q.category.name,
            "種類": q.kind_enum.label, "優先度": q.priority_enum.label, "状態": q.status_enum.label,
            "担当": q.owner.label if q.owner and policy.sees_everything(user) else "",
            "受付日時": _local(q.created_at),
            "初回応答（時間）": f"{q.first_response_seconds / 3600:.1f}" if q.first_response_seconds is not None else "",
            "解決日時": _local(q.resolved_at),
            "解決まで（時間）": f"{q.resolution_seconds / 3600:.1f}" if q.resolution_seconds is not None else "",
        })
    return rows


def case_rows(user: User, period: Period) -> list[dict]:
    """Published cases the user may read (anonymous ones without their owner's name)."""
    helpful = dict(db.session.execute(select(CaseHelpful.case_id, func.count()).group_by(CaseHelpful.case_id)).all())
    views = dict(db.session.execute(select(CaseView.case_id, func.count()).group_by(CaseView.case_id)).all())
    rows = []
    for case in db.session.scalars(
            select(Case).where(policy.visible_cases_clause(user), Case.state == CaseState.PUBLISHED.value,
                               period.clause(Case.published_at)).order_by(Case.published_at)
            .options(selectinload(Case.category), selectinload(Case.municipality), selectinload(Case.tags))):
        owner = "県ヘルプデスク" if case.municipality is None else (
            case.municipality.name if policy.can_see_owner(user, case) else "市町名非公開")
        rows.append({
            "番号": case.id, "件名": case.title, "市町": owner, "分類": case.category.name,
            "タグ": "、".join(t.name for t in case.tags),
            "公開範囲": case.shared_visibility.label if policy.can_see_sharing_route(user, case) else "",
            "公開日": _local(case.published_at)[:10], "参考になった": helpful.get(case.id, 0),
            "閲覧（他の市町）": views.get(case.id, 0),
        })
    return rows


YEARLY_COLUMNS = ["市町", "相談件数", "うち至急", "うち障害・インシデント", "解決", "終了（未解決）", "対応中・回答待ち",
                  "初回応答の中央値（時間）", "解決までの中央値（時間）", "公開した事例", "他の市町からの参考になった"]


def yearly_rows(user: User, year: int) -> list[dict]:
    """The summary the prefecture reports to its council: one row per municipality for the 年度,
    and a total."""
    period = Period.fiscal_year(year)
    per: dict[str, dict] = {}
    first: dict[str, list[float]] = defaultdict(list)
    resolution: dict[str, list[float]] = defaultdict(list)
    municipalities = db.session.scalars(select(Municipality).where(Municipality.is_observer.is_(False))
                                        .order_by(Municipality.code)).all()
    for m in municipalities:
        per[m.name] = {column: 0 for column in YEARLY_COLUMNS} | {"市町": m.name}
    for q in _questions(user, period):
        row = per.setdefault(q.municipality.name, {column: 0 for column in YEARLY_COLUMNS} | {"市町": q.municipality.name})
        row["相談件数"] += 1
        row["うち至急"] += q.priority == "urgent"
        row["うち障害・インシデント"] += q.kind == QuestionKind.INCIDENT.value
        row["解決"] += q.status == QuestionStatus.RESOLVED.value
        row["終了（未解決）"] += q.status == QuestionStatus.CLOSED.value
        row["対応中・回答待ち"] += q.is_active
        if q.first_response_seconds is not None:
            first[q.municipality.name].append(q.first_response_seconds / 3600)
        if q.resolution_seconds is not None:
            resolution[q.municipality.name].append(q.resolution_seconds / 3600)
    visible = policy.visible_cases_clause(user)
    for name, count in db.session.execute(
            select(Municipality.name, func.count(Case.id)).join(Case, Case.municipality_id == Municipality.id)
            .where(visible, Case.state == CaseState.PUBLISHED.value, period.clause(Case.published_at))
            .group_by(Municipality.name)).all():
        if name in per:
            per[name]["公開した事例"] = count
    helper = User.municipality_id.is_distinct_from(Case.municipality_id)
    for name, count in db.session.execute(
            select(Municipality.name, func.count(CaseHelpful.id)).join(Case, Case.municipality_id == Municipality.id)
            .join(CaseHelpful, CaseHelpful.case_id == Case.id).join(User, User.id == CaseHelpful.user_id)
            .where(visible, helper, period.clause(CaseHelpful.created_at)).group_by(Municipality.name)).all():
        if name in per:
            per[name]["他の市町からの参考になった"] = count
    rows = []
    for name, row in per.items():
        row["初回応答の中央値（時間）"] = f"{statistics.median(first[name]):.1f}" if first[name] else ""
        row["解決までの中央値（時間）"] = f"{statistics.median(resolution[name]):.1f}" if resolution[name] else ""
        rows.append(row)
    total = {column: sum(r[column] for r in rows if isinstance(r[column], int)) for column in YEARLY_COLUMNS}
    all_first = [h for values in first.values() for h in values]
    all_resolution = [h for values in resolution.values() for h in values]
    total.update({"市町": "合計", "初回応答の中央値（時間）": f"{statistics.median(all_first):.1f}" if all_first else "",
                  "解決までの中央値（時間）": f"{statistics.median(all_resolution):.1f}" if all_resolution else ""})
    return rows + [total]

"""Shared IT experts: the registry and its skills vocabulary, municipalities' requests, matching
(ranked suggestions with their reasons), proposals, assignments with their cost split, the
request's conversation, the expert's answers into the thread a request came from, and reports.

Every change that decides from a row's state (propose, accept, decline, withdraw, close) does it
with a conditional UPDATE on that state (``… WHERE status = 'open'``): of two concurrent requests
exactly one wins, the other gets a Conflict (409) and nothing is written.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select, update

from app import policy
from app.extensions import db
from app.models import (
    Answer, AssignmentShare, Case, CaseState, ContractForm, Expert, ExpertAssignment, ExpertKind, ExpertProposal,
    ExpertRequest, ExpertSkill, Municipality, MunicipalityGroup, ProposalStatus, Question, RequestMessage,
    RequestSkill, RequestStatus, Role, Skill, User, WorkStyle, utcnow,
)
from app.models.expert import SKILL_LEVELS
from app.services import audit, notifications
from app.services.errors import Conflict, Forbidden, ValidationFailed
from app.services.locking import lock_for_update
from app.services.validation import parse_int


MAX_YEN = 10**12
MAX_TEXT = 5000
WEIGHTS = {"skill": 40, "availability": 20, "region": 15, "load": 10, "record": 15}
CRITERIA = (("skill", "スキルの適合"), ("availability", "期間中の空き"), ("region", "地域・勤務形態"),
            ("load", "現在の担当"), ("record", "事例ライブラリでの実績"))


# --- input ------------------------------------------------------------------------------------

def _fold(value) -> str:
    return unicodedata.normalize("NFKC", value).replace("\x00", "").strip() if isinstance(value, str) else ""


def _text(data: dict, name: str, label: str, errors: dict, *, required: bool = False, limit: int = 200) -> str:
    raw = data.get(name)
    text = raw.replace("\x00", "").strip() if isinstance(raw, str) else ""
    if required and not text:
        errors[name] = f"{label}を入力してください。"
    elif len(text) > limit:
        errors[name] = f"{label}は{limit}文字以内にしてください（{len(text)}文字）。"
    return text


def _int(data: dict, name: str, label: str, errors: dict, *, required: bool = False, minimum: int = 0,
         maximum: int = MAX_YEN, unit: str = "") -> int | None:
    raw = data.get(name)
    if isinstance(raw, int) and not isinstance(raw, bool):
        text = str(raw)
    else:
        text = re.sub(r"[,\s円日人]", "", _fold(raw))
    if not text:
        if required:
            errors[name] = f"{label}を入力してください。"
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 13:
        errors[name] = f"{label}は半角または全角の数字で入力してください{('（' + unit + '）') if unit else ''}。"
        return None
    value = int(text)
    if not minimum <= value <= maximum:
        errors[name] = f"{label}は{minimum:,}から{maximum:,}の範囲で入力してください。"
        return None
    return value


def _date(data: dict, name: str, label: str, errors: dict, *, required: bool = False) -> date | None:
    raw = data.get(name)
    if isinstance(raw, date):
        return raw
    text = _fold(raw).replace("/", "-")
    if not text:
        if required:
            errors[name] = f"{label}を入力してください。"
        return None
    try:
        parts = [int(p) for p in text.split("-")]
        return date(*parts) if len(parts) == 3 else date.fromisoformat(text)
    except (ValueError, TypeError):
        errors[name] = f"{label}は 2026-04-01 の形式で入力してください。"
        return None


def _choice(data: dict, name: str, label: str, enum_class, errors: dict, default: str | None = None) -> str:
    value = data.get(name) or default
    if value not in enum_class._value2member_map_:
        errors[name] = f"{label}を選んでください。"
        return default or next(iter(enum_class)).value
    return value


def _list(data, name: str) -> list[str]:
    """Several values of one field: a form's getlist or a JSON list."""
    if hasattr(data, "getlist"):
        return [v for v in data.getlist(name) if isinstance(v, str)]
    value = data.get(name)
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [value] if isinstance(value, str) and value else []


def _period(data: dict, errors: dict, start_name: str, end_name: str) -> tuple[date | None, date | None]:
    start = _date(data, start_name, "開始日", errors, required=True)
    end = _date(data, end_name, "終了日", errors, required=True)
    if start and end and end < start:
        errors[end_name] = "終了日は開始日より後にしてください。"
    if start and end and (end - start).days > 366 * 5:
        errors[end_name] = "期間は5年以内にしてください。"
    return start, end


def months_in(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month + 1


# --- skills vocabulary ------------------------------------------------------------------------

def skills(active_only: bool = False) -> list[Skill]:
    query = select(Skill).order_by(Skill.sort_order, Skill.id)
    if active_only:
        query = query.where(Skill.is_active.is_(True))
    return list(db.session.scalars(query))


def add_skill(user: User, name) -> Skill:
    if not policy.can_manage_experts(user):
        raise Forbidden("スキルの語彙を変更できるのは県ヘルプデスクです。")
    errors: dict[str, str] = {}
    text = _fold(name)
    if not text:
        errors["name"] = "スキルの名称を入力してください。"
    elif len(text) > 100:
        errors["name"] = "スキルの名称は100文字以内にしてください。"
    if errors:
        raise ValidationFailed(errors)
    if db.session.scalar(select(Skill.id).where(Skill.name == text)) is not None:
        raise ValidationFailed({"name": f"「{text}」はすでに登録されています。"})
    order = (db.session.scalar(select(Skill.sort_order).order_by(Skill.sort_order.desc()).limit(1)) or 0) + 1
    skill = Skill(name=text, sort_order=order, is_active=True)
    db.session.add(skill)
    db.session.flush()
    audit.record(user, "skill.add", skill, text)
    return skill


def set_skill_active(user: User, skill: Skill, active: bool) -> Skill:
    """A retired skill stays on the experts and requests that have it, and is no longer offered."""
    if not policy.can_manage_experts(user):
        raise Forbidden("スキルの語彙を変更できるのは県ヘルプデスクです。")
    skill.is_active = bool(active)
    audit.record(user, "skill.toggle", skill, f"{skill.name}: {'使用' if active else '停止'}")
    return skill


# --- the registry -----------------------------------------------------------------------------

def _skill_levels(data, errors: dict, prefix: str = "skill_") -> dict[int, int]:
    """``skill_<id>`` = level (1-3) for each chosen skill."""
    chosen: dict[int, int] = {}
    known = {s.id: s for s in skills()}
    for key in list(data.keys()):
        if not key.startswith(prefix):
            continue
        raw = data.get(key)
        if raw in ("", None, "0"):
            continue
        try:
            skill_id, level = int(key[len(prefix):]), int(raw)
        except (TypeError, ValueError):
            errors["skills"] = "スキルのレベルを選び直してください。"
            continue
        if skill_id not in known or level not in SKILL_LEVELS:
            errors["skills"] = "スキルのレベルを選び直してください。"
            continue
        chosen[skill_id] = level
    return chosen


def _expert_account(value, expert: Expert | None, errors: dict) -> User | None:
    username = _fold(value).lower()
    if not username:
        return None
    account = db.session.scalar(select(User).where(User.username == username))
    if account is None or account.role != Role.EXPERT.value:
        errors["username"] = "「専門人材」の役割のアカウントのユーザー名を入力してください（管理者が作成します）。"
        return None
    other = db.session.scalar(select(Expert).where(Expert.user_id == account.id))
    if other is not None and (expert is None or other.id != expert.id):
        errors["username"] = f"このアカウントはすでに「{other.name}」に結び付いています。"
        return None
    return account


def save_expert(user: User, expert: Expert | None, data) -> Expert:
    if not policy.can_manage_experts(user):
        raise Forbidden("専門人材の登録は県ヘルプデスクが行います。")
    if expert is not None:
        lock_for_update(expert)
    errors: dict[str, str] = {}
    name = _text(data, "name", "氏名", errors, required=True, limit=100)
    organisation = _text(data, "organisation", "所属", errors, limit=200)
    kind = _choice(data, "kind", "区分", ExpertKind, errors, ExpertKind.EXTERNAL.value)
    days = _int(data, "days_per_month", "対応できる日数（月）", errors, required=True, maximum=31)
    work_style = _choice(data, "work_style", "勤務形態", WorkStyle, errors, WorkStyle.BOTH.value)
    available_from = _date(data, "available_from", "対応できる期間の始め", errors)
    available_until = _date(data, "available_until", "対応できる期間の終わり", errors)
    if available_from and available_until and available_until < available_from:
        errors["available_until"] = "終わりは始めより後にしてください。"
    forms = [v for v in _list(data, "contract_forms") if v in ContractForm._value2member_map_]
    rate_min = _int(data, "rate_min", "単価（下限）", errors, maximum=10_000_000, unit="円／日")
    rate_max = _int(data, "rate_max", "単価（上限）", errors, maximum=10_000_000, unit="円／日")
    if rate_min is not None and rate_max is not None and rate_max < rate_min:
        errors["rate_max"] = "単価の上限は下限以上にしてください。"
    affiliations = _text(data, "vendor_affiliations", "事業者との関係", errors, limit=MAX_TEXT)
    notes = _text(data, "notes", "備考", errors, limit=MAX_TEXT)
    levels = _skill_levels(data, errors)
    regions_raw = _list(data, "regions")
    all_regions = "all" in regions_raw
    group_ids = {i for i in map(parse_int, regions_raw) if i is not None}
    groups = list(db.session.scalars(select(MunicipalityGroup).where(MunicipalityGroup.id.in_(group_ids)))) if group_ids else []
    served_ids = {i for i in map(parse_int, _list(data, "served")) if i is not None}
    served = list(db.session.scalars(select(Municipality).where(Municipality.id.in_(served_ids)))) if served_ids else []
    account = _expert_account(data.get("username"), expert, errors)
    if errors:
        raise ValidationFailed(errors)
    if expert is None:
        expert = Expert()
        db.session.add(expert)
    expert.name, expert.organisation, expert.kind = name, organisation, kind
    expert.days_per_month, expert.work_style = days, work_style
    expert.available_from, expert.available_until = available_from, available_until
    expert.contract_forms = ",".join(f for f in ContractForm._value2member_map_ if f in forms)
    expert.rate_min, expert.rate_max = rate_min, rate_max
    expert.vendor_affiliations, expert.notes = affiliations, notes
    expert.all_regions, expert.regions, expert.served = all_regions, groups, served
    expert.user = account
    expert.is_active = data.get("is_active", "1") not in ("0", "false", False)
    current = {s.skill_id: s for s in expert.skills}
    for skill_id, level in levels.items():
        if skill_id in current:
            current[skill_id].level = level
        else:
            expert.skills.append(ExpertSkill(skill_id=skill_id, level=level))
    for skill_id, row in current.items():
        if skill_id not in levels:
            expert.skills.remove(row)
    db.session.flush()
    audit.record(user, "expert.save", expert, name)
    return expert


def experts(active_only: bool = False) -> list[Expert]:
    query = select(Expert).order_by(Expert.is_active.desc(), Expert.name, Expert.id)
    if active_only:
        query = query.where(Expert.is_active.is_(True))
    return list(db.session.scalars(query))


def expert_for_user(user: User | None) -> Expert | None:
    if not policy.is_expert(user):
        return None
    return db.session.scalar(select(Expert).where(Expert.user_id == user.id))


def served_municipalities(expert: Expert) -> list[Municipality]:
    """Declared in the registry, plus those of the expert's active assignments (and their split)."""
    ids = {m.id for m in expert.served}
    rows = db.session.execute(
        select(ExpertRequest.municipality_id, AssignmentShare.municipality_id)
        .join(ExpertAssignment, ExpertAssignment.request_id == ExpertRequest.id)
        .outerjoin(AssignmentShare, AssignmentShare.assignment_id == ExpertAssignment.id)
        .where(ExpertAssignment.expert_id == expert.id, ExpertAssignment.is_active.is_(True))).all()
    for requester, sharer in rows:
        ids.add(requester)
        if sharer is not None:
            ids.add(sharer)
    if not ids:
        return []
    return list(db.session.scalars(select(Municipality).where(Municipality.id.in_(ids)).order_by(Municipality.code)))


# --- requests ---------------------------------------------------------------------------------

def request_form_defaults(question: Question | None) -> dict:
    if question is None:
        return {}
    return {"title": question.title[:200], "body": question.body[:MAX_TEXT]}


def file_request(user: User, data, question: Question | None = None) -> ExpertRequest:
    """A municipality's request; or the help desk's, made from a question of that municipality."""
    if question is not None:
        if not policy.can_convert_question(user, question):
            raise Forbidden("相談から派遣依頼を作れるのは県ヘルプデスクです。")
        municipality_id = question.municipality_id
    else:
        if not policy.can_file_request(user):
            raise Forbidden("派遣依頼を出せるのは構成市町の職員です。")
        municipality_id = user.municipality_id
    errors: dict[str, str] = {}
    title = _text(data, "title", "課題", errors, required=True, limit=200)
    body = _text(data, "body", "内容", errors, required=True, limit=MAX_TEXT)
    start, end = _period(data, errors, "period_start", "period_end")
    days = _int(data, "days_per_month", "頻度（月あたりの日数）", errors, required=True, minimum=1, maximum=31)
    work_style = _choice(data, "work_style", "勤務形態", WorkStyle, errors, WorkStyle.BOTH.value)
    budget = _int(data, "budget", "予算", errors, unit="円")
    systems = _text(data, "systems", "対象のシステム", errors, limit=MAX_TEXT)
    vendors = _text(data, "vendors", "関係する事業者", errors, limit=MAX_TEXT)
    levels = _skill_levels(data, errors)
    if not levels and "skills" not in errors:
        errors["skills"] = "必要なスキルを1つ以上選んでください。"
    if errors:
        raise ValidationFailed(errors)
    request = ExpertRequest(municipality_id=municipality_id, requester=user, question=question, title=title,
                            body=body, period_start=start, period_end=end, days_per_month=days,
                            work_style=work_style, budget=budget, systems=systems, vendors=vendors,
                            status=RequestStatus.OPEN.value)
    request.skills = [RequestSkill(skill_id=s, level=lv) for s, lv in sorted(levels.items())]
    db.session.add(request)
    db.session.flush()
    notifications.expert_request_event(request, "filed", user, notifications.helpdesk_users())
    return request


def visible_requests(user: User, status: str | None = None) -> list[ExpertRequest]:
    query = select(ExpertRequest).where(policy.visible_requests_clause(user)).order_by(ExpertRequest.id.desc())
    if status in RequestStatus._value2member_map_:
        query = query.where(ExpertRequest.status == status)
    return list(db.session.scalars(query.limit(500)))


def post_message(user: User, request: ExpertRequest, data) -> RequestMessage:
    lock_for_update(request)
    if not policy.can_post_request_message(user, request):
        raise Forbidden("この依頼に書き込むことはできません。")
    errors: dict[str, str] = {}
    body = _text(data, "body", "本文", errors, required=True, limit=MAX_TEXT)
    if errors:
        raise ValidationFailed(errors)
    message = RequestMessage(request=request, author=user, body=body)
    db.session.add(message)
    request.updated_at = utcnow()
    db.session.flush()
    return message


def post_expert_answer(user: User, request: ExpertRequest, data) -> Answer:
    """The assigned expert's answer, in the thread the request came from: the municipality reads
    it there and may resolve the question with it (the case library gets it from there)."""
    question = request.question
    if question is None:
        raise Conflict("この依頼は相談から作られていないため、スレッドがありません。")
    lock_for_update(question)
    if not policy.can_expert_answer(user, question):
        if not question.is_active:
            raise Conflict("この相談はすでに解決済みまたは終了しています。")
        raise Forbidden("この相談に回答することはできません。")
    errors: dict[str, str] = {}
    body = _text(data, "body", "回答", errors, required=True, limit=20000)
    if errors:
        raise ValidationFailed(errors)
    answer = Answer(question=question, author=user, body=body)
    db.session.add(answer)
    now = utcnow()
    if question.first_response_at is None:
        question.first_response_at = now
    question.updated_at = now
    db.session.flush()
    notifications.post_added(question, "answer", answer.id, user)
    return answer


# --- matching ---------------------------------------------------------------------------------

_VENDOR_NOISE = re.compile(r"株式会社|有限会社|合同会社|\(株\)|（株）|㈱|\(有\)|㈲|co\.,?|ltd\.?|inc\.?|corporation|[\s・.,、]")


def vendor_key(name: str) -> str:
    return _VENDOR_NOISE.sub("", unicodedata.normalize("NFKC", name).casefold())


def conflicts(expert: Expert, request: ExpertRequest) -> list[tuple[str, str]]:
    """(declared affiliation, vendor concerned by the request) pairs naming the same company."""
    found = []
    for affiliation in expert.affiliation_list:
        a = vendor_key(affiliation)
        for vendor in request.vendor_list:
            v = vendor_key(vendor)
            if len(a) >= 2 and len(v) >= 2 and (v in a or a in v):
                found.append((affiliation, vendor))
    return found


@dataclass
class Criterion:
    key: str
    label: str
    score: float       # 0..1
    reason: str
    cases: list[Case] = field(default_factory=list)


@dataclass
class Suggestion:
    expert: Expert
    score: int         # 0..100
    criteria: list[Criterion]
    estimate: str = ""


@dataclass
class Exclusion:
    expert: Expert
    reason: str


@dataclass
class Matching:
    suggestions: list[Suggestion]
    excluded: list[Exclusion]


def _committed_days(expert: Expert, start: date, end: date, exclude_request: int | None) -> tuple[int, list[str]]:
    rows = db.session.scalars(
        select(ExpertAssignment).where(ExpertAssignment.expert_id == expert.id, ExpertAssignment.is_active.is_(True),
                                       ExpertAssignment.start <= end, ExpertAssignment.end >= start))
    total, labels = 0, []
    for a in rows:
        if a.request_id == exclude_request:
            continue
        total += a.days_per_month
        labels.append(f"{a.request.municipality.name} 月{a.days_per_month}日")
    return total, labels


def _skill_fit(expert: Expert, request: ExpertRequest) -> Criterion:
    have = {s.skill_id: s.level for s in expert.skills}
    parts, total = [], 0.0
    for need in request.skills:
        level = have.get(need.skill_id, 0)
        if level >= need.level:
            total += 1
            mark = "○"
        elif level:
            total += 0.5
            mark = "△"
        else:
            mark = "×"
        held = SKILL_LEVELS.get(level, "なし")
        parts.append(f"{mark}{need.skill.name}: {held}（必要: {SKILL_LEVELS[need.level]}）")
    score = total / len(request.skills) if request.skills else 0.0
    return Criterion("skill", "スキルの適合", score, "、".join(parts) or "必要なスキルの指定なし")


def _availability(expert: Expert, request: ExpertRequest) -> Criterion:
    start, end = request.period_start, request.period_end
    if expert.available_from and expert.available_from > start:
        return Criterion("availability", "期間中の空き", 0.0, f"{expert.available_from:%Y-%m-%d}からの対応です（依頼は{start:%Y-%m-%d}から）")
    if expert.available_until and expert.available_until < end:
        return Criterion("availability", "期間中の空き", 0.0, f"{expert.available_until:%Y-%m-%d}までの対応です（依頼は{end:%Y-%m-%d}まで）")
    committed, labels = _committed_days(expert, start, end, request.id)
    free = max(0, expert.days_per_month - committed)
    need = max(1, request.days_per_month)
    score = min(1.0, free / need)
    busy = f"、期間中は他の派遣で月{committed}日（{'、'.join(labels)}）" if committed else ""
    return Criterion("availability", "期間中の空き", score,
                     f"月{expert.days_per_month}日まで{busy} → 空き月{free}日（必要: 月{need}日）")


def _region(expert: Expert, request: ExpertRequest) -> Criterion:
    style, wanted = expert.work_style_enum, request.work_style_enum
    municipality = request.municipality
    member_of = {g.id for g in municipality.groups}
    covering = [g.name for g in expert.regions if g.id in member_of]
    covers = expert.all_regions or bool(covering)
    where = "県内全域で現地対応" if expert.all_regions else (f"{'・'.join(covering)}で現地対応" if covering else "")
    if wanted is WorkStyle.REMOTE:
        if style.remote:
            return Criterion("region", "地域・勤務形態", 1.0, "リモートで対応できます")
        return Criterion("region", "地域・勤務形態", 0.0, "現地対応のみ（依頼はリモート）")
    if style.onsite and covers:
        return Criterion("region", "地域・勤務形態", 1.0, f"{where}できます（{municipality.name}）")
    if wanted is WorkStyle.BOTH and style.remote:
        return Criterion("region", "地域・勤務形態", 0.7, f"リモートで対応（{municipality.name}は現地対応の地域外）")
    if style.onsite:
        return Criterion("region", "地域・勤務形態", 0.3, f"{municipality.name}は現地対応の地域外です")
    return Criterion("region", "地域・勤務形態", 0.0, "リモートのみ（依頼は現地対応）")


def _load(expert: Expert) -> Criterion:
    served = served_municipalities(expert)
    score = max(0.0, 1 - len(served) / 4)
    if not served:
        return Criterion("load", "現在の担当", 1.0, "現在担当している団体はありません")
    return Criterion("load", "現在の担当", score, f"現在{len(served)}団体を担当（{'、'.join(m.name for m in served)}）")


def answered_case_ids(viewer: User, expert: Expert) -> set[int]:
    """Published cases whose thread has an answer of the expert's account, among those the viewer
    may read (a case the viewer may not read is not counted, named or linked)."""
    if expert.user_id is None:
        return set()
    rows = db.session.scalars(
        select(Case.id).join(Answer, Answer.question_id == Case.question_id)
        .where(Answer.author_id == expert.user_id, Answer.withdrawn_at.is_(None),
               Case.state == CaseState.PUBLISHED.value, policy.visible_cases_clause(viewer)))
    return set(rows)


def _similar_cases(viewer: User, request: ExpertRequest) -> list[Case]:
    """Cases on the request's topic, found by the library's search engine as the viewer."""
    from app.search.service import similar_cases

    text = "\n".join(filter(None, [request.title, request.body, request.systems]))
    return [hit.case for hit in similar_cases(viewer, text, limit=50)]


def _record(viewer: User, expert: Expert, similar: list[Case]) -> Criterion:
    if expert.user_id is None:
        return Criterion("record", "事例ライブラリでの実績", 0.0, "アカウントがないため、回答の記録はありません")
    answered = answered_case_ids(viewer, expert)
    matched = [c for c in similar if c.id in answered]
    score = min(1.0, len(matched) / 2)
    if not matched:
        reason = f"似た話題の事例への回答はありません（回答した公開事例 {len(answered)}件）"
    else:
        reason = f"似た話題の事例に{len(matched)}件回答（回答した公開事例 {len(answered)}件）"
    return Criterion("record", "事例ライブラリでの実績", score, reason, matched[:3])


def _estimate(expert: Expert, request: ExpertRequest) -> str:
    days = request.days_per_month * months_in(request.period_start, request.period_end)
    if expert.rate_min is None and expert.rate_max is None:
        return f"延べ{days}日（単価の登録なし）"
    low = (expert.rate_min or expert.rate_max) * days
    high = (expert.rate_max or expert.rate_min) * days
    text = f"延べ{days}日 × 単価 → {low:,}〜{high:,}円"
    if request.budget is not None:
        text += "（予算内）" if high <= request.budget else ("（予算を超える可能性）" if low <= request.budget else "（予算超過）")
    return text


def match(viewer: User, request: ExpertRequest) -> Matching:
    """Every active expert, ranked by the weighted criteria; experts affiliated with a vendor the
    request concerns are set apart with the reason."""
    if not policy.can_see_suggestions(viewer, request):
        raise Forbidden("候補を見られるのは県ヘルプデスクです。")
    similar = _similar_cases(viewer, request)
    suggestions, excluded = [], []
    for expert in experts(active_only=True):
        pairs = conflicts(expert, request)
        if pairs:
            reason = "、".join(f"申告された関係「{a}」が依頼の対象事業者「{v}」にあたります" for a, v in pairs)
            excluded.append(Exclusion(expert, reason))
            continue
        criteria = [_skill_fit(expert, request), _availability(expert, request), _region(expert, request),
                    _load(expert), _record(viewer, expert, similar)]
        score = round(sum(WEIGHTS[c.key] * c.score for c in criteria))
        suggestions.append(Suggestion(expert, score, criteria, _estimate(expert, request)))
    suggestions.sort(key=lambda s: (-s.score, -s.criteria[0].score, s.expert.name, s.expert.id))
    return Matching(suggestions, excluded)


# --- proposals and assignments ----------------------------------------------------------------

def _split(data, request: ExpertRequest, errors: dict) -> list[tuple[int, int]]:
    """``share_<municipality id>`` = percent; the requester always pays a part; the total is 100."""
    pairs: dict[int, int] = {}
    for key in list(data.keys()):
        if not key.startswith("share_"):
            continue
        raw = _fold(data.get(key)).rstrip("%％")
        if not raw:
            continue
        municipality_id, percent = parse_int(key[6:]), parse_int(raw, minimum=0, maximum=100)
        if municipality_id is None or percent is None:
            errors["split"] = "負担割合は0〜100の整数（%）で入力してください。"
            continue
        if percent:
            pairs[municipality_id] = percent
    if not pairs:
        pairs = {request.municipality_id: 100}
    known = set(db.session.scalars(select(Municipality.id).where(Municipality.id.in_(pairs),
                                                                 Municipality.is_observer.is_(False))))
    if set(pairs) - known:
        errors["split"] = "負担する団体を選び直してください。"
    elif sum(pairs.values()) != 100:
        errors["split"] = f"負担割合の合計を100%にしてください（いまは{sum(pairs.values())}%）。"
    elif request.municipality_id not in pairs:
        errors["split"] = f"依頼した{request.municipality.name}の負担割合を入れてください。"
    ordered = [(request.municipality_id, pairs.get(request.municipality_id, 0))]
    ordered += sorted((m, p) for m, p in pairs.items() if m != request.municipality_id)
    return ordered


def _transition(request: ExpertRequest, from_status: str, to_status: str) -> None:
    done = db.session.execute(
        update(ExpertRequest).where(ExpertRequest.id == request.id, ExpertRequest.status == from_status)
        .values(status=to_status, updated_at=utcnow()).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise Conflict("この依頼の状態が変わりました。画面を読み込み直してください。")
    db.session.expire(request, ["status", "updated_at"])


def _proposal_transition(proposal: ExpertProposal, to_status: str, user: User, reason: str = "") -> None:
    done = db.session.execute(
        update(ExpertProposal).where(ExpertProposal.id == proposal.id,
                                     ExpertProposal.status == ProposalStatus.PENDING.value)
        .values(status=to_status, decided_by_id=user.id, decided_at=utcnow(), decline_reason=reason)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise Conflict("この提案にはすでに回答があるか、取り下げられています。")
    db.session.expire(proposal)


def propose(user: User, request: ExpertRequest, data) -> ExpertProposal:
    if not policy.can_propose(user, request):
        if policy.is_helpdesk(user):
            raise Conflict("この依頼には提案中または決定済みの専門人材がいます。")
        raise Forbidden("専門人材を提案できるのは県ヘルプデスクです。")
    errors: dict[str, str] = {}
    expert_id = _int(data, "expert_id", "専門人材", errors, required=True, minimum=1)
    expert = db.session.get(Expert, expert_id) if expert_id else None
    if expert_id and (expert is None or not expert.is_active):
        errors["expert_id"] = "専門人材を選び直してください。"
    start, end = _period(data, errors, "start", "end")
    days = _int(data, "days_per_month", "月あたりの日数", errors, required=True, minimum=1, maximum=31)
    total_days = _int(data, "total_days", "延べ日数", errors, required=True, minimum=1, maximum=2000)
    rate = _int(data, "daily_rate", "単価（1日）", errors, required=True, minimum=0, maximum=10_000_000, unit="円")
    form = _choice(data, "contract_form", "契約の形", ContractForm, errors)
    cio = data.get("cio_assistant") in ("y", "on", "1", "true", True)
    note = _text(data, "note", "提案の説明", errors, limit=MAX_TEXT)
    split = _split(data, request, errors)
    if expert is not None and expert.is_active:
        pairs = conflicts(expert, request)
        if pairs:
            errors["expert_id"] = (f"{expert.name}さんは依頼の対象事業者と関係があるため提案できません"
                                   f"（{'、'.join(f'{a} → {v}' for a, v in pairs)}）。")
    if errors:
        raise ValidationFailed(errors)
    _transition(request, RequestStatus.OPEN.value, RequestStatus.PROPOSED.value)
    proposal = ExpertProposal(request_id=request.id, expert=expert, proposed_by=user, note=note, start=start,
                              end=end, days_per_month=days, total_days=total_days, daily_rate=rate,
                              contract_form=form, cio_assistant=cio,
                              split=",".join(f"{m}:{p}" for m, p in split),
                              status=ProposalStatus.PENDING.value)
    db.session.add(proposal)
    db.session.flush()
    audit.record(user, "expert_request.propose", request, f"依頼 #{request.id}: {expert.name}")
    notifications.expert_request_event(request, "proposed", user, notifications.municipality_staff(request.municipality_id))
    return proposal


def withdraw_proposal(user: User, proposal: ExpertProposal) -> ExpertProposal:
    if not policy.is_helpdesk(user):
        raise Forbidden("提案を取り下げられるのは県ヘルプデスクです。")
    _proposal_transition(proposal, ProposalStatus.WITHDRAWN.value, user)
    _transition(proposal.request, RequestStatus.PROPOSED.value, RequestStatus.OPEN.value)
    notifications.expert_request_event(proposal.request, "withdrawn", user,
                                       notifications.municipality_staff(proposal.request.municipality_id))
    return proposal


def decline_proposal(user: User, proposal: ExpertProposal, data) -> ExpertProposal:
    if not policy.can_answer_proposal(user, proposal):
        if proposal.status != ProposalStatus.PENDING.value and policy.is_requester_staff(user, proposal.request):
            raise Conflict("この提案にはすでに回答があるか、取り下げられています。")
        raise Forbidden("この提案に回答できるのは依頼した市町の職員です。")
    errors: dict[str, str] = {}
    reason = _text(data, "reason", "辞退の理由", errors, limit=MAX_TEXT)
    if errors:
        raise ValidationFailed(errors)
    request = proposal.request
    _proposal_transition(proposal, ProposalStatus.DECLINED.value, user, reason)
    _transition(request, RequestStatus.PROPOSED.value, RequestStatus.OPEN.value)
    notifications.expert_request_event(request, "declined", user, notifications.helpdesk_users())
    return proposal


def accept_proposal(user: User, proposal: ExpertProposal) -> ExpertAssignment:
    if not policy.can_answer_proposal(user, proposal):
        if proposal.status != ProposalStatus.PENDING.value and policy.is_requester_staff(user, proposal.request):
            raise Conflict("この提案にはすでに回答があるか、取り下げられています。")
        raise Forbidden("この提案に回答できるのは依頼した市町の職員です。")
    request = proposal.request
    _proposal_transition(proposal, ProposalStatus.ACCEPTED.value, user)
    _transition(request, RequestStatus.PROPOSED.value, RequestStatus.ASSIGNED.value)
    assignment = ExpertAssignment(request_id=request.id, expert_id=proposal.expert_id, proposal_id=proposal.id,
                                  start=proposal.start, end=proposal.end, days_per_month=proposal.days_per_month,
                                  total_days=proposal.total_days, daily_rate=proposal.daily_rate,
                                  contract_form=proposal.contract_form, cio_assistant=proposal.cio_assistant,
                                  is_active=True)
    assignment.shares = [AssignmentShare(municipality_id=m, percent=p, position=i)
                         for i, (m, p) in enumerate(proposal.split_pairs)]
    db.session.add(assignment)
    db.session.flush()
    audit.record(user, "expert_request.accept", request, f"依頼 #{request.id}: {proposal.expert.name}")
    notifications.expert_request_event(request, "accepted", user, notifications.helpdesk_users())
    expert_account = db.session.get(User, proposal.expert.user_id) if proposal.expert.user_id else None
    db.session.flush()   # the assignment exists before the expert's notification is asked about
    notifications.expert_request_event(request, "assigned", user, [expert_account])
    return assignment


def close_request(user: User, request: ExpertRequest) -> ExpertRequest:
    if not policy.can_close_request(user, request):
        if request.status == RequestStatus.CLOSED.value:
            raise Conflict("この依頼はすでに終了しています。")
        raise Forbidden("この依頼を終了することはできません。")
    before = request.status
    if before == RequestStatus.PROPOSED.value and request.pending_proposal is not None:
        _proposal_transition(request.pending_proposal, ProposalStatus.WITHDRAWN.value, user)
    _transition(request, before, RequestStatus.CLOSED.value)
    if request.assignment is not None and request.assignment.is_active:
        request.assignment.is_active = False
        request.assignment.ended_at = utcnow()
    audit.record(user, "expert_request.close", request, f"依頼 #{request.id}")
    notifications.expert_request_event(request, "closed", user, notifications.municipality_staff(request.municipality_id))
    return request


def share_amounts(amount: int, shares: list[AssignmentShare] | list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(municipality id, yen) under the split: each share rounded down, the remainder to the
    requester (the first share), so the parts add up to the amount."""
    pairs = [(s.municipality_id, s.percent) if isinstance(s, AssignmentShare) else s for s in shares]
    parts = [(m, amount * p // 100) for m, p in pairs]
    if parts:
        rest = amount - sum(v for _m, v in parts)
        parts[0] = (parts[0][0], parts[0][1] + rest)
    return parts


# --- reports ----------------------------------------------------------------------------------

ALLOCATION_RATE_NUM, ALLOCATION_RATE_DEN = 1, 2   # 特別交付税 措置率 0.5


def fiscal_year_bounds(year: int) -> tuple[date, date]:
    return date(year, 4, 1), date(year + 1, 3, 31)


def _overlap(a: ExpertAssignment, start: date, end: date) -> tuple[int, int]:
    """(days of the assignment inside [start, end], days of the whole assignment)."""
    days = (a.end - a.start).days + 1
    inside = (min(a.end, end) - max(a.start, start)).days + 1
    return max(0, inside), max(1, days)


@dataclass
class MunicipalityCost:
    municipality: Municipality
    cost: int = 0
    eligible: int = 0
    assignments: int = 0

    @property
    def allocation(self) -> int:
        return self.eligible * ALLOCATION_RATE_NUM // ALLOCATION_RATE_DEN

    @property
    def net(self) -> int:
        return self.cost - self.allocation


@dataclass
class ExpertUse:
    expert: Expert
    assignments: int = 0
    days: int = 0
    cost: int = 0
    municipalities: dict[str, int] = field(default_factory=dict)


@dataclass
class YearReport:
    year: int
    costs: list[MunicipalityCost]
    uses: list[ExpertUse]

    @property
    def total(self) -> MunicipalityCost:
        t = MunicipalityCost(Municipality(name="合計", code=""))
        for c in self.costs:
            t.cost += c.cost
            t.eligible += c.eligible
        return t


def year_report(user: User, year: int) -> YearReport:
    """Fiscal year (April to March): each assignment's cost counts in proportion to its days in
    the year, split between the municipalities as agreed."""
    if not policy.can_view_expert_reports(user):
        raise Forbidden("この報告を見られるのは県ヘルプデスクと管理者です。")
    start, end = fiscal_year_bounds(year)
    municipalities = {m.id: m for m in db.session.scalars(select(Municipality).order_by(Municipality.code))}
    costs = {mid: MunicipalityCost(m) for mid, m in municipalities.items() if not m.is_observer}
    uses: dict[int, ExpertUse] = {}
    rows = db.session.scalars(select(ExpertAssignment).where(ExpertAssignment.start <= end,
                                                             ExpertAssignment.end >= start)
                              .order_by(ExpertAssignment.id))
    for a in rows:
        inside, days = _overlap(a, start, end)
        if not inside:
            continue
        cost = a.total_cost * inside // days
        use = uses.setdefault(a.expert_id, ExpertUse(a.expert))
        use.assignments += 1
        use.days += a.total_days * inside // days
        use.cost += cost
        for mid, amount in share_amounts(cost, a.shares):
            row = costs.setdefault(mid, MunicipalityCost(municipalities[mid]))
            row.cost += amount
            row.assignments += 1
            if a.allocation_eligible:
                row.eligible += amount
            name = municipalities[mid].name
            use.municipalities[name] = use.municipalities.get(name, 0) + amount
    ordered_uses = sorted(uses.values(), key=lambda u: (-u.cost, u.expert.name))
    return YearReport(year, list(costs.values()), ordered_uses)


COST_COLUMNS = ["年度", "団体コード", "市町", "派遣の件数", "専門人材の費用（円）", "うちCIO補佐官の費用（特別交付税の対象）",
                "特別交付税の見込み（措置率0.5）", "差引の負担（見込み）"]
USE_COLUMNS = ["年度", "専門人材", "所属", "区分", "派遣の件数", "延べ日数", "費用（円）", "市町ごとの負担"]


def cost_rows(report: YearReport) -> list[dict]:
    label = f"{report.year}年度"
    return [{"年度": label, "団体コード": c.municipality.code, "市町": c.municipality.name, "派遣の件数": c.assignments,
             "専門人材の費用（円）": c.cost, "うちCIO補佐官の費用（特別交付税の対象）": c.eligible,
             "特別交付税の見込み（措置率0.5）": c.allocation, "差引の負担（見込み）": c.net} for c in report.costs]


def use_rows(report: YearReport) -> list[dict]:
    label = f"{report.year}年度"
    return [{"年度": label, "専門人材": u.expert.name, "所属": u.expert.organisation, "区分": u.expert.kind_enum.label,
             "派遣の件数": u.assignments, "延べ日数": u.days, "費用（円）": u.cost,
             "市町ごとの負担": "、".join(f"{n} {v:,}円" for n, v in u.municipalities.items())} for u in report.uses]


def current_fiscal_year(today: date | None = None) -> int:
    today = today or date.today()
    return today.year if today.month >= 4 else today.year - 1


def expert_assignments(expert: Expert) -> list[ExpertAssignment]:
    return list(db.session.scalars(select(ExpertAssignment).where(ExpertAssignment.expert_id == expert.id)
                                   .order_by(ExpertAssignment.start.desc())))


def default_dates(request: ExpertRequest) -> dict:
    return {"start": request.period_start, "end": request.period_end, "days_per_month": request.days_per_month,
            "total_days": request.days_per_month * months_in(request.period_start, request.period_end)}

"""Loading the shipped data in ``content/`` (idempotent) and the demo data for ``make run``."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from app.extensions import db
from app.models import (
    Category, Municipality, MunicipalityGroup, Question, SearchSynonym, User, utcnow,
)
from app.services import accounts
from app.services import cases as case_service
from app.services import questions as question_service
from app.services.municipalities import is_valid_code


@dataclass
class LoadReport:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    def count(self, bucket: str, kind: str) -> None:
        target = self.created if bucket == "created" else self.updated
        target[kind] = target.get(kind, 0) + 1

    def lines(self) -> list[str]:
        kinds = sorted(set(self.created) | set(self.updated))
        if not kinds:
            return ["変更なし（すでに最新です）"]
        return [f"{k}: 追加 {self.created.get(k, 0)} / 更新 {self.updated.get(k, 0)}" for k in kinds]


class ContentError(Exception):
    pass


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [
            {k: (v or "").strip() for k, v in row.items()}
            for row in csv.DictReader(handle, delimiter="\t")
        ]


def _upsert(model, key: dict, values: dict, report: LoadReport, kind: str):
    row = db.session.scalar(select(model).filter_by(**key))
    if row is None:
        row = model(**key, **values)
        db.session.add(row)
        report.count("created", kind)
        return row
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        report.count("updated", kind)
    return row


def load_reference(content_dir: Path, report: LoadReport | None = None) -> LoadReport:
    """Municipalities, groups and categories. Never touches questions, cases or accounts."""
    report = report or LoadReport()
    groups = {}
    for row in _read_tsv(content_dir / "groups.tsv"):
        groups[row["name"]] = _upsert(
            MunicipalityGroup, {"name": row["name"]}, {"description": row["description"]}, report, "groups"
        )
    db.session.flush()

    def municipality(row: dict, prefecture: str, observer: bool) -> None:
        code = row["code"]
        if not is_valid_code(code):
            raise ContentError(f"{row['name']}: 団体コード {code} の検査数字が正しくありません")
        m = _upsert(
            Municipality, {"code": code},
            {"name": row["name"], "kind": row["kind"], "prefecture": prefecture, "is_observer": observer,
             "roman_names": " ".join(row.get("roman_names", "").lower().split())},
            report, "municipalities",
        )
        wanted = [groups[name] for name in filter(None, row.get("groups", "").split(","))]
        unknown = [n for n in filter(None, row.get("groups", "").split(",")) if n not in groups]
        if unknown:
            raise ContentError(f"{row['name']}: 不明なグループ {unknown}")
        for group in wanted:
            if group not in m.groups:
                m.groups.append(group)
                report.count("created", "group members")

    for row in _read_tsv(content_dir / "municipalities.tsv"):
        municipality(row, "広島県", False)
    observers = content_dir / "observers.tsv"
    if observers.exists():
        for row in _read_tsv(observers):
            municipality(row, row["prefecture"], True)

    synonyms = content_dir / "search" / "synonyms.txt"
    if synonyms.exists():
        load_synonyms(synonyms, report)

    for row in _read_tsv(content_dir / "categories.tsv"):
        _upsert(Category, {"slug": row["slug"]},
                {"name": row["name"], "sort_order": int(row["sort_order"])}, report, "categories")
    db.session.flush()
    return report


def load_synonyms(path: Path, report: LoadReport) -> None:
    """Synonym groups, one per line (``UTM=統合脅威管理``). Groups that came from the file and are
    no longer in it are removed; groups the help desk added stay."""
    existing = set(db.session.scalars(select(SearchSynonym.terms)))
    shipped: set[str] = set()
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        terms = "=".join(t.strip() for t in line.split("=") if t.strip())
        if terms.count("=") < 1:
            raise ContentError(f"{path.name}: 「{line}」は2語以上を = で区切ってください")
        shipped.add(terms)
        if terms not in existing:
            db.session.add(SearchSynonym(terms=terms, source="content"))
            existing.add(terms)
            report.count("created", "synonyms")
    for group in db.session.scalars(select(SearchSynonym).where(SearchSynonym.source == "content")):
        if group.terms not in shipped:
            db.session.delete(group)
            report.count("updated", "synonyms")


def load_demo(content_dir: Path, report: LoadReport | None = None) -> LoadReport:
    """Demo accounts and demo threads. Only for ``make run``: never in production."""
    report = report or LoadReport()
    demo_dir = content_dir / "demo"
    spec = json.loads((demo_dir / "accounts.json").read_text(encoding="utf-8"))
    for entry in spec["accounts"]:
        if accounts.get_user(entry["username"]) is not None:
            continue
        municipality = accounts.find_municipality(entry.get("municipality"))
        accounts.create_user(entry["username"], spec["password"], entry["role"], municipality,
                             display_name=entry.get("display_name", ""))
        report.count("created", "demo accounts")
    library = demo_dir / "cases.jsonl"
    if library.exists():
        from app.services.importing import import_cases

        imported = import_cases(library)
        for _ in range(imported.created):
            report.count("created", "demo cases")
    threads = demo_dir / "threads.json"
    if threads.exists():
        for thread in json.loads(threads.read_text(encoding="utf-8")):
            if _load_thread(thread):
                report.count("created", "demo questions")
    experts = demo_dir / "experts.json"
    if experts.exists():
        for entry in json.loads(experts.read_text(encoding="utf-8")):
            if _load_expert(entry):
                report.count("created", "demo experts")
    db.session.flush()
    return report


def _load_expert(entry: dict) -> bool:
    """A demo expert of the shared pool (skills by name, added to the vocabulary when missing)."""
    from app.models.expert import Expert, Skill
    from app.services import experts as expert_service

    if db.session.scalar(select(Expert.id).where(Expert.name == entry["name"])) is not None:
        return False
    helpdesk = db.session.scalar(select(User).where(User.role == "helpdesk").order_by(User.id))
    data = {key: value for key, value in entry.items() if key != "skills"}
    for name, level in entry.get("skills", {}).items():
        skill = db.session.scalar(select(Skill).where(Skill.name == name)) or expert_service.add_skill(helpdesk, name)
        data[f"skill_{skill.id}"] = str(level)
    expert_service.save_expert(helpdesk, None, data)
    return True


def _load_thread(thread: dict) -> bool:
    asker = accounts.get_user(thread["asker"])
    if asker is None:
        raise ContentError(f"demo thread {thread['title']!r}: unknown asker {thread['asker']!r}")
    exists = db.session.scalar(
        select(Question.id).where(Question.title == thread["title"], Question.municipality_id == asker.municipality_id)
    )
    if exists:
        return False
    helpdesk = db.session.scalar(select(User).where(User.role == "helpdesk").order_by(User.id))
    started = utcnow() - timedelta(days=thread.get("days_ago", 1))
    question = question_service.ask_question(asker, {
        "title": thread["title"], "body": thread["body"], "category": thread["category"],
        "tags": thread.get("tags", []), "sharing_consent": thread.get("sharing_consent", "private"),
        "kind": thread.get("kind"), "priority": thread.get("priority"), "urgent_reason": thread.get("urgent_reason"),
    })
    question.created_at = question.updated_at = started
    if thread.get("owner"):
        question_service.assign(helpdesk, question, accounts.get_user(thread["owner"]).id)
    step = timedelta(hours=3)
    moment = started
    answers, replies = [], []
    for answer in thread.get("answers", []):
        moment += step
        posted = question_service.post_answer(helpdesk, question, {"body": answer["body"]})
        posted.created_at = moment
        answers.append(posted)
        replies.append(moment)
    for comment in thread.get("comments", []):
        moment += step
        author = asker if comment.get("by") == "asker" else helpdesk
        posted = question_service.post_comment(author, question, {"body": comment["body"]})
        posted.created_at = moment
        if author is helpdesk:
            replies.append(moment)
    question.updated_at = moment
    if replies:
        question.first_response_at = min(replies)
    if thread.get("await_reply") and question.is_active:
        question_service.await_municipality(helpdesk, question)
        question.waiting_since = moment
    resolve_with = thread.get("resolve_with")
    if resolve_with is not None and answers:
        case = question_service.resolve_question(helpdesk, question, answers[resolve_with].id)
        question.resolved_at = moment
        case_spec = thread.get("case") or {}
        case_service.update_case(helpdesk, case, {
            "environment": case_spec.get("environment", ""), "cause": case_spec.get("cause", ""),
        })
        if case_spec.get("publish"):
            case_service.publish_case(helpdesk, case)
    return True

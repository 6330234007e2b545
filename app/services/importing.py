"""Import and export of cases as JSON Lines or CSV (Excel: UTF-8 with BOM out, CP932 accepted in)."""
from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Case, CaseState, Municipality, Tag, Visibility, as_utc, case_tags, utcnow
from app.models.case import ArticleType, CaseKind
from app.search.sync import queue_cases
from app.services import audit, history, review
from app.services.accounts import find_municipality
from app.services.spreadsheet import original_text, write_csv
from app.services.validation import clean_body, clean_title, find_category, parse_tag_names, tags_for

COLUMNS = ["title", "issue", "environment", "cause", "resolution", "category", "tags",
           "municipality", "visibility", "published_at", "kind", "article_type"]
REQUIRED = ("title", "issue", "resolution")
JST = ZoneInfo("Asia/Tokyo")
ERAS = {"令和": 2018, "平成": 1988, "昭和": 1925, "大正": 1911}
_WAREKI = re.compile(r"^(令和|平成|昭和|大正)(元|\d{1,2})年(\d{1,2})月(\d{1,2})日$")
_SLASHED = re.compile(r"^(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})$")


class ImportFailed(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ImportReport:
    created: int = 0
    skipped: list[str] = field(default_factory=list)
    rows: int = 0


def parse_date(value: str) -> date:
    """ISO (2024-04-01), Excel's default (2024/4/1) or 和暦 (令和6年4月1日)."""
    text = unicodedata.normalize("NFKC", value).strip().replace(" ", "")
    match = _WAREKI.match(text)
    if match:
        era, year, month, day = match.groups()
        return date(ERAS[era] + (1 if year == "元" else int(year)), int(month), int(day))
    match = _SLASHED.match(text)
    if match:
        return date(*(int(g) for g in match.groups()))
    return datetime.fromisoformat(text).date() if "T" in text else date.fromisoformat(text)


def decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else CP932 (what Excel writes for Japanese)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp932")
    except UnicodeDecodeError:
        raise ImportFailed(["文字コードを判別できません（UTF-8 または Shift_JIS/CP932 で保存してください）"]) from None


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) pairs from a .jsonl or .csv file."""
    text = decode(path.read_bytes())
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict]] = []
    if suffix == ".jsonl":
        problems = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                problems.append(f"line {number}: JSON の形式が正しくありません ({error.msg})")
                continue
            if not isinstance(row, dict):
                problems.append(f"line {number}: 1行に1つの JSON オブジェクトを書いてください")
                continue
            rows.append((number, row))
        if problems:
            raise ImportFailed(problems)
        return rows
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise ImportFailed(["line 1: 見出し行がありません"])
        headers = [(h or "").strip() for h in reader.fieldnames]
        missing = [c for c in REQUIRED if c not in headers]
        if missing:
            raise ImportFailed([f"line 1: 必須の列がありません: {', '.join(missing)}"])
        reader.fieldnames = headers
        start = reader.line_num + 1
        for row in reader:
            rows.append((start, {k: original_text(v) if isinstance(v, str) else v for k, v in row.items() if k}))
            start = reader.line_num + 1
        return rows
    raise ImportFailed([f"{path.name}: .jsonl か .csv のファイルを指定してください"])


@dataclass
class _Row:
    number: int
    title: str
    fields: dict
    category: object
    tags: list[str]
    municipality: Municipality | None
    visibility: str
    published_at: datetime
    kind: str = CaseKind.CASE.value
    article_type: str | None = None


def _validate(number: int, row: dict, default_category, category_named=find_category,
              municipality_named=find_municipality) -> tuple[_Row | None, list[str]]:
    errors: dict[str, str] = {}
    title = clean_title(row.get("title"), errors)
    # An article (kind "article": お知らせ・手順書・注意喚起) has one text, its body, in "issue".
    kind = str(row.get("kind") or CaseKind.CASE.value).strip()
    article_type = None
    if kind not in {k.value for k in CaseKind}:
        errors["kind"] = "kind は case または article です"
    elif kind == CaseKind.ARTICLE.value:
        article_type = str(row.get("article_type") or "").strip()
        if article_type not in {t.value for t in ArticleType}:
            errors["article_type"] = "article_type は notice・procedure・advisory のいずれかです"
        if row.get("municipality") not in (None, ""):
            errors["municipality"] = "記事は県のものです（municipality は空にしてください）"
    required = ("title", "issue") if kind == CaseKind.ARTICLE.value else REQUIRED
    texts = {}
    for name, label in (("issue", "issue"), ("environment", "environment"), ("cause", "cause"),
                        ("resolution", "resolution")):
        texts[name] = clean_body(row.get(name) or "", errors, field=name, label=label,
                                 required=name in required)
    category = default_category
    if row.get("category") not in (None, ""):
        category = category_named(str(row["category"]))
        if category is None:
            errors["category"] = f"分類「{row['category']}」はありません"
    tags = parse_tag_names(row.get("tags"), errors)
    municipality = None
    if row.get("municipality") not in (None, ""):
        municipality = municipality_named(str(row["municipality"]))
        if municipality is None:
            errors["municipality"] = f"市町「{row['municipality']}」が見つかりません"
    visibility = (row.get("visibility") or Visibility.PRIVATE.value)
    if visibility not in {v.value for v in Visibility}:
        errors["visibility"] = "visibility は private・neighbours・all のいずれかです"
    published_at = utcnow()
    if row.get("published_at") not in (None, ""):
        try:
            day = parse_date(str(row["published_at"]))
            published_at = datetime.combine(day, time(9, 0), JST).astimezone(timezone.utc)
        except ValueError:
            errors["published_at"] = f"日付「{row['published_at']}」を読めません（2024-04-01、2024/4/1、令和6年4月1日）"
    if errors:
        return None, [f"line {number}: {field}: {message}" for field, message in errors.items()]
    return _Row(number, title, texts, category, tags, municipality, visibility, published_at, kind, article_type), []


IMPORT_BATCH = 500


def import_cases(path: Path, *, dry_run: bool = False, user=None) -> ImportReport:
    """Validate every row first; import all (published and queued for the index) or nothing."""
    rows = read_rows(path)
    default_category = find_category("other")
    valid: list[_Row] = []
    problems: list[str] = []
    # The same few dozen names come back on every row: each is looked up once per import.
    category_named = lru_cache(maxsize=None)(find_category)
    municipality_named = lru_cache(maxsize=None)(find_municipality)
    for number, row in rows:
        checked, errors = _validate(number, row, default_category, category_named, municipality_named)
        problems += errors
        if checked:
            valid.append(checked)
    if problems:
        raise ImportFailed(problems)
    report = ImportReport(rows=len(valid))
    existing = {
        (title, owner) for title, owner in db.session.execute(select(Case.title, Case.municipality_id))
    }
    known_tags = {t.name: t for t in db.session.scalars(select(Tag))}
    batch: list[tuple[dict, list[Tag]]] = []
    months: dict[int, int] = {}   # review period per category
    # Stored IMPORT_BATCH cases per statement (and their tags per statement), then queued for the
    # index and their revisions noted: Case objects of the ORM, a flush each, took longer than
    # indexing the same cases. A lookup with autoflush (a tag) would flush every row.
    with db.session.no_autoflush:
        for row in valid:
            owner = row.municipality.id if row.municipality else None
            if (row.title, owner) in existing:
                report.skipped.append(f"line {row.number}: 同じ件名の事例がすでにあるため読み飛ばしました: {row.title}")
                continue
            existing.add((row.title, owner))
            report.created += 1
            if dry_run:
                continue
            if row.category.id not in months:
                months[row.category.id] = review.review_months(row.category)
            values = dict(
                title=row.title, **row.fields, category_id=row.category.id, municipality_id=owner,
                state=CaseState.PUBLISHED.value, visibility=row.visibility, sharing_consent=row.visibility,
                published_at=row.published_at, created_by_id=user.id if user else None,
                updated_by_id=user.id if user else None, kind=row.kind,
                article_type=row.article_type,
                # reviewed like published ones
                review_due=review.review_due(row.published_at, months[row.category.id]),
            )
            batch.append((values, tags_for(row.tags, known_tags)))
            if len(batch) >= IMPORT_BATCH:
                _store(batch)
        _store(batch)
    if not dry_run and report.created:
        audit.record(user, "case.import", None, f"{path.name}: {report.created}件")
    return report


def _store(batch: list[tuple[dict, list[Tag]]]) -> None:
    """The batch's cases and their tags, one statement each; queued for the index, and noted for
    their first revision (written at commit like every other change's)."""
    if not batch:
        return
    ids = db.session.scalars(insert(Case).returning(Case.id, sort_by_parameter_order=True),
                             [values for values, _tags in batch]).all()
    links = [{"case_id": case_id, "tag_id": tag.id} for case_id, (_values, tags) in zip(ids, batch)
             for tag in dict.fromkeys(tags)]
    if links:
        db.session.execute(insert(case_tags), links)
    queue_cases(ids)
    history.touch(db.session, ids)
    batch.clear()


def export_rows(state: str = CaseState.PUBLISHED.value) -> list[dict]:
    cases = db.session.scalars(
        select(Case).where(Case.state == state).order_by(Case.id)
        .options(selectinload(Case.tags), selectinload(Case.category), selectinload(Case.municipality))
    )
    rows = []
    for case in cases:
        published = as_utc(case.published_at)
        rows.append({
            "title": case.title, "issue": case.issue, "environment": case.environment, "cause": case.cause,
            "resolution": case.resolution, "category": case.category.slug, "tags": [t.name for t in case.tags],
            # An anonymous case leaves the system without its owner's name.
            "municipality": case.municipality.name if case.municipality and not case.anonymous else "",
            "visibility": case.shared_visibility.value,
            "kind": case.kind, "article_type": case.article_type or "",
            "published_at": published.astimezone(JST).date().isoformat() if published else "",
        })
    return rows


def export_cases(path: Path, state: str = CaseState.PUBLISHED.value) -> int:
    rows = export_rows(state)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix == ".csv":
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            write_csv(handle, COLUMNS, ({**row, "tags": "、".join(row["tags"])} for row in rows))
    else:
        raise ImportFailed([f"{path.name}: .jsonl か .csv のファイル名を指定してください"])
    audit.record(None, "case.export", None, f"{path.name}: {len(rows)}件（{state}）")
    return len(rows)

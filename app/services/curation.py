"""The help desk tends the tags and categories: rename, merge (every case and question moves, the
old name stays a search synonym), retire (kept on what has it, offered and accepted no more), and
counts; administrators see the unused ones.

A merged tag or category stays as a row that points to where it went, so a name typed later (in
a question, an edit, the API) leads to the new one instead of creating the old one again.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, literal, select, update

from app import policy
from app.extensions import db
from app.models import (
    Case, Category, CategorySettings, Question, SearchSynonym, Tag, TagStatus, User, Watch, case_tags, question_tags,
    utcnow,
)
from app.search.analysis import normalise
from app.search.sync import queue_case
from app.services import audit, history
from app.services.errors import Conflict, Forbidden, ValidationFailed
from app.services.locking import lock_for_update
from app.services.validation import MAX_TAG_CHARS, normalise_tag

MAX_SYNONYM_CHARS = 500


# --- what typed names and chosen categories become ---------------------------------------------------

def _tag_status(tag_id: int) -> TagStatus | None:
    return db.session.get(TagStatus, tag_id)


def current_tag_names(names: list[str], errors: dict[str, str], field: str = "tags", keep=()) -> list[str]:
    """Typed tag names as they are now: a merged tag's name becomes its target's; a retired tag
    is refused unless the object already carries it (``keep``)."""
    if not names:
        return names
    rows = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(names)))}
    out, retired = [], []
    for name in names:
        tag = rows.get(name)
        status = _tag_status(tag.id) if tag is not None else None
        hops = 0
        while status is not None and status.merged_into_id is not None and hops < 10:
            tag = db.session.get(Tag, status.merged_into_id)
            status = _tag_status(tag.id) if tag is not None else None
            hops += 1
        if tag is not None:
            name = tag.name
        if status is not None and status.retired_at is not None and name not in keep:
            retired.append(name)
        elif name not in out:
            out.append(name)
    if retired:
        errors[field] = "使われなくなったタグです: " + "、".join(f"「{n}」" for n in retired) + "。別のタグを選んでください。"
    return out


def current_category(category: Category | None, errors: dict[str, str], field: str = "category",
                     keep: Category | None = None) -> Category | None:
    """A merged category becomes its target; a retired one is refused (unless already kept)."""
    hops = 0
    while category is not None and hops < 10:
        settings = db.session.get(CategorySettings, category.id)
        if settings is None:
            break
        if settings.merged_into_id is not None:
            category = db.session.get(Category, settings.merged_into_id)
            hops += 1
            continue
        if settings.retired_at is not None and (keep is None or keep.id != category.id):
            errors[field] = f"分類「{category.name}」は使われなくなりました。別の分類を選んでください。"
        break
    return category


def active_categories() -> list[Category]:
    """The categories offered in forms: neither retired nor merged."""
    retired = select(CategorySettings.category_id).where(
        (CategorySettings.retired_at.is_not(None)) | (CategorySettings.merged_into_id.is_not(None)))
    return list(db.session.scalars(select(Category).where(Category.id.not_in(retired))
                                   .order_by(Category.sort_order, Category.id)))


# --- synonyms ---------------------------------------------------------------------------------------

def keep_as_synonym(old: str, new: str, actor: User | None) -> SearchSynonym | None:
    """Make ``old`` a search synonym of ``new``: into the group that holds either (joining two
    groups when each holds one), or a new group."""
    old, new = unicodedata.normalize("NFKC", old).strip(), unicodedata.normalize("NFKC", new).strip()
    if not old or not new or normalise(old) == normalise(new):
        return None
    wanted = {normalise(old), normalise(new)}
    groups = [g for g in db.session.scalars(select(SearchSynonym).order_by(SearchSynonym.id))
              if wanted & {normalise(t) for t in g.term_list}]
    terms: list[str] = []
    for group in groups:
        terms += [t for t in group.term_list if normalise(t) not in {normalise(x) for x in terms}]
    for term in (new, old):
        if normalise(term) not in {normalise(x) for x in terms}:
            terms.append(term)
    joined = "=".join(terms)
    if len(joined) > MAX_SYNONYM_CHARS:
        return None  # the group would be too long to store: the rename or merge still happens
    if groups:
        keep, *others = groups
        for other in others:
            db.session.delete(other)
        db.session.flush()
        keep.terms = joined
        if keep.source != "helpdesk" and others:
            keep.source = "helpdesk"
        group = keep
    else:
        group = SearchSynonym(terms=joined, source="helpdesk")
        db.session.add(group)
    db.session.flush()
    audit.record(actor, "synonym.add", group, joined)
    return group


def _requeue(case_ids) -> None:
    for case_id in sorted(set(case_ids)):
        case = db.session.get(Case, case_id)
        if case is not None:
            queue_case(case)


def _note_cases(case_ids, label: str, user: User) -> None:
    """Cases changed by bulk statements: a revision each at commit, saying what and who."""
    for case_id in case_ids:
        case = db.session.get(Case, case_id)
        if case is not None:
            history.note(db.session, case, label, user)


def _move_watches(target_type: str, old_key: str, new_key: str) -> None:
    """Follows of the old name follow the new one (a follower of both keeps one)."""
    already = select(Watch.user_id).where(Watch.target_type == target_type, Watch.target_key == new_key)
    db.session.execute(delete(Watch).where(Watch.target_type == target_type, Watch.target_key == old_key,
                                           Watch.user_id.in_(already)))
    db.session.execute(update(Watch).where(Watch.target_type == target_type, Watch.target_key == old_key)
                       .values(target_key=new_key))


def _require(user: User) -> None:
    if not policy.can_curate_taxonomy(user):
        raise Forbidden("タグと分類を整理できるのはヘルプデスクだけです。")


# --- tags ---------------------------------------------------------------------------------------------

def _clean_tag_name(value, errors: dict[str, str]) -> str:
    name = normalise_tag(value) if isinstance(value, str) else ""
    if not name:
        errors["name"] = "新しい名前を入力してください。"
    elif len(name) > MAX_TAG_CHARS or any(sep in name for sep in (",", "、")):
        errors["name"] = f"タグは{MAX_TAG_CHARS}文字以内で、「,」「、」を含めずに入力してください。"
    return name


def _case_ids_with_tag(tag_id: int) -> list[int]:
    return list(db.session.scalars(select(case_tags.c.case_id).where(case_tags.c.tag_id == tag_id)))


def rename_tag(user: User, tag: Tag, new_name) -> Tag:
    _require(user)
    lock_for_update(tag)
    errors: dict[str, str] = {}
    name = _clean_tag_name(new_name, errors)
    if errors:
        raise ValidationFailed(errors)
    if name == tag.name:
        raise ValidationFailed({"name": "いまと同じ名前です。"})
    if db.session.scalar(select(Tag.id).where(Tag.name == name, Tag.id != tag.id)) is not None:
        raise ValidationFailed({"name": f"タグ「{name}」はすでにあります。まとめるときは「統合」を使ってください。"})
    old = tag.name
    tag.name = name
    db.session.flush()
    _move_watches("tag", old, name)
    keep_as_synonym(old, name, user)
    case_ids = _case_ids_with_tag(tag.id)
    _note_cases(case_ids, "タグの名前の変更", user)
    _requeue(case_ids)
    audit.record(user, "tag.rename", tag, f"「{old}」→「{name}」")
    return tag


def merge_tag(user: User, tag: Tag, target_name) -> Tag:
    """Every case and question with ``tag`` gets the target instead; ``tag``'s name stays a search
    synonym of the target and leads to it when typed."""
    _require(user)
    lock_for_update(tag)
    name = normalise_tag(target_name) if isinstance(target_name, str) else ""
    target = db.session.scalar(select(Tag).where(Tag.name == name)) if name else None
    if target is None:
        raise ValidationFailed({"target": f"統合先のタグ「{name}」が見つかりません。"})
    if target.id == tag.id:
        raise ValidationFailed({"target": "同じタグには統合できません。"})
    status = _tag_status(tag.id)
    if status is not None and status.merged_into_id is not None:
        raise Conflict(f"タグ「{tag.name}」はすでに統合されています。")
    target_status = _tag_status(target.id)
    if target_status is not None and (target_status.merged_into_id is not None or target_status.retired_at is not None):
        raise ValidationFailed({"target": f"タグ「{target.name}」は使われなくなっているため、統合先にできません。"})
    lock_for_update(target)
    case_ids = _case_ids_with_tag(tag.id)
    for table, key in ((case_tags, "case_id"), (question_tags, "question_id")):
        column = table.c[key]
        have_target = select(column).where(table.c.tag_id == target.id)
        moving = select(column, literal(target.id)).where(
            table.c.tag_id == tag.id, column.not_in(have_target))
        db.session.execute(insert(table).from_select([key, "tag_id"], moving))
        db.session.execute(delete(table).where(table.c.tag_id == tag.id))
    if status is None:
        status = TagStatus(tag_id=tag.id)
        db.session.add(status)
    status.merged_into_id = target.id
    status.retired_at = status.retired_at or utcnow()
    db.session.flush()
    # Tags that were merged into this one now lead to the target directly.
    db.session.execute(update(TagStatus).where(TagStatus.merged_into_id == tag.id).values(merged_into_id=target.id))
    _move_watches("tag", tag.name, target.name)
    keep_as_synonym(tag.name, target.name, user)
    db.session.expire_all()
    _note_cases(case_ids, "タグの統合", user)
    _requeue(case_ids)
    audit.record(user, "tag.merge", target, f"「{tag.name}」→「{target.name}」（事例 {len(case_ids)}件）")
    return target


def retire_tag(user: User, tag: Tag, retired: bool = True) -> Tag:
    _require(user)
    lock_for_update(tag)
    status = _tag_status(tag.id)
    if status is not None and status.merged_into_id is not None:
        raise Conflict(f"タグ「{tag.name}」は統合済みです。")
    if status is None:
        status = TagStatus(tag_id=tag.id)
        db.session.add(status)
    if bool(status.retired_at) == retired:
        raise Conflict(f"タグ「{tag.name}」はすでに{'使用停止' if retired else '使用中'}です。")
    status.retired_at = utcnow() if retired else None
    db.session.flush()
    audit.record(user, "tag.retire" if retired else "tag.unretire", tag, tag.name)
    return tag


@dataclass
class TagRow:
    tag: Tag
    cases: int
    questions: int
    retired: bool
    merged_into: Tag | None


def tag_rows(user: User, only_unused: bool = False) -> list[TagRow]:
    """Every tag with how many cases and questions carry it (the help desk and administrators
    read every case and question, so nothing is counted that they may not see)."""
    if not (policy.can_curate_taxonomy(user) or policy.can_list_unused_taxonomy(user)):
        raise Forbidden("タグの一覧はヘルプデスクと管理者だけが見られます。")
    case_counts = dict(db.session.execute(select(case_tags.c.tag_id, func.count()).group_by(case_tags.c.tag_id)).all())
    question_counts = dict(db.session.execute(
        select(question_tags.c.tag_id, func.count()).group_by(question_tags.c.tag_id)).all())
    statuses = {s.tag_id: s for s in db.session.scalars(select(TagStatus))}
    rows = []
    for tag in db.session.scalars(select(Tag).order_by(Tag.name)):
        status = statuses.get(tag.id)
        row = TagRow(tag, case_counts.get(tag.id, 0), question_counts.get(tag.id, 0),
                     bool(status and status.retired_at), status.merged_into if status else None)
        if only_unused and (row.cases or row.questions or row.merged_into is not None):
            continue
        rows.append(row)
    return rows


# --- categories ---------------------------------------------------------------------------------------

def _settings(category: Category) -> CategorySettings:
    settings = db.session.get(CategorySettings, category.id)
    if settings is None:
        settings = CategorySettings(category_id=category.id)
        db.session.add(settings)
    return settings


def rename_category(user: User, category: Category, new_name) -> Category:
    _require(user)
    lock_for_update(category)
    name = unicodedata.normalize("NFKC", new_name).strip() if isinstance(new_name, str) else ""
    if not name or len(name) > 100:
        raise ValidationFailed({"name": "名称を100文字以内で入力してください。"})
    if name == category.name:
        raise ValidationFailed({"name": "いまと同じ名前です。"})
    if db.session.scalar(select(Category.id).where(Category.name == name, Category.id != category.id)) is not None:
        raise ValidationFailed({"name": f"分類「{name}」はすでにあります。まとめるときは「統合」を使ってください。"})
    old = category.name
    category.name = name
    db.session.flush()
    keep_as_synonym(old, name, user)
    case_ids = list(db.session.scalars(select(Case.id).where(Case.category_id == category.id)))
    _note_cases(case_ids, "分類の名前の変更", user)
    _requeue(case_ids)
    audit.record(user, "category.rename", category, f"「{old}」→「{name}」")
    return category


def merge_category(user: User, category: Category, target_value) -> Category:
    """Every case and question of ``category`` moves to the target; the old name stays a search
    synonym and its slug leads to the target."""
    _require(user)
    lock_for_update(category)
    target = db.session.scalar(select(Category).where(
        (Category.slug == target_value) | (Category.name == target_value))) if isinstance(target_value, str) else None
    if target is None:
        raise ValidationFailed({"target": "統合先の分類を選んでください。"})
    if target.id == category.id:
        raise ValidationFailed({"target": "同じ分類には統合できません。"})
    settings = _settings(category)
    if settings.merged_into_id is not None:
        raise Conflict(f"分類「{category.name}」はすでに統合されています。")
    target_settings = db.session.get(CategorySettings, target.id)
    if target_settings is not None and (target_settings.merged_into_id or target_settings.retired_at):
        raise ValidationFailed({"target": f"分類「{target.name}」は使われなくなっているため、統合先にできません。"})
    case_ids = list(db.session.scalars(select(Case.id).where(Case.category_id == category.id)))
    db.session.execute(update(Case).where(Case.category_id == category.id).values(category_id=target.id))
    db.session.execute(update(Question).where(Question.category_id == category.id).values(category_id=target.id))
    settings.merged_into_id = target.id
    settings.retired_at = settings.retired_at or utcnow()
    db.session.flush()
    db.session.execute(update(CategorySettings).where(CategorySettings.merged_into_id == category.id)
                       .values(merged_into_id=target.id))
    _move_watches("category", category.slug, target.slug)
    keep_as_synonym(category.name, target.name, user)
    db.session.expire_all()
    _note_cases(case_ids, "分類の統合", user)
    _requeue(case_ids)
    audit.record(user, "category.merge", target, f"「{category.name}」→「{target.name}」（事例 {len(case_ids)}件）")
    return target


def retire_category(user: User, category: Category, retired: bool = True) -> Category:
    _require(user)
    lock_for_update(category)
    settings = _settings(category)
    if settings.merged_into_id is not None:
        raise Conflict(f"分類「{category.name}」は統合済みです。")
    if bool(settings.retired_at) == retired:
        raise Conflict(f"分類「{category.name}」はすでに{'使用停止' if retired else '使用中'}です。")
    if retired and len(active_categories()) <= 1:
        raise Conflict("最後の分類は使用停止にできません。")
    settings.retired_at = utcnow() if retired else None
    db.session.flush()
    audit.record(user, "category.retire" if retired else "category.unretire", category, category.name)
    return category


@dataclass
class CategoryRow:
    category: Category
    cases: int
    questions: int
    retired: bool
    merged_into: Category | None
    review_months: int
    review_months_set: bool


def category_rows(user: User, only_unused: bool = False) -> list[CategoryRow]:
    from app.services.review import review_months

    if not (policy.can_curate_taxonomy(user) or policy.can_list_unused_taxonomy(user)):
        raise Forbidden("分類の一覧はヘルプデスクと管理者だけが見られます。")
    case_counts = dict(db.session.execute(select(Case.category_id, func.count()).group_by(Case.category_id)).all())
    question_counts = dict(db.session.execute(
        select(Question.category_id, func.count()).group_by(Question.category_id)).all())
    rows = []
    for category in db.session.scalars(select(Category).order_by(Category.sort_order, Category.id)):
        settings = db.session.get(CategorySettings, category.id)
        row = CategoryRow(category, case_counts.get(category.id, 0), question_counts.get(category.id, 0),
                          bool(settings and settings.retired_at), settings.merged_into if settings else None,
                          review_months(category), bool(settings and settings.review_months))
        if only_unused and (row.cases or row.questions or row.merged_into is not None):
            continue
        rows.append(row)
    return rows

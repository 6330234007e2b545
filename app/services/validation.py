"""Input rules shared by the forms and the API, so both say the same thing in the same words."""
from __future__ import annotations

import re
import unicodedata

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Category, Tag, Visibility

MAX_DB_INT = 2**31 - 1   # ids are INTEGER columns: 32 bits on PostgreSQL


def parse_int(raw, *, minimum: int = 1, maximum: int = MAX_DB_INT) -> int | None:
    """An integer written in ASCII digits (or given as a JSON number) within bounds, else None.
    (``"²".isdigit()`` is true but ``int("²")`` fails; ``"１"`` is refused as well.)"""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit() and len(raw.strip()) <= 20:
        value = int(raw.strip())
    else:
        return None
    return value if minimum <= value <= maximum else None


TAG_SEPARATORS = re.compile(r"[,、，]")
MAX_TAGS = 10
MAX_TAG_CHARS = 30


def normalise_tag(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip()


# Line breaks, tabs and other control characters in a one-line title (possible through the API or
# a paste): each run becomes one space. A title goes into mail subjects, CSV cells and page titles.
_TITLE_BREAKS = re.compile(r"\s*[\x00-\x1f\x7f\x85\u2028\u2029]+\s*")


def clean_title(value, errors: dict[str, str], field: str = "title", required: bool = True) -> str:
    text = _TITLE_BREAKS.sub(" ", value).strip() if isinstance(value, str) else ""
    if value is not None and not isinstance(value, str):
        errors[field] = "件名は文字列で入力してください。"
    elif required and not text:
        errors[field] = "件名を入力してください。"
    elif len(text) > current_app.config["MAX_TITLE_CHARS"]:
        errors[field] = f"件名は{current_app.config['MAX_TITLE_CHARS']}文字以内で入力してください。"
    return text


def clean_body(value, errors: dict[str, str], field: str = "body", label: str = "本文",
               required: bool = True) -> str:
    if value is not None and not isinstance(value, str):
        errors[field] = f"{label}は文字列で入力してください。"
        return ""
    text = (value or "").replace("\r\n", "\n")
    limit = current_app.config["MAX_BODY_CHARS"]
    if required and not text.strip():
        errors[field] = f"{label}を入力してください。"
    elif len(text) > limit:
        errors[field] = f"{label}は{limit:,}文字以内で入力してください（現在 {len(text):,} 文字）。"
    return text


def find_category(value) -> Category | None:
    """A category by its slug (``network``) or its Japanese name (``ネットワーク``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    key = unicodedata.normalize("NFKC", value).strip()
    return db.session.scalar(
        select(Category).where((Category.slug == key.lower()) | (Category.name == key))
    )


def clean_category(value, errors: dict[str, str], field: str = "category") -> Category | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        errors[field] = "分類を選択してください。"
        return None
    category = find_category(value)
    if category is None:
        errors[field] = f"分類「{value}」はありません。"
    return category


def parse_tag_names(value, errors: dict[str, str], field: str = "tags") -> list[str]:
    """Tags as a list of strings or one string separated by ``,`` or ``、``."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        raw = TAG_SEPARATORS.split(value)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        raw = value
    else:
        errors[field] = "タグは文字列のリストで指定してください。"
        return []
    names: list[str] = []
    for item in raw:
        name = normalise_tag(item)
        if name and name not in names:
            names.append(name)
    if any(len(name) > MAX_TAG_CHARS for name in names):
        errors[field] = f"タグは1つ{MAX_TAG_CHARS}文字以内にしてください。"
    elif len(names) > MAX_TAGS:
        errors[field] = f"タグは{MAX_TAGS}個までです。"
    return names


def tags_for(names: list[str], known: dict[str, Tag] | None = None) -> list[Tag]:
    """The Tag rows for these names, created when missing. ``known`` (name → Tag, every tag of the
    database, kept up to date here) spares a bulk import one statement a row.

    A missing tag is inserted with ON CONFLICT DO NOTHING and then read: two people asking at
    once with the same new tag both get the one row (a plain insert failed the second with a
    unique-constraint error: HTTP 500 under load)."""
    if not names:
        return []
    if known is not None:
        existing = known
    else:
        existing = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(names)))}
    missing = [name for name in dict.fromkeys(names) if name not in existing]
    if missing:
        dialect = db.session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as insert_or_skip
        else:
            from sqlalchemy.dialects.sqlite import insert as insert_or_skip
        db.session.execute(insert_or_skip(Tag).values([{"name": name} for name in missing])
                           .on_conflict_do_nothing(index_elements=["name"]))
        existing.update({t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(missing)))})
    return [existing[name] for name in names]


def clean_consent(value, errors: dict[str, str], field: str = "sharing_consent", required: bool = False,
                  label: str = "共有の同意") -> str:
    """A value of the sharing scale (consent or visibility); empty means private unless required."""
    if value in (None, "") and not required:
        return Visibility.PRIVATE.value
    if not isinstance(value, str) or value not in {v.value for v in Visibility}:
        errors[field] = f"{label}は private・neighbours・all のいずれかです。"
        return Visibility.PRIVATE.value
    return value

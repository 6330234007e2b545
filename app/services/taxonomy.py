"""Categories (the administrator adds to the three shipped ones)."""
from __future__ import annotations

import re
import unicodedata

from sqlalchemy import func, select

from app.extensions import db
from app.models import Category
from app.services import audit
from app.services.errors import ValidationFailed

SLUG = re.compile(r"^[a-z][a-z0-9-]{1,49}$")


def add_category(slug: str, name: str, actor=None) -> Category:
    slug = (slug or "").strip().lower()
    name = unicodedata.normalize("NFKC", name or "").strip()
    errors: dict[str, str] = {}
    if not SLUG.match(slug):
        errors["slug"] = "識別子は英小文字で始まる2〜50文字の英小文字・数字・ハイフンで入力してください。"
    elif db.session.scalar(select(Category.id).where(Category.slug == slug)):
        errors["slug"] = f"識別子「{slug}」はすでに使われています。"
    if not name or len(name) > 100:
        errors["name"] = "名称を100文字以内で入力してください。"
    elif db.session.scalar(select(Category.id).where(Category.name == name)):
        errors["name"] = f"分類「{name}」はすでにあります。"
    if errors:
        raise ValidationFailed(errors)
    last = db.session.scalar(select(func.max(Category.sort_order))) or 0
    category = Category(slug=slug, name=name, sort_order=last + 10)
    db.session.add(category)
    db.session.flush()
    audit.record(actor, "category.add", category, f"{name}（{slug}）")
    return category

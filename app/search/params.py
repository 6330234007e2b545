"""Search parameters from a query string (pages and API), with a Japanese message per bad one.
A bad parameter is reported and left out; the rest of the search still runs on the page."""
from __future__ import annotations

from datetime import date

from app.search.service import SORTS, SearchParams
from app.services.accounts import find_municipality
from app.services.validation import find_category

LABELS = {"municipality": "市町", "category": "分類", "from": "公開日（から）", "to": "公開日（まで）",
          "sort": "並び順", "page": "ページ", "per_page": "1ページの件数"}


def search_params_from(args, per_page_default: int = 20, per_page_max: int = 100) -> tuple[SearchParams, dict[str, str]]:
    errors: dict[str, str] = {}
    params = SearchParams(q=(args.get("q") or "").strip()[:500])
    category = (args.get("category") or "").strip()
    if category:
        found_category = find_category(category)
        if found_category is None:
            errors["category"] = f"分類「{category}」はありません。"
        else:
            params.category = found_category.slug
    params.tag = (args.get("tag") or "").strip()[:50]
    municipality = (args.get("municipality") or "").strip()
    if municipality == "pref":
        params.municipality = "pref"
    elif municipality:
        found = find_municipality(municipality)
        if found is None:
            errors["municipality"] = f"市町「{municipality}」が見つかりません。"
        else:
            params.municipality = str(found.id)
    for name in ("from", "to"):
        raw = (args.get(name) or "").strip()
        if raw:
            try:
                value = date.fromisoformat(raw)
            except ValueError:
                errors[name] = f"{LABELS[name]}は 2024-04-01 の形式で指定してください。"
            else:
                setattr(params, "date_from" if name == "from" else "date_to", value)
    if params.date_from and params.date_to and params.date_from > params.date_to:
        errors["to"] = "公開日（まで）は公開日（から）より後の日付にしてください。"
        params.date_to = None
    sort = args.get("sort") or "relevance"
    if sort not in SORTS:
        errors["sort"] = "並び順は relevance（関連度順）または newest（新しい順）です。"
        sort = "relevance"
    params.sort = sort
    for name, default, maximum in (("page", 1, 10_000), ("per_page", per_page_default, per_page_max)):
        raw = args.get(name)
        if raw in (None, ""):
            setattr(params, name, default)
        elif not str(raw).isdigit() or not 1 <= int(raw) <= maximum:
            errors[name] = f"{LABELS[name]}は1〜{maximum:,}の整数で指定してください。"
            setattr(params, name, default)
        else:
            setattr(params, name, int(raw))
    return params, errors

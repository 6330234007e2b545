"""The one input layer for what arrives in a request: route ids, paging numbers, text, and the
search parameters that pages and the API share. Out-of-range ids are "not found"; a bad
parameter is a 400 with a Japanese message (JSON for the API); text never carries NUL characters
(PostgreSQL refuses them) and JSON strings never carry lone surrogates.
"""
from __future__ import annotations

from datetime import date

from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

from app.search.service import KINDS, SORTS, SearchParams
from app.services.accounts import find_municipality
from app.services.validation import MAX_DB_INT, find_category, parse_int  # noqa: F401  (parse_int: for views)

MAX_PAGE = 10_000


class BadParameter(BadRequest):
    """A query or form parameter out of range or malformed: 400 with this Japanese message."""

    def __init__(self, name: str, message: str):
        super().__init__(description=message)
        self.parameter = name
        self.message = message


def int_param(args, name: str, label: str, default: int | None, *, minimum: int = 1,
              maximum: int = MAX_PAGE) -> int | None:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    value = parse_int(raw, minimum=minimum, maximum=maximum)
    if value is None:
        raise BadParameter(name, f"{label}は{minimum:,}〜{maximum:,}の整数で指定してください。")
    return value


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` in every route: at most 9 digits, so an id that no id column can hold (they are
    32-bit INTEGER columns on PostgreSQL) does not match the route at all and is simply not found
    (404). (A range check that fails after the match would make Werkzeug answer 405 for routes
    with other methods.)"""

    regex = r"\d{1,9}"


def clean_text(value):
    """Text as typed, minus NUL characters (no database keeps them; nobody types them)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, list):
        return [clean_text(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): clean_text(item) for key, item in value.items()}
    return value


class TextParams(ImmutableMultiDict):
    """Query and form parameters of every request, cleaned by ``clean_text``."""

    def __init__(self, mapping=None):
        if isinstance(mapping, (list, tuple)) or (mapping is not None and not hasattr(mapping, "keys")):
            mapping = [(clean_text(key), clean_text(value)) for key, value in mapping]
        super().__init__(mapping)


def has_lone_surrogates(value) -> bool:
    """JSON can spell a lone surrogate (backslash-u-d800); such a string cannot be stored or shown."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list):
        return any(has_lone_surrogates(item) for item in value)
    if isinstance(value, dict):
        return any(has_lone_surrogates(k) or has_lone_surrogates(v) for k, v in value.items())
    return False


# --- search parameters (the search page and GET /api/v1/cases) -------------------------------------

LABELS = {"municipality": "市町", "category": "分類", "kind": "種類", "from": "公開日（から）", "to": "公開日（まで）",
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
    kind = (args.get("kind") or "").strip()
    if kind in KINDS:
        params.kind = kind
    elif kind:
        errors["kind"] = "種類は case（事例）または article（記事）で指定してください。"
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
    for name, default, maximum in (("page", 1, MAX_PAGE), ("per_page", per_page_default, per_page_max)):
        try:
            setattr(params, name, int_param(args, name, LABELS[name], default, maximum=maximum))
        except BadParameter as error:
            errors[name] = error.message
            setattr(params, name, default)
    return params, errors

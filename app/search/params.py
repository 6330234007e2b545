"""Search parameters from a query string (pages and API), with a Japanese message per bad one."""
from __future__ import annotations

from datetime import date

from app.extensions import db
from app.models import Municipality
from app.search.service import SORTS, SearchParams
from app.services.accounts import find_municipality


def search_params_from(args, per_page_default: int = 20, per_page_max: int = 100) -> tuple[SearchParams, dict[str, str]]:
    """SearchParams from query-string arguments, with a Japanese message per bad argument."""
    errors: dict[str, str] = {}
    params = SearchParams(q=(args.get("q") or "").strip()[:500])
    params.category = (args.get("category") or "").strip()
    params.tag = (args.get("tag") or "").strip()[:50]
    municipality = (args.get("municipality") or "").strip()
    if municipality == "pref":
        params.municipality = "pref"
    elif municipality:
        found = find_municipality(municipality)
        if found is None and municipality.isdigit() and len(municipality) < 5:
            found = db.session.get(Municipality, int(municipality))
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
                errors[name] = f"{name} は 2024-04-01 の形式で指定してください。"
            else:
                setattr(params, "date_from" if name == "from" else "date_to", value)
    sort = args.get("sort") or "relevance"
    if sort not in SORTS:
        errors["sort"] = "sort は relevance または newest です。"
    params.sort = sort
    for name, default, maximum in (("page", 1, 10_000), ("per_page", per_page_default, per_page_max)):
        raw = args.get(name)
        if raw in (None, ""):
            setattr(params, name, default)
        elif not str(raw).isdigit() or not 1 <= int(raw) <= maximum:
            errors[name] = f"{name} は1〜{maximum}の整数で指定してください。"
        else:
            setattr(params, name, int(raw))
    return params, errors

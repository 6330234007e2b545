"""search_cases(): the one way pages and the API search the case library.

The permission filter comes from ``policy.case_scope`` and is part of the search itself (a set
of allowed documents the matcher must stay inside), so totals, pages, facets and snippets only
ever see cases the user may read. Per-process caches hold only document sets keyed by the exact
filter that produced them, never results.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from whoosh import query as Q
from whoosh.idsets import BitSet
from whoosh.sorting import FieldFacet

from app import policy
from app.extensions import db
from app.models import Case, Category, Municipality, SearchMiss, SearchSynonym, User
from app.search import querying
from app.search.analysis import normalise, tag_key
from app.search.snippets import make_snippet
from app.search.sync import PREFECTURE, apply_pending, current_index, pending_exists, plain_text

log = logging.getLogger(__name__)

COUNT_CAP = 1000
TIE_MARGIN = 20
JST = ZoneInfo("Asia/Tokyo")
SORTS = ("relevance", "newest")


@dataclass
class SearchParams:
    q: str = ""
    category: str = ""
    tag: str = ""
    municipality: str = ""      # a municipality id, or "pref" for the prefecture's own cases
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "relevance"
    page: int = 1
    per_page: int = 20


@dataclass
class SearchHit:
    case: Case
    score: float
    snippet: Markup


@dataclass
class SearchResult:
    hits: list[SearchHit]
    total: int
    total_is_lower_bound: bool
    facets: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    page: int = 1
    per_page: int = 20
    words: list[str] = field(default_factory=list)

    @property
    def total_label(self) -> str:
        return f"{COUNT_CAP:,}件以上" if self.total_is_lower_bound else f"{self.total:,}件"

    @property
    def pages(self) -> int:
        shown = min(self.total, COUNT_CAP) if self.total_is_lower_bound else self.total
        return max(1, -(-shown // self.per_page))


# --- synonyms ---------------------------------------------------------------------------------

_synonym_cache: dict[str, object] = {"key": None, "map": {}}
_synonym_lock = threading.Lock()


def synonym_map() -> dict[str, list[str]]:
    """normalised member -> the other members of its groups (cached until the table changes)."""
    rows = db.session.execute(select(SearchSynonym.id, SearchSynonym.terms).order_by(SearchSynonym.id)).all()
    key = tuple(rows)
    with _synonym_lock:
        if _synonym_cache["key"] == key:
            return _synonym_cache["map"]  # type: ignore[return-value]
    mapping: dict[str, list[str]] = {}
    for _id, terms in rows:
        members = [t.strip() for t in terms.split("=") if t.strip()]
        for member in members:
            others = mapping.setdefault(normalise(member), [])
            others += [m for m in members if m != member and m not in others]
    with _synonym_lock:
        _synonym_cache.update(key=key, map=mapping)
    return mapping


# --- the permission filter --------------------------------------------------------------------

def scope_query(scope: policy.CaseScope) -> Q.Query | None:
    """The index-side form of a CaseScope (the index holds published cases only)."""
    if scope.everything:
        return None
    if scope.nothing:
        return Q.NullQuery
    allowed: list[Q.Query] = []
    if scope.own is not None:
        allowed.append(Q.Term("municipality", str(scope.own)))
    if scope.shared_with_all:
        allowed.append(Q.Term("visibility", "all"))
    if scope.neighbour_owners:
        allowed.append(Q.And([
            Q.Term("visibility", "neighbours"),
            Q.Or([Q.Term("municipality", str(m)) for m in sorted(scope.neighbour_owners)]),
        ]))
    return Q.Or(allowed) if allowed else Q.NullQuery


_scope_sets: dict[tuple, BitSet] = {}
_scope_lock = threading.Lock()


def _doc_set(searcher, q: Q.Query) -> BitSet:
    return BitSet(searcher.docs_for_query(q), size=searcher.doc_count_all())


def _scope_docs(searcher, scope: policy.CaseScope, scope_q: Q.Query) -> BitSet:
    """Document numbers a scope allows, cached per index version and exact scope."""
    key = (id(searcher.reader()), searcher.reader().generation(), scope)
    with _scope_lock:
        cached = _scope_sets.get(key)
    if cached is not None:
        return cached
    docs = _doc_set(searcher, scope_q)
    with _scope_lock:
        if len(_scope_sets) > 256:
            _scope_sets.clear()
        _scope_sets[key] = docs
    return docs


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time.min, JST).timestamp())


def _filters(params: SearchParams) -> list[Q.Query]:
    filters: list[Q.Query] = []
    if params.category:
        filters.append(Q.Term("category", params.category))
    if params.tag:
        filters.append(Q.Term("tag", tag_key(params.tag)))
    if params.municipality:
        filters.append(Q.Term("municipality", str(params.municipality)))
    if params.date_from or params.date_to:
        start = _day_start(params.date_from) if params.date_from else None
        end = _day_start(params.date_to) + 86399 if params.date_to else None
        filters.append(Q.NumericRange("published", start, end))
    return filters


# --- searching --------------------------------------------------------------------------------

def search_cases(user: User | None, params: SearchParams, *, log_misses: bool = True) -> SearchResult:
    scope = policy.case_scope(user)
    page, per_page = max(1, params.page), max(1, params.per_page)
    empty = SearchResult([], 0, False, {}, page, per_page)
    if scope.nothing:
        return empty
    if pending_exists(older_than_seconds=2):
        try:
            apply_pending()
        except Exception:
            log.exception("retrying queued index work failed")
    searcher = current_index().searcher()
    if searcher.doc_count_all() == 0:
        if log_misses and params.q.strip():
            _log_miss(params.q)
        return empty
    parsed = querying.parse(params.q, synonym_map())
    if params.q.strip() and parsed.empty:
        return empty  # only filler words (「について」): nothing to look for
    if parsed.empty:
        built = querying.BuiltQuery(Q.Every(), None)
    else:
        built = querying.build(parsed)
    scored, required = built.scored, built.required

    scope_q = scope_query(scope)
    extra = _filters(params) + ([required] if required is not None else [])
    if scope_q is None and not extra:
        allowed = None
    elif not extra:
        allowed = _scope_docs(searcher, scope, scope_q)
    else:
        parts = ([scope_q] if scope_q is not None else []) + extra
        allowed = _doc_set(searcher, Q.And(parts) if len(parts) > 1 else parts[0])
    if built.counted:
        enough = _docs_matching_enough(searcher, built.counted, built.need)
        allowed = enough if allowed is None else allowed.intersection(enough)
    if allowed is not None and not allowed:
        # Nothing is allowed. (Whoosh reads an empty filter as "no filter": never hand it one.)
        if log_misses and params.q.strip():
            _log_miss(params.q)
        return empty

    offset = (page - 1) * per_page
    newest = params.sort == "newest" or parsed.empty
    ids, scores = _top_documents(searcher, scored, allowed, offset + per_page, newest)
    total, capped, facets = _count_and_facets(searcher, scored, allowed)
    page_ids = ids[offset: offset + per_page]
    hits = _hits(user, page_ids, scores, parsed.needles)
    result = SearchResult(hits, total, capped, _label_facets(facets), page, per_page,
                          [w.text for w in parsed.words])
    if log_misses and total == 0 and params.q.strip():
        _log_miss(params.q)
    return result


def _docs_matching_enough(searcher, clauses: list[Q.Query], need: int) -> BitSet:
    """Documents matching at least ``need`` of the clauses (minimum match for long sentences)."""
    counts: Counter = Counter()
    for clause in clauses:
        counts.update(set(searcher.docs_for_query(clause)))
    return BitSet((d for d, n in counts.items() if n >= need), size=searcher.doc_count_all())


def _top_documents(searcher, scored, allowed, wanted: int, newest: bool):
    published = searcher.reader().column_reader("published")
    if newest:
        facet = [FieldFacet("published", reverse=True)]
        results = searcher.search(scored, limit=wanted, filter=allowed, sortedby=facet)
        docnums = [hit.docnum for hit in results]
        docnums.sort(key=lambda d: (-published[d], int(searcher.stored_fields(d)["id"])))
        scores = {int(searcher.stored_fields(d)["id"]): 0.0 for d in docnums}
        return [int(searcher.stored_fields(d)["id"]) for d in docnums], scores
    results = searcher.search(scored, limit=wanted + TIE_MARGIN, filter=allowed)
    ranked = []
    for hit in results:
        case_id = int(hit["id"])
        ranked.append((-round(hit.score, 6), -published[hit.docnum], case_id))
    ranked.sort()
    ids = [case_id for _s, _p, case_id in ranked]
    return ids, {case_id: -s for s, _p, case_id in ranked}


def _count_and_facets(searcher, scored, allowed):
    """Exact count up to COUNT_CAP, and category / municipality facets over the same hits."""
    reader = searcher.reader()
    categories = reader.column_reader("category")
    municipalities = reader.column_reader("municipality")
    matcher = scored.matcher(searcher, searcher.boolean_context())
    count = 0
    facet_category: Counter = Counter()
    facet_municipality: Counter = Counter()
    capped = False
    while matcher.is_active():
        docnum = matcher.id()
        if allowed is None or docnum in allowed:
            if count >= COUNT_CAP:
                capped = True
                break
            count += 1
            facet_category[categories[docnum]] += 1
            facet_municipality[municipalities[docnum]] += 1
        matcher.next()
    return count, capped, {"category": facet_category, "municipality": facet_municipality}


def _label_facets(facets) -> dict[str, list[tuple[str, str, int]]]:
    category_names = dict(db.session.execute(select(Category.slug, Category.name)).all())
    wanted = [int(k) for k in facets["municipality"] if k and k != PREFECTURE]
    municipality_names = dict(db.session.execute(
        select(Municipality.id, Municipality.name).where(Municipality.id.in_(wanted))
    ).all()) if wanted else {}
    labelled = {
        "category": [(k, category_names.get(k, k), n) for k, n in facets["category"].most_common()],
        "municipality": [
            (k, "県ヘルプデスク" if k == PREFECTURE else municipality_names.get(int(k), k), n)
            for k, n in facets["municipality"].most_common() if k
        ],
    }
    return labelled


def _hits(user, ids: list[int], scores: dict[int, float], needles: list[str]) -> list[SearchHit]:
    if not ids:
        return []
    rows = db.session.scalars(
        select(Case)
        .where(Case.id.in_(ids), policy.visible_cases_clause(user))
        .options(selectinload(Case.tags), selectinload(Case.category), selectinload(Case.municipality))
    )
    by_id = {case.id: case for case in rows}
    hits = []
    for case_id in ids:
        case = by_id.get(case_id)
        if case is None:  # the index is behind the database for a moment: the database wins
            continue
        text = "\n".join(plain_text(getattr(case, f)) for f in ("issue", "cause", "resolution", "environment"))
        hits.append(SearchHit(case, scores.get(case_id, 0.0), make_snippet(text, needles)))
    return hits


def _log_miss(text: str) -> None:
    try:
        db.session.add(SearchMiss(query=text.strip()[:500]))
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("could not log a search without results")


def similar_cases(user: User | None, text: str, limit: int = 5) -> list[SearchHit]:
    """Published cases most like a question being written: its rarest words, ranked, no
    minimum beyond two shared words (one for a short title)."""
    scope = policy.case_scope(user)
    if scope.nothing or not text.strip():
        return []
    searcher = current_index().searcher()
    parsed = querying.parse(text, synonym_map())
    if not parsed.words or searcher.doc_count_all() == 0:
        return []
    def rarity(word):
        return sum(searcher.doc_frequency(f, word.text) for f in ("title", "body", "resolution")) or 10**9
    chosen = sorted(parsed.words, key=rarity)[:10]
    parsed = querying.ParsedQuery(chosen, [], parsed.needles)
    clauses = [querying.word_clause(w) for w in chosen]
    scored = clauses[0] if len(clauses) == 1 else Q.Or(clauses)
    scope_q = scope_query(scope)
    allowed = None if scope_q is None else _scope_docs(searcher, scope, scope_q)
    if len(clauses) >= 3:
        enough = _docs_matching_enough(searcher, clauses, 2)
        allowed = enough if allowed is None else allowed.intersection(enough)
    if allowed is not None and not allowed:
        return []
    ids, scores = _top_documents(searcher, scored, allowed, limit, newest=False)
    return _hits(user, ids[:limit], scores, parsed.needles)

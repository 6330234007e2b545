"""search_cases(): the one way pages and the API search the case library.

The permission filter comes from ``policy.case_scope`` and is part of the search itself (a set
of allowed documents the matcher must stay inside), so totals, pages, facets and snippets only
ever see cases the user may read. Per-process caches hold only document sets keyed by the exact
filter that produced them, never results.
"""
from __future__ import annotations

import heapq
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

def scope_docs(cache, scope: policy.CaseScope) -> frozenset[int] | None:
    """The documents a CaseScope allows (None: all). The index holds published cases only."""
    if scope.everything:
        return None
    if scope.nothing:
        return frozenset()

    def compute():
        allowed: set[int] = set()
        if scope.own is not None:
            allowed |= cache.term("municipality", str(scope.own))
        if scope.shared_with_all:
            allowed |= cache.term("visibility", "all")
        if scope.neighbour_owners:
            owners = set().union(*(cache.term("municipality", str(m)) for m in scope.neighbour_owners))
            allowed |= cache.term("visibility", "neighbours") & owners
        return allowed

    return cache.memo(("scope", scope), compute)


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time.min, JST).timestamp())


def _filter_sets(searcher, cache, params: SearchParams) -> list[frozenset[int]]:
    sets = []
    if params.category:
        sets.append(cache.term("category", params.category))
    if params.tag:
        sets.append(cache.term("tag", tag_key(params.tag)))
    if params.municipality:
        sets.append(cache.term("municipality", str(params.municipality)))
    if params.date_from or params.date_to:
        start = _day_start(params.date_from) if params.date_from else None
        end = _day_start(params.date_to) + 86399 if params.date_to else None
        sets.append(cache.memo(("published", start, end),
                               lambda: searcher.docs_for_query(Q.NumericRange("published", start, end))))
    return sets


# --- searching --------------------------------------------------------------------------------

def search_cases(user: User | None, params: SearchParams, *, log_misses: bool = True) -> SearchResult:
    scope = policy.case_scope(user)
    page, per_page = max(1, params.page), max(1, params.per_page)
    empty = SearchResult([], 0, False, {"category": [], "municipality": []}, page, per_page)
    if scope.nothing:
        return empty
    if pending_exists(older_than_seconds=2):
        try:
            apply_pending()
        except Exception:
            log.exception("retrying queued index work failed")
    searcher, cache = current_index().reading()
    parsed = querying.parse(params.q, synonym_map())
    has_query = bool(params.q.strip())
    if cache.reader.doc_count() == 0 or (has_query and parsed.empty):
        if log_misses and has_query:
            _log_miss(params.q)
        return empty  # an empty index, or only filler words (「について」)

    # Which documents: the words (minimum match), phrases, the permission scope and filters.
    candidates = querying.matching_docs(cache, parsed.words) if parsed.words else cache.live_docs()
    for phrase in parsed.phrases:
        for word in querying.phrase_words(phrase):
            candidates = candidates & querying.word_impacts(cache, word).keys()
    allowed = scope_docs(cache, scope)
    narrowing = ([allowed] if allowed is not None else []) + _filter_sets(searcher, cache, params)
    for docs in sorted(narrowing, key=len):
        candidates = candidates & docs
    if parsed.phrases and candidates:
        candidates = _containing_phrases(cache, candidates, parsed.phrases)

    total = len(candidates)
    facets = _facets(cache, candidates)
    offset = (page - 1) * per_page
    wanted = offset + per_page
    if not candidates:
        ids, scores = [], {}
    elif params.sort == "newest" or not parsed.words:
        ids, scores = _newest(cache, candidates, wanted), {}
    else:
        ids, scores = _ranked(cache, querying.scores_for(cache, parsed.words, candidates), wanted)
    hits = _hits(user, ids[offset:wanted], scores, parsed.needles)
    capped = total > COUNT_CAP
    result = SearchResult(hits, min(total, COUNT_CAP), capped, _label_facets(facets), page, per_page,
                          [w.text for w in parsed.words])
    if log_misses and total == 0 and has_query:
        _log_miss(params.q)
    return result


def _containing_phrases(cache, candidates: frozenset[int], phrases: list[str]) -> frozenset[int]:
    """Keep the documents whose text (from the database, the truth) contains every phrase."""
    by_case = {cache.case_id(d): d for d in candidates}
    kept: set[int] = set()
    ids = sorted(by_case)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = db.session.execute(
            select(Case.id, Case.title, Case.issue, Case.environment, Case.cause, Case.resolution)
            .where(Case.id.in_(chunk))
        )
        for row in rows:
            text = normalise(" ".join(part or "" for part in row[1:]))
            if all(p in text for p in phrases):
                kept.add(by_case[row[0]])
    return frozenset(kept)


def _facets(cache, docs: frozenset[int]) -> dict[str, Counter]:
    """Exact counts per category and municipality among the hits (after the permission filter)."""
    facets: dict[str, Counter] = {}
    for name in ("category", "municipality"):
        counter: Counter = Counter()
        if docs:
            for value in cache.values(name):
                n = len(docs & cache.term(name, value))
                if n:
                    counter[value] = n
        facets[name] = counter
    return facets


def _newest(cache, docs: frozenset[int], wanted: int) -> list[int]:
    if len(docs) <= 2000:
        published = cache.published()
        ordered = sorted(docs, key=lambda d: (-published[d], cache.case_id(d)))
    else:
        ordered = []
        for d in cache.newest_first():
            if d in docs:
                ordered.append(d)
                if len(ordered) >= wanted:
                    break
    return [cache.case_id(d) for d in ordered[:wanted]]


def _ranked(cache, scores: dict[int, float], wanted: int):
    """The best ``wanted`` documents by score; equal scores by publication date (newest first),
    then case id, so results are stable across a reindex."""
    top = heapq.nlargest(wanted + TIE_MARGIN, scores, key=lambda d: round(scores[d], 6))
    published = cache.published()
    ranked = sorted((-round(scores[d], 6), -published[d], cache.case_id(d)) for d in top)[:wanted]
    return [case_id for _s, _p, case_id in ranked], {case_id: -s for s, _p, case_id in ranked}


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
    """Published cases most like a question being written: its rarest words, ranked, sharing at
    least two of them with the question (one for a short title)."""
    scope = policy.case_scope(user)
    if scope.nothing or not text.strip():
        return []
    _searcher, cache = current_index().reading()
    parsed = querying.parse(text, synonym_map())
    if not parsed.words or cache.reader.doc_count() == 0:
        return []
    chosen = sorted(parsed.words, key=lambda w: len(querying.word_impacts(cache, w)) or 10**9)[:10]
    sets = [querying.word_impacts(cache, w).keys() for w in chosen]
    if len(sets) >= 3:
        counts = Counter(d for docs in sets for d in docs)
        candidates = frozenset(d for d, n in counts.items() if n >= 2)
    else:
        candidates = frozenset().union(*sets)
    allowed = scope_docs(cache, scope)
    if allowed is not None:
        candidates &= allowed
    if not candidates:
        return []
    ids, scores = _ranked(cache, querying.scores_for(cache, chosen, candidates), limit)
    return _hits(user, ids[:limit], scores, parsed.needles)

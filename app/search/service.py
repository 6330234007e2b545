"""search_cases(): the one way pages and the API search the case library.

The permission filter comes from ``policy.case_scope`` and is part of the search itself (a mask
of allowed documents intersected with the matches before anything is counted or ranked), so
totals, pages, facets and snippets only ever see cases the user may read. The per-process caches
(ReaderCache) hold postings and masks keyed by terms, values and scopes, never results.
"""
from __future__ import annotations

import logging
import traceback
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from app import policy
from app.extensions import db
from app.models import Case, CaseState, Category, Municipality, SearchMiss, SearchSynonym, User
from app.search import querying
from app.search.analysis import normalise, tag_key
from app.search.backend import SearchBackendError, get_backend
from app.search.snippets import make_snippet
from app.search.suggest import Suggestion, suggest
from app.models.case import CaseKind
from app.search.sync import (ANONYMOUS, PREFECTURE, IndexUnavailable, apply_pending, pending_exists, plain_text,
                             ready_index)

log = logging.getLogger(__name__)

COUNT_CAP = 1000
SIMILAR_RELATIVE_SCORE = 0.4
TIE_MARGIN = 20
JST = ZoneInfo("Asia/Tokyo")
SORTS = ("relevance", "newest")
KINDS = tuple(k.value for k in CaseKind)


@dataclass
class SearchParams:
    q: str = ""
    category: str = ""
    tag: str = ""
    municipality: str = ""      # a municipality id, or "pref" for the prefecture's own cases
    kind: str = ""              # "case" or "article" (お知らせ・手順書・注意喚起); "" for both
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "relevance"
    page: int = 1
    per_page: int = 20


@dataclass
class SearchHit:
    """A case found, its score, and the words to mark. The snippet is cut when it is shown (a
    side panel of related cases shows none, and cutting one normalises the whole case text)."""
    case: Case
    score: float
    needles: list[str] = field(default_factory=list, repr=False)

    @cached_property
    def snippet(self) -> Markup:
        text = "\n".join(plain_text(getattr(self.case, f)) for f in ("issue", "cause", "resolution", "environment"))
        return make_snippet(text, self.needles)


@dataclass
class SearchResult:
    hits: list[SearchHit]
    total: int
    total_is_lower_bound: bool
    facets: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    page: int = 1
    per_page: int = 20
    words: list[str] = field(default_factory=list)
    suggestion: Suggestion | None = None   # 「もしかして」: a query that finds more
    unavailable: str = ""                  # why nothing could be searched (the index is gone)

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

def scope_mask(cache, scope: policy.CaseScope) -> np.ndarray | None:
    """The documents a CaseScope allows (None: all). The index holds published cases only, and
    its ``visibility`` is already the narrower of the case's visibility and its consent."""
    if scope.everything:
        return None
    allowed = np.zeros(cache.size, dtype=bool)
    if scope.nothing:
        return allowed
    if scope.own is not None:
        allowed |= cache.mask("municipality", str(scope.own))
    if scope.shared_with_all:
        allowed |= cache.mask("visibility", "all")
    if scope.neighbour_owners:
        owners = np.zeros(cache.size, dtype=bool)
        for owner in scope.neighbour_owners:
            owners |= cache.mask("municipality", str(owner))
        allowed |= (cache.mask("visibility", "neighbours") | cache.mask("visibility", "all")) & owners
    return allowed


def reader_view(cache, scope: policy.CaseScope):
    """The index as this scope's reader sees it: its documents and statistics over them only."""
    return cache.scoped(("scope", scope), lambda: scope_mask(cache, scope))


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time.min, JST).timestamp())


def articles_mask(cache) -> np.ndarray:
    """The indexed documents that are articles. The kind is read from the database at query time
    (published articles only: the index holds nothing else), so the index needs no field for it."""
    ids = db.session.scalars(select(Case.id).where(Case.kind == CaseKind.ARTICLE.value,
                                                   Case.state == CaseState.PUBLISHED.value)).all()
    if not ids:
        return np.zeros(cache.size, dtype=bool)
    return np.isin(cache.case_ids(), np.asarray(ids))


def _kind_facet(articles: np.ndarray, candidates: np.ndarray) -> Counter:
    article_count = int(np.count_nonzero(candidates & articles))
    case_count = int(np.count_nonzero(candidates)) - article_count
    return Counter({k: n for k, n in ((CaseKind.CASE.value, case_count),
                                      (CaseKind.ARTICLE.value, article_count)) if n})


def _filter_masks(cache, params: SearchParams, owner_field: str, articles: np.ndarray | None = None,
                  ) -> dict[str, np.ndarray]:
    """The user's filters as masks, by facet name (so a facet can be counted without its own).
    The municipality filter uses ``owner_field``: an anonymous case never answers to its
    municipality's name for readers who may not know it."""
    masks: dict[str, np.ndarray] = {}
    if params.category:
        masks["category"] = cache.mask("category", params.category)
    if params.tag:
        masks["tag"] = cache.mask("tag", tag_key(params.tag))
    if params.municipality:
        masks["municipality"] = cache.mask(owner_field, str(params.municipality))
    if params.kind and articles is not None:
        masks["kind"] = articles if params.kind == CaseKind.ARTICLE.value else ~articles
    if params.date_from or params.date_to:
        published = cache.published()
        mask = np.ones(cache.size, dtype=bool)
        if params.date_from:
            mask &= published >= _day_start(params.date_from)
        if params.date_to:
            mask &= published < _day_start(params.date_to) + 86400
        masks["period"] = mask
    return masks


# --- searching --------------------------------------------------------------------------------

SEARCH_FAILED_MESSAGE = ("検索索引を読めないため、いまは検索できません。索引が壊れている可能性があります。"
                         "管理者に連絡してください（flask --app app search reindex で作り直せます）。")


def search_cases(user: User | None, params: SearchParams, *, log_misses: bool = True) -> SearchResult:
    """Search with the configured backend (``SEARCH_BACKEND``): the same result either way."""
    try:
        backend = get_backend()
    except SearchBackendError as error:
        log.error("search refused: %s", error)
        page, per_page = max(1, params.page), max(1, params.per_page)
        return SearchResult([], 0, False, {"category": [], "municipality": [], "kind": []}, page, per_page,
                            unavailable=f"検索の設定に誤りがあるため、いまは検索できません（{error}）。")
    try:
        return backend.search(user, params, log_misses=log_misses)
    except Exception:
        # A damaged index (a truncated segment, a disk error) or a database that went away: the
        # page says so instead of failing, and the log has the stack trace (as text: a record that
        # kept the traceback would keep the damaged index's open files alive).
        log.error("search failed\n%s", traceback.format_exc())
        db.session.rollback()
        page, per_page = max(1, params.page), max(1, params.per_page)
        return SearchResult([], 0, False, {"category": [], "municipality": [], "kind": []}, page, per_page,
                            unavailable=SEARCH_FAILED_MESSAGE)


def whoosh_search_cases(user: User | None, params: SearchParams, *, log_misses: bool = True) -> SearchResult:
    scope = policy.case_scope(user)
    page, per_page = max(1, params.page), max(1, params.per_page)
    empty = SearchResult([], 0, False, {"category": [], "municipality": [], "kind": []}, page, per_page)
    if scope.nothing:
        return empty
    try:
        index = ready_index()
    except IndexUnavailable as error:
        log.warning("search refused: %s", error)
        return replace(empty, unavailable=IndexUnavailable.message)
    if pending_exists(older_than_seconds=2, index=index):
        try:
            apply_pending(index, wait=False)   # unless another worker is applying it right now
        except Exception:
            log.exception("retrying queued index work failed")
    _searcher, cache = index.reading()
    view = reader_view(cache, scope)
    synonyms = synonym_map()
    parsed = querying.parse(params.q, synonyms)
    has_query = bool(params.q.strip())
    if view.count == 0 or (has_query and parsed.empty):
        if log_misses and parsed.words:
            _log_miss(params.q)
        return empty  # nothing this user may read is indexed, or only filler words (「について」)

    # Which documents: the permission scope, the words (minimum match), phrases and filters.
    # Every statistic (which words are known, BM25) comes from the view: the user's documents only.
    candidates = view.allowed.copy()
    if parsed.words:
        candidates &= querying.hit_mask(view, parsed.words)
    for word in parsed.phrase_words:
        candidates &= querying.word_scores(view, word).mask(view.size)
    if parsed.phrases and candidates.any():
        candidates = _containing_phrases(cache, candidates, parsed.phrases)
    owner_field = "municipality" if scope.everything else "owner"
    articles = articles_mask(cache)
    filters = _filter_masks(cache, params, owner_field, articles)
    unfiltered = candidates
    for mask in filters.values():
        candidates = candidates & mask

    total = int(np.count_nonzero(candidates))
    # Each facet is counted with every filter but its own, so the other values stay choosable.
    facets = {}
    for name in ("category", "municipality", "kind"):
        base = unfiltered
        for other, mask in filters.items():
            if other != name:
                base = base & mask
        if name == "kind":
            facets[name] = _kind_facet(articles, base)
        else:
            facets[name] = _facet(cache, owner_field if name == "municipality" else name, base)
    offset = (page - 1) * per_page
    wanted = offset + per_page
    if not total:
        ids, scores = [], {}
    elif params.sort == "newest" or not parsed.words:
        ids, scores = _newest(cache, candidates, wanted), {}
    else:
        ids, scores = _ranked(cache, querying.ranked_scores(view, parsed.words), candidates, wanted,
                              demoted=_superseded_mask(cache, scope, candidates))
    hits = _hits(user, ids[offset:wanted], scores, parsed.needles)
    capped = total > COUNT_CAP
    result = SearchResult(hits, min(total, COUNT_CAP), capped, _label_facets(facets), page, per_page,
                          [w.text for w in parsed.words])
    if parsed.words and not parsed.phrases:
        result.suggestion = suggest(view, params.q, parsed, synonyms, int(np.count_nonzero(unfiltered)))
    if log_misses and total == 0 and parsed.words and not filters:
        _log_miss(params.q)  # the words found nothing (not a filter, not only particles)
    return result


def _containing_phrases(cache, candidates: np.ndarray, phrases: list[str]) -> np.ndarray:
    """Keep the documents whose text (from the database, the truth) contains every phrase."""
    docnums = np.nonzero(candidates)[0]
    case_ids = cache.case_ids()[docnums]
    by_case = dict(zip(case_ids.tolist(), docnums.tolist()))
    kept = np.zeros(cache.size, dtype=bool)
    ids = sorted(by_case)
    for start in range(0, len(ids), 500):
        rows = db.session.execute(
            select(Case.id, Case.title, Case.issue, Case.environment, Case.cause, Case.resolution)
            .where(Case.id.in_(ids[start:start + 500]))
        )
        for row in rows:
            text = normalise(" ".join(part or "" for part in row[1:]))
            if all(p in text for p in phrases):
                kept[by_case[row[0]]] = True
    return kept


def _facet(cache, name: str, candidates: np.ndarray) -> Counter:
    """Exact counts per value of one field among the hits (after the permission filter)."""
    values, codes = cache.codes(name)
    counts = np.bincount(codes[candidates], minlength=len(values) + 1)
    return Counter({values[i]: int(n) for i, n in enumerate(counts[: len(values)]) if n})


def _newest(cache, candidates: np.ndarray, wanted: int) -> list[int]:
    docnums = np.nonzero(candidates)[0]
    published, case_ids = cache.published()[docnums], cache.case_ids()[docnums]
    order = np.lexsort((case_ids, -published))[:wanted]
    return case_ids[order].tolist()


def superseded_ids(scope) -> list[int]:
    """Cases replaced by a newer case that this reader may read (a newer case they may not read
    changes nothing for them, not even the order).

    Two small statements, driven from the few superseded cases (their index) to the newer cases'
    primary keys: as one join, SQLite started from every case the reader may read (58 ms a search
    at 100,000 cases)."""
    pairs = db.session.execute(
        select(Case.id, Case.superseded_by_id).where(Case.superseded_by_id.is_not(None))).all()
    if not pairs:
        return []
    newer = sorted({n for _old, n in pairs})
    readable: set[int] = set()
    for start in range(0, len(newer), 500):
        readable.update(db.session.scalars(select(Case.id).where(
            Case.id.in_(newer[start:start + 500]), Case.state == CaseState.PUBLISHED.value,
            policy.scope_clause(scope))))
    return sorted(old for old, n in pairs if n in readable)


def _superseded_mask(cache, scope, candidates: np.ndarray) -> np.ndarray | None:
    """Hits that a newer case (readable by this reader) replaces. Read from the database at query
    time, so a new supersede link needs no reindex."""
    superseded = superseded_ids(scope)
    if not superseded:
        return None
    mask = np.isin(cache.case_ids(), np.asarray(superseded)) & candidates
    return mask if mask.any() else None


def _ranked(cache, scores: np.ndarray, candidates: np.ndarray, wanted: int, demoted: np.ndarray | None = None):
    """The best ``wanted`` documents by score; equal scores by publication date (newest first),
    then case id, so results are stable across a reindex. ``demoted`` documents (superseded
    cases) come after all the others, in the same order among themselves."""
    docnums = np.nonzero(candidates)[0]
    rounded = np.round(scores[docnums].astype(np.float64), 6)
    tier = demoted[docnums].astype(np.int8) if demoted is not None else np.zeros(len(docnums), dtype=np.int8)
    take = min(len(docnums), wanted + TIE_MARGIN)
    if take < len(docnums):
        top = np.argpartition(-(rounded - tier * 1e12), take - 1)[:take]
        docnums, rounded, tier = docnums[top], rounded[top], tier[top]
    published, case_ids = cache.published()[docnums], cache.case_ids()[docnums]
    order = np.lexsort((case_ids, -published, -rounded, tier))[:wanted]
    ids = case_ids[order].tolist()
    return ids, dict(zip(ids, rounded[order].tolist()))


def _label_facets(facets) -> dict[str, list[tuple[str, str, int]]]:
    """Facet entries as (value for the filter, label, count): categories by slug, municipalities
    by their official code (``pref`` for the prefecture), ties in code order."""
    category_names = dict(db.session.execute(select(Category.slug, Category.name)).all())
    wanted = [int(k) for k in facets["municipality"] if k and k not in (PREFECTURE, ANONYMOUS)]
    municipalities = {
        m.id: m for m in db.session.scalars(select(Municipality).where(Municipality.id.in_(wanted)))
    } if wanted else {}
    entries = []
    for key, count in facets["municipality"].items():
        if key == PREFECTURE:
            entries.append(("pref", "県ヘルプデスク", count, "999998"))
        elif key == ANONYMOUS:
            entries.append(("", "市町名非公開", count, "999999"))
        elif key and int(key) in municipalities:
            m = municipalities[int(key)]
            entries.append((m.code, m.name, count, m.code))
    entries.sort(key=lambda e: (-e[2], e[3]))
    kinds = facets.get("kind") or {}
    return {
        "category": [(k, category_names.get(k, k), n) for k, n in
                     sorted(facets["category"].items(), key=lambda kv: (-kv[1], kv[0]))],
        "municipality": [(value, label, count) for value, label, count, _code in entries],
        # 事例 / 記事, always in this order
        "kind": [(k.value, k.label, kinds[k.value]) for k in CaseKind if kinds.get(k.value)],
    }


def _hits(user, ids: list[int], scores: dict[int, float], needles: list[str]) -> list[SearchHit]:
    if not ids:
        return []
    rows = db.session.scalars(
        select(Case)
        .where(Case.id.in_(ids), policy.visible_cases_clause(user))
        .options(selectinload(Case.tags), joinedload(Case.category), joinedload(Case.municipality))
    )
    by_id = {case.id: case for case in rows}
    hits = []
    for case_id in ids:
        case = by_id.get(case_id)
        if case is None:  # the index is behind the database for a moment: the database wins
            continue
        hits.append(SearchHit(case, scores.get(case_id, 0.0), needles))
    return hits


def _log_miss(text: str) -> None:
    try:
        db.session.add(SearchMiss(query=text.strip()[:500]))
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("could not log a search without results")


def similar_cases(user: User | None, text: str, limit: int = 5, exclude: int | None = None) -> list[SearchHit]:
    """Published cases most like a question being written: its rarest words, ranked, sharing at
    least two of them with the question (one for a short title)."""
    try:
        backend = get_backend()
    except SearchBackendError:
        return []   # the search page says why; a side panel stays quiet
    try:
        return backend.similar(user, text, limit, exclude)
    except Exception:
        log.exception("similar cases failed")
        db.session.rollback()
        return []


SIMILAR_MAX_WORDS = 16


def whoosh_similar_cases(user: User | None, text: str, limit: int = 5, exclude: int | None = None) -> list[SearchHit]:
    scope = policy.case_scope(user)
    if scope.nothing or not text.strip():
        return []
    try:
        _searcher, cache = ready_index().reading()
    except IndexUnavailable:
        return []   # the search page says why; a side panel stays quiet
    view = reader_view(cache, scope)
    parsed = querying.parse(text, synonym_map())
    if not parsed.words or view.count == 0:
        return []
    # The rarest words among the cases this user may read (counts over anything else would let
    # an invisible case change the panel), of the first SIMILAR_MAX_WORDS words of the text (the
    # title comes first): each word is looked up, and a long text would make the page slow.
    words = parsed.words[:SIMILAR_MAX_WORDS]
    matches = {id(w): len(querying.word_scores(view, w).ids) for w in words}
    related = querying.related_words(words, matches, view.count)
    chosen = related.chosen
    if not chosen:
        return []
    counts = np.bincount(np.concatenate([querying.word_scores(view, w).ids for w in chosen]), minlength=cache.size)
    candidates = (counts >= related.least) & view.allowed
    if not all(related.informative):   # and at least one word that is not in most cases
        has_informative = np.zeros(cache.size, dtype=bool)
        for w, informative in zip(chosen, related.informative):
            if informative:
                has_informative[querying.word_scores(view, w).ids] = True
        candidates &= has_informative
    if exclude is not None:
        candidates &= cache.case_ids() != exclude  # a case page's own case is not related to itself
    if not candidates.any():
        return []
    ids, scores = _ranked(cache, querying.ranked_scores(view, chosen), candidates, limit)
    if ids:  # only cases close to the best one: a weak match is noise while someone types
        best = scores[ids[0]]
        ids = [i for i in ids if scores[i] >= SIMILAR_RELATIVE_SCORE * best]
    return _hits(user, ids[:limit], scores, parsed.needles)


# --- the PostgreSQL backend (app/search/pg_backend.py): the same result, computed by SQL ----------

def postgres_search_cases(user: User | None, params: SearchParams, *, log_misses: bool = True) -> SearchResult:
    """Hits, totals and facets from statements that each carry the policy's clause for this reader
    (``policy.scope_clause``, the clause of ``visible_cases_clause``); see pg_backend."""
    from app.search import pg_backend
    from app.search.suggest import suggest

    scope = policy.case_scope(user)
    page, per_page = max(1, params.page), max(1, params.per_page)
    empty = SearchResult([], 0, False, {"category": [], "municipality": [], "kind": []}, page, per_page)
    if scope.nothing:
        return empty
    try:
        pg_backend.ready()
    except pg_backend.SearchTableMissing as error:
        log.warning("search refused: %s", error)
        return replace(empty, unavailable=pg_backend.SearchTableMissing.message)
    synonyms = synonym_map()
    parsed = querying.parse(params.q, synonyms)
    has_query = bool(params.q.strip())
    if has_query and parsed.empty:
        if log_misses and parsed.words:
            _log_miss(params.q)
        return empty
    offset = (page - 1) * per_page
    wanted = offset + per_page
    found, planner = pg_backend.search(scope, parsed, params, wanted)
    if planner.count == 0:
        if log_misses and parsed.words:
            _log_miss(params.q)
        return empty
    hits = _hits(user, found.ids[offset:wanted], found.scores, parsed.needles)
    capped = found.total > COUNT_CAP
    result = SearchResult(hits, min(found.total, COUNT_CAP), capped, _label_facets(found.facets), page, per_page,
                          [w.text for w in parsed.words])
    if parsed.words and not parsed.phrases:
        result.suggestion = suggest(pg_backend.Probe(planner), params.q, parsed, synonyms, found.unfiltered)
    if log_misses and found.total == 0 and parsed.words and not _has_filters(params):
        _log_miss(params.q)
    return result


def _has_filters(params: SearchParams) -> bool:
    return bool(params.category or params.tag or params.municipality or params.kind or params.date_from
                or params.date_to)


def postgres_similar_cases(user: User | None, text: str, limit: int = 5, exclude: int | None = None) -> list[SearchHit]:
    from app.search import pg_backend

    scope = policy.case_scope(user)
    if scope.nothing or not text.strip():
        return []
    try:
        pg_backend.ready()
    except pg_backend.SearchTableMissing:
        return []
    parsed = querying.parse(text, synonym_map())
    if not parsed.words:
        return []
    ids, scores = pg_backend.similar(scope, parsed, limit, exclude)
    if ids:
        best = scores[ids[0]]
        ids = [i for i in ids if scores[i] >= SIMILAR_RELATIVE_SCORE * best]
    return _hits(user, ids[:limit], scores, parsed.needles)

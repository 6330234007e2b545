"""「もしかして」: when a query finds nothing or very little, the nearest words that the reader's own
cases contain.

A query word that matches none of the reader's cases is compared with the katakana and Latin
words of the index (and the synonym keys) by edit distance on their normalised forms, so width,
case and long-vowel variants are already one word (ｻｰﾊﾞｰ = サーバ) and a typo such as ファイヤウオール
or fortigete finds its word. A candidate counts only if cases the reader may see contain it; the
best is the closest, then the one in the most of those cases. The suggestion is shown with the
spelling found in one of those cases; every word it puts in is found in the reader's cases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from sqlalchemy import select

from app.extensions import db
from app.models import Case
from app.search import querying
from app.search.analysis import has_bigrams, normalise_with_offsets

SUGGEST_BELOW = 3          # suggest when a query finds fewer cases than this
MIN_CHARS = 3              # shorter words have too many neighbours to guess from
CANDIDATES = 30


@dataclass
class Suggestion:
    query: str             # the query to run (the typed text with the words replaced)
    replaced: dict[str, str]


def _max_distance(word: str) -> int:
    return 1 if len(word) <= 4 else 2


def _vocabulary(cache) -> list[str]:
    """Katakana and Latin words of the index's word fields (the same for every reader; which of
    them a reader may be offered is decided from its own cases)."""
    def compute():
        terms: set[str] = set()
        for fieldname in querying.WORD_FIELDS:
            for term in cache.values(fieldname):
                if len(term) >= MIN_CHARS - 1 and has_bigrams(term) and not term.isdigit():
                    terms.add(term)
        return _Words(sorted(terms))
    return cache.memo(("vocabulary",), compute).words


@dataclass
class _Words:
    words: list[str]

    @property
    def nbytes(self) -> int:
        return 64 + sum(len(w) * 4 for w in self.words)


class WhooshProbe:
    """What a suggestion needs from the index, over one reader's view (the PostgreSQL backend has
    its own: pg_backend.Probe)."""

    def __init__(self, view):
        self.view = view

    def vocabulary(self) -> list[str]:
        return _vocabulary(self.view.cache)

    def word_count(self, word: querying.QueryWord) -> int:
        return len(querying.word_scores(self.view, word).ids)

    def exact_counts(self, terms: list[str]) -> dict[str, int]:
        """Of each term, the reader's cases that have it as a word."""
        return {term: len(querying._exact_scores(self.view, term).ids) for term in terms}

    def case_with(self, term: str) -> int | None:
        docnums = np.nonzero(querying._exact_impacts(self.view, term))[0]
        return int(self.view.cache.case_ids()[docnums[0]]) if len(docnums) else None


def _probe(view):
    return view if hasattr(view, "word_count") else WhooshProbe(view)


def _nearest(distances: np.ndarray, wanted: int) -> np.ndarray:
    """Positions of the ``wanted`` smallest distances, nearest first, ties in vocabulary order (what
    a stable sort gives, without sorting the whole vocabulary)."""
    wanted = min(wanted, len(distances))
    if not wanted:
        return np.zeros(0, dtype=np.intp)
    cut = np.partition(distances, wanted - 1)[wanted - 1]
    below = np.flatnonzero(distances < cut)
    chosen = np.concatenate([below, np.flatnonzero(distances == cut)[:wanted - len(below)]])
    return chosen[np.lexsort((chosen, distances[chosen]))]


def _best_replacement(probe, word: querying.QueryWord, synonyms: dict[str, list[str]]) -> str | None:
    text = word.text
    if len(text) < MIN_CHARS or not has_bigrams(text) or text.isdigit():
        return None
    limit = _max_distance(text)
    # The vocabulary is every reader's: words of cases this reader may not read are in it. How many
    # words near the typed one the other municipalities' cases hold must not change what a
    # suggestion costs (a request's time). So every distance is computed in full (``extract``
    # stops early once it has enough near words), and the same number of words is looked up for
    # every typed word, the nearest CANDIDATES whether or not they are within reach, in one batch.
    vocabulary = probe.vocabulary()
    distances = process.cdist([text], vocabulary, scorer=Levenshtein.distance, dtype=np.int32)[0]
    positions = [i for i in _nearest(distances, CANDIDATES + 1) if vocabulary[i] != text][:CANDIDATES]
    nearest = {vocabulary[i]: int(distances[i]) for i in positions}
    seen = probe.exact_counts(list(nearest))
    # Synonym keys (the desk's list, the same for everybody) within reach count as their group.
    for key in synonyms:
        if key != text and has_bigrams(key) and (distance := Levenshtein.distance(text, key)) <= limit:
            nearest[key] = distance
            seen[key] = probe.word_count(querying.parse(key, synonyms).words[0])
    ranked = [(distance, -seen[candidate], candidate) for candidate, distance in nearest.items()
              if 0 < distance <= limit and seen[candidate]]
    return min(ranked)[2] if ranked else None


def _surface(probe, term: str) -> str:
    """How ``term`` is written in one of the reader's cases (サーバルーム for the folded サバルム)."""
    case_id = probe.case_with(term)
    if case_id is None:
        return term
    row = db.session.execute(select(Case.title, Case.issue, Case.environment, Case.cause, Case.resolution)
                             .where(Case.id == case_id)).first()
    for text in row or ():
        folded, offsets = normalise_with_offsets(text or "")
        at = folded.find(term)
        if at != -1:
            return (text or "")[offsets[at]:offsets[at + len(term)]]
    return term


def suggest(view, typed: str, parsed: querying.ParsedQuery, synonyms: dict[str, list[str]],
            total: int) -> Suggestion | None:
    if total >= SUGGEST_BELOW or not parsed.words:
        return None
    probe = _probe(view)
    replaced: dict[str, str] = {}
    for word in parsed.words:
        if word.synonym or probe.word_count(word):
            continue
        better = _best_replacement(probe, word, synonyms)
        if better:
            replaced[word.text] = better
    if not replaced:
        return None
    folded, offsets = normalise_with_offsets(typed)
    pieces, cursor = [], 0
    for old, new in sorted(replaced.items(), key=lambda kv: folded.find(kv[0])):
        at = folded.find(old, cursor)
        if at == -1:
            return None  # the word is a lemma (終わらない → 終わる): no place to put the suggestion
        pieces += [typed[offsets[cursor]:offsets[at]], _surface(probe, new)]  # the key itself if no case has it
        cursor = at + len(old)
    pieces.append(typed[offsets[cursor]:])
    return Suggestion("".join(pieces), replaced)

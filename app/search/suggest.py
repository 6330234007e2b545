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
            for term in cache.reader.lexicon(fieldname):
                term = term.decode("utf-8") if isinstance(term, bytes) else term
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


def _visible_count(view, text: str) -> int:
    return int(np.count_nonzero(querying._exact_impacts(view, text)))


def _best_replacement(view, word: querying.QueryWord, synonyms: dict[str, list[str]]) -> str | None:
    text = word.text
    if len(text) < MIN_CHARS or not has_bigrams(text) or text.isdigit():
        return None
    limit = _max_distance(text)
    choices = _vocabulary(view.cache) + [k for k in synonyms if has_bigrams(k)]
    found = process.extract(text, choices, scorer=Levenshtein.distance, score_cutoff=limit, limit=CANDIDATES)
    ranked = []
    for candidate, distance, _index in found:
        if candidate == text or not distance:
            continue
        if candidate in synonyms:
            seen = int(np.count_nonzero(querying.word_impacts(view, querying.parse(candidate, synonyms).words[0])))
        else:
            seen = _visible_count(view, candidate)
        if seen:
            ranked.append((distance, -seen, candidate))
    return min(ranked)[2] if ranked else None


def _surface(view, term: str) -> str:
    """How ``term`` is written in one of the reader's cases (サーバルーム for the folded サバルム)."""
    docnums = np.nonzero(querying._exact_impacts(view, term))[0]
    if not len(docnums):
        return term
    case_id = int(view.cache.case_ids()[docnums[0]])
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
    replaced: dict[str, str] = {}
    for word in parsed.words:
        if word.synonym or int(np.count_nonzero(querying.word_impacts(view, word))):
            continue
        better = _best_replacement(view, word, synonyms)
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
        pieces += [typed[offsets[cursor]:offsets[at]], _surface(view, new)]  # the key itself if no case has it
        cursor = at + len(old)
    pieces.append(typed[offsets[cursor]:])
    return Suggestion("".join(pieces), replaced)

"""From what a staffer typed to matching and ranking.

- ``"..."`` is a phrase: it must appear as typed (its words narrow the candidates in the
  index, then the phrase itself is checked in the case's text).
- Everything else is analysed into content words; particles, filler and request phrases are
  dropped, so a question typed as a sentence becomes the words a keyword search would use.
- A word matches its exact form in the word fields (title and tags > resolution > body), its
  compound parts (lower), longer katakana/Latin words that start with it (ファイア → ファイアウォール,
  lower still), or — for a word the reader's cases do not contain as a word — all of its
  character bigrams (so ``nonsense`` finds nothing). A synonym group matches through its best
  member; members other than the one typed count a little less.
- Everything is computed on numpy arrays over the documents of one reader's view (ScopedView):
  statistics come from the cases that reader may see.

Which documents are hits (``hit_mask``): those that contain at least one *informative* word of the
query, a word that is not in most of the reader's cases; when every word of the query is that
common, a document needs all of them. Ranking (``ranked_scores``): the sum of the words' BM25
scores, times the share of the query's weight (idf) that the document covers, so cases with all
the words come first, then cases with fewer, ordered by score.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from app.search.analysis import bigrams, fold_katakana_with_offsets, has_bigrams, normalise, prefold, words
from app.search.index import SparseScores

FIELD_WEIGHTS = {"title": 3.0, "resolution": 2.0, "body": 1.0}  # tags are indexed with the title
WORD_FIELDS = tuple(FIELD_WEIGHTS)
PARTS_WEIGHT = 0.5
PREFIX_WEIGHT = 0.35       # longer words that start with a katakana/Latin query word
PREFIX_MIN_CHARS = 3
NGRAM_WEIGHT = 0.6         # shared by all bigrams of a word: ranks below an exact word match
SYNONYM_WEIGHT = 0.85      # a synonym ranks a little below the word that was typed
COMMON_SHARE = 0.5         # a word in more than half of the reader's cases is not informative
RELATED_COMMON_MIN_CASES = 100   # ... for relating cases, from this many of the reader's cases
RELATED_MIN_SHARED = 2     # words a related case shares with the text (one when the text has fewer than 3)
COVERAGE_POWER = 1.5
PREDICATE_WEIGHT = 0.5     # a verb or adjective of the query, in the score and in the coverage
MAX_WORDS = 12
_PHRASE = re.compile(r'"([^"]+)"|“([^”]+)”|＂([^＂]+)＂')


@dataclass
class QueryWord:
    """A word of the query, or a synonym group standing for one (``members`` set; the first
    member is what was typed)."""

    text: str                      # normalised word (or synonym key), as indexed
    parts: list[str] = field(default_factory=list)
    members: list[list[str]] = field(default_factory=list)  # each group member as its words
    synonym: bool = False          # members beyond the first are synonyms (not spellings of one run)
    weight: float = 1.0            # verbs and adjectives say less about the topic than nouns


@dataclass
class ParsedQuery:
    words: list[QueryWord]
    phrases: list[str]             # normalised, to find in the text
    needles: list[str]             # normalised strings to highlight in snippets
    phrase_words: list[QueryWord] = field(default_factory=list)  # the phrases' words, to narrow candidates

    @property
    def empty(self) -> bool:
        return not self.words and not self.phrases


def _ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _synonym_spans(text: str, keys: list[str]) -> list[tuple[int, int, str]]:
    """Non-overlapping occurrences of synonym keys in normalised text, longest keys first."""
    taken = [False] * len(text)
    spans = []
    for key in keys:
        start = text.find(key)
        while start != -1:
            end = start + len(key)
            # An ASCII key stands alone among ASCII letters and digits (「PCを」 is PC; 「PCs」 is not).
            bounded = not key.isascii() or (
                (start == 0 or not _ascii_alnum(text[start - 1])) and (end == len(text) or not _ascii_alnum(text[end]))
            )
            if bounded and not any(taken[start:end]):
                spans.append((start, end, key))
                for i in range(start, end):
                    taken[i] = True
            start = text.find(key, start + 1)
    return sorted(spans)


_UNIT = re.compile(r"[0-9a-z\u30a1-\u30ff][0-9a-z\u30a1-\u30ff\-_./+]*")


def _words_of(text: str) -> list[QueryWord]:
    """Query words of prefolded text, as Sudachi splits it. A run of Latin letters, digits and
    katakana typed without a space (a product name ``サツソノゲート``, a model ``nx-00042``) that the
    dictionary splits into several words stays one word: it needs all of its pieces, or its
    bigrams in a row."""
    tokens = words(text, normalised=True)
    result: list[QueryWord] = []
    used: set[int] = set()
    for match in _UNIT.finditer(text):
        inside = [i for i, t in enumerate(tokens) if t.start >= match.start() and t.end <= match.end()]
        if len(inside) > 1:
            folded = normalise(match.group().strip("-_./+"))
            first = inside[0]
            result.append((first, QueryWord(folded, [], [[folded], [tokens[i].text for i in inside]])))
            used.update(inside)
    result += [(i, QueryWord(t.text, t.parts, weight=PREDICATE_WEIGHT if t.predicate else 1.0))
               for i, t in enumerate(tokens) if i not in used]
    return [word for _i, word in sorted(result, key=lambda pair: pair[0])]


def parse(text: str, synonyms: dict[str, list[str]] | None = None) -> ParsedQuery:
    """Split the user's text into phrases, synonym groups and words."""
    synonyms = synonyms or {}
    phrases: list[str] = []

    phrase_query_words: list[QueryWord] = []

    def take_phrase(match: re.Match) -> str:
        typed = next(g for g in match.groups() if g)
        phrase = normalise(typed).strip()
        if phrase:
            phrases.append(phrase)
            phrase_query_words.extend(QueryWord(w.text, w.parts) for w in words(typed))
        return " "

    # Sudachi reads the prefolded text; synonym keys are found in its normalised form.
    rest = prefold(_PHRASE.sub(take_phrase, text or "")).replace('"', " ")
    folded, offsets = fold_katakana_with_offsets(rest)
    keys = sorted((k for k in synonyms if len(k) > 1), key=len, reverse=True)
    pieces: list[QueryWord | str] = []
    cursor = 0
    for start, end, key in _synonym_spans(folded, keys):
        pieces.append(rest[cursor:offsets[start]])
        members = [[w.text for w in words(m)] or [normalise(m)] for m in [key, *synonyms[key]]]
        unique = [m for i, m in enumerate(members) if m not in members[:i]]
        pieces.append(QueryWord(key, [], unique, synonym=True))
        cursor = offsets[end]
    pieces.append(rest[cursor:])

    def group_for(word: QueryWord) -> QueryWord:
        """A word typed inflected (無くした → 無くす) meets its synonym group through its lemma."""
        if word.members or word.text not in synonyms:
            return word
        members = [[word.text]] + [[w.text for w in words(m)] or [normalise(m)] for m in synonyms[word.text]]
        unique = [m for i, m in enumerate(members) if m not in members[:i]]
        return QueryWord(word.text, word.parts, unique, synonym=True)  # the group is a topic: full weight

    seen: set[str] = set()
    query_words: list[QueryWord] = []
    for piece in pieces:
        candidates = [piece] if isinstance(piece, QueryWord) else [group_for(w) for w in _words_of(piece)]
        for word in candidates:
            if word.text in seen:
                continue
            seen.add(word.text)
            query_words.append(word)
    query_words = query_words[:MAX_WORDS]
    needles = phrases + [w.text for w in query_words]
    for w in query_words:
        needles += w.parts
        needles += ["".join(m) for m in w.members]
    return ParsedQuery(query_words, phrases, [n for n in dict.fromkeys(needles) if n], phrase_query_words)


# --- which documents match, and how well (arrays over one reader's documents) -----------------

# Scores are kept as the documents that have one (``SparseScores``). Combining several (fields,
# parts, synonyms) works on the union of their documents (``_Space``) with the same element-wise
# arithmetic a dense array over every document does, so the results are the same, but for rare
# words the work grows with the documents that match, not with the size of the index.

def _sorted_union(ids: list[np.ndarray]) -> np.ndarray:
    """The union of sorted id arrays (a sort: NumPy's hashed ``unique`` was slower here)."""
    joined = np.sort(np.concatenate(ids))
    keep = np.empty(len(joined), dtype=bool)
    keep[0] = True
    np.not_equal(joined[1:], joined[:-1], out=keep[1:])
    return joined[keep]


class _Space:
    """The documents a combination is computed over: the union of its inputs' documents when
    they are few, else every document (a sorted union of many costs more than dense arrays)."""

    DENSE_SHARE = 1 / 16

    def __init__(self, size: int, found: list):
        self.size = size
        ids = [f.ids for f in found if len(f.ids)]
        total = sum(len(i) for i in ids)
        if total > self.DENSE_SHARE * size:
            self.ids = None
        elif not ids:
            self.ids = np.zeros(0, dtype=np.int32)
        else:
            self.ids = ids[0] if len(ids) == 1 else _sorted_union(ids)

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size if self.ids is None else len(self.ids), dtype=np.float32)

    def on(self, found) -> np.ndarray:
        """``found``'s scores over this space (which holds all of its documents)."""
        if self.ids is None:
            return found.dense(self.size)
        out = np.zeros(len(self.ids), dtype=np.float32)
        if len(found.ids):
            out[np.searchsorted(self.ids, found.ids)] = found.values
        return out

    def kept(self, scores: np.ndarray) -> SparseScores:
        if self.ids is None:
            return SparseScores.of(scores)
        nonzero = scores != 0
        return SparseScores(self.ids[nonzero], scores[nonzero].astype(np.float32))


def _exact_scores(view, text: str):
    """BM25 of the word's exact form in the word fields, weighted by field."""
    def compute():
        # each field's impacts are only a step: the weighted sum is what is kept
        found = {name: view.impacts(name, text, sparse=True, remember=False) for name in FIELD_WEIGHTS}
        space = _Space(view.size, list(found.values()))
        scores = space.zeros()
        for fieldname, weight in FIELD_WEIGHTS.items():
            scores += weight * space.on(found[fieldname])
        return space.kept(scores)
    return view.scores_memo(("exact", text), compute, sparse=True)


def _exact_impacts(view, text: str) -> np.ndarray:
    return _exact_scores(view, text).dense(view.size)


def _prefix_scores(view, text: str):
    """Longer katakana/Latin words that start with ``text`` (ファイア → ファイアウォル), each as a
    word of its own; the best one per document counts."""
    def compute():
        found = [_exact_scores(view, term) for term in view.cache.longer_terms(WORD_FIELDS, text)]
        space = _Space(view.size, found)
        best = space.zeros()
        for each in found:
            np.maximum(best, space.on(each), out=best)
        return space.kept(best)
    return view.scores_memo(("prefix", text), compute, sparse=True)


def _single_scores(view, text: str, parts: list[str] | None = None):
    """Score per document for one word: its exact form, plus its compound parts (only where all of
    them occur), lower; longer words starting with it (katakana/Latin), lower still; a word the
    reader's cases do not have as a word is matched by its bigrams instead (all of them)."""
    def compute():
        exact = _exact_scores(view, text)
        part_found = [_single_scores(view, p) for p in parts] if parts else []
        prefix = (_prefix_scores(view, text)
                  if has_bigrams(text) and len(text) >= PREFIX_MIN_CHARS and not text.isdigit() else None)
        fallback = has_bigrams(text) and len(text) > 1 and not text.isdigit()
        if not part_found and prefix is None and (len(exact.ids) or not fallback):
            return exact   # the word is its exact form: the same scores, held once
        space = _Space(view.size, [exact, *part_found, *([prefix] if prefix is not None else [])])
        scores = space.on(exact)
        if part_found:
            part_scores = [space.on(f) for f in part_found]
            everywhere = np.logical_and.reduce([ps > 0 for ps in part_scores])
            scores += PARTS_WEIGHT * everywhere * (sum(part_scores) / len(parts))
        if prefix is not None:
            np.maximum(scores, PREFIX_WEIGHT * space.on(prefix), out=scores)
        if fallback and not scores.any():
            # Only for a word the reader's cases do not have as a word (a product name the
            # dictionary splits differently, part of a longer term), and never for a number:
            # bigrams carry no positions, so 15000 would match 11500 and 05000.
            grams = list(dict.fromkeys(bigrams(text, normalised=True)))
            gram_found = [view.impacts("ngram", g, sparse=True) for g in grams]
            space = _Space(view.size, gram_found)
            gram_scores = [space.on(f) for f in gram_found]
            everywhere = np.logical_and.reduce([gs > 0 for gs in gram_scores])
            scores = NGRAM_WEIGHT * everywhere * (sum(gram_scores) / len(grams))
        return space.kept(scores)
    return view.scores_memo(("word", text, tuple(parts or ())), compute, sparse=True)


def word_scores(view, word: QueryWord):
    """Score of a query word in the documents that match it (``SparseScores``: ``ids``, ``values``).
    For a synonym group, its best member (a member of several words needs all of them); members
    other than the typed one count less."""
    if not word.members:
        return _single_scores(view, word.text, word.parts)

    def compute():
        members = [[_single_scores(view, w) for w in member] for member in word.members]
        space = _Space(view.size, [f for member in members for f in member])
        best = space.zeros()
        for index, member in enumerate(members):
            parts = [space.on(f) for f in member]
            if len(parts) == 1:
                score = parts[0]
            else:
                score = np.logical_and.reduce([p > 0 for p in parts]) * sum(parts)
            if index and word.synonym:
                score = SYNONYM_WEIGHT * score
            np.maximum(best, score, out=best)
        return space.kept(best)
    return view.scores_memo(("group", word.text, word.synonym, tuple(tuple(m) for m in word.members)), compute,
                            sparse=True)


@dataclass
class RelatedWords:
    """What relates a case to a text (similar cases): ``chosen`` score it; it shares at least
    ``least`` of them, one of them ``informative`` (a flag per chosen word)."""

    chosen: list[QueryWord]
    informative: list[bool]
    least: int


def related_words(words: list[QueryWord], matched: dict[int, int], total: int, limit: int = 10) -> RelatedWords:
    """The ``limit`` rarest of the words found among the reader's ``total`` cases (``matched``:
    cases per word, by ``id(word)``). In a library of RELATED_COMMON_MIN_CASES or more, a word in
    more than COMMON_SHARE of the reader's cases is not informative (as for the search's hit
    condition; unless every word is that common): two cases that share only such words are not
    related, and the cases sharing them were most of what was ranked (at 100,000 synthetic cases,
    64,000 rows for one case page on PostgreSQL) to rank low. In a smaller library every word is
    informative (three cases about VPN are related by it)."""
    chosen = sorted((w for w in words if matched[id(w)]), key=lambda w: matched[id(w)])[:limit]
    informative = [total < RELATED_COMMON_MIN_CASES or matched[id(w)] <= COMMON_SHARE * total for w in chosen]
    if not any(informative):
        informative = [True] * len(chosen)
    return RelatedWords(chosen, informative, RELATED_MIN_SHARED if len(chosen) >= 3 else 1)


def word_weight(view, word: QueryWord) -> float:
    """How much a word says: its idf over the reader's cases (from the documents it matches)."""
    matched = len(word_scores(view, word).ids)
    return math.log((view.count + 1) / (matched + 0.5))


def hit_mask(view, query_words: list[QueryWord]) -> np.ndarray:
    """Documents with at least one informative word of the query (one that is not in most of the
    reader's cases); when every word is that common, documents with all of them."""
    present = [word_scores(view, w).mask(view.size) for w in query_words]
    limit = COMMON_SHARE * view.count
    useful = [p for p in present if np.count_nonzero(p) <= limit]
    if useful:
        return np.logical_or.reduce(useful)
    return np.logical_and.reduce(present)


def ranked_scores(view, query_words: list[QueryWord]) -> np.ndarray:
    """The query's score per document: the sum of its words' scores, times the covered share of
    the query's weight to a power (all words first, then fewer)."""
    # Added a word at a time into the documents each word matches (what a sum of dense arrays
    # gives, in the same order, without touching every document for every word).
    found = [word_scores(view, w) for w in query_words]
    total = np.zeros(view.size, dtype=np.float32)
    for word, scores in zip(query_words, found):
        total[scores.ids] += word.weight * scores.values
    if len(query_words) < 2:
        return total
    weights = [w.weight * max(word_weight(view, w), 0.05) for w in query_words]
    covered = np.zeros(view.size, dtype=np.float64)
    for weight, scores in zip(weights, found):
        covered[scores.ids] += weight
    covered /= sum(weights)
    return total * np.power(covered, COVERAGE_POWER, dtype=np.float32)

"""From what a staffer typed to a Whoosh query.

- ``"..."`` is a phrase: it must appear as typed (its words narrow the candidates in the
  index, then the phrase itself is checked in the case's text).
- Everything else is analysed into words; particles and filler are dropped.
- Each word matches its exact form in the word fields (title and tags > resolution > body), or its
  compound parts, or, for words the dictionary does not know, all of its character bigrams
  (so ``nonsense`` finds nothing) with a low weight, and the same for each of its synonyms.
- Which documents match and how they rank are computed on numpy arrays over the index's
  documents (ReaderCache): a word's score is BM25 per field, weighted; the query's score is the
  sum over its words, so documents with more of the words rank higher.
  A minimum number of words must match: one word of a query may always be missing, more for
  long sentences, and a word's n-grams never count as words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from app.search.analysis import bigrams, has_bigrams, normalise, words

FIELD_WEIGHTS = {"title": 3.0, "resolution": 2.0, "body": 1.0}  # tags are indexed with the title
PARTS_WEIGHT = 0.5
NGRAM_WEIGHT = 0.6  # shared by all bigrams of a word: ranks below an exact word match
MAX_WORDS = 8
_PHRASE = re.compile(r'"([^"]+)"|“([^”]+)”|＂([^＂]+)＂')


@dataclass
class QueryWord:
    """A word of the query, or a synonym group standing for one (``members`` set)."""

    text: str                      # normalised word (or synonym key), as indexed
    parts: list[str] = field(default_factory=list)
    members: list[list[str]] = field(default_factory=list)  # each group member as its words


@dataclass
class ParsedQuery:
    words: list[QueryWord]
    phrases: list[str]
    needles: list[str]             # normalised strings to highlight in snippets

    @property
    def empty(self) -> bool:
        return not self.words and not self.phrases


def _synonym_spans(text: str, keys: list[str]) -> list[tuple[int, int, str]]:
    """Non-overlapping occurrences of synonym keys in normalised text, longest keys first.
    An ASCII key must stand as a whole word (``pc`` is not found inside ``pcs``)."""
    taken = [False] * len(text)
    spans = []
    for key in keys:
        start = text.find(key)
        while start != -1:
            end = start + len(key)
            ascii_key = key.isascii()
            bounded = not ascii_key or (
                (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())
            )
            if bounded and not any(taken[start:end]):
                spans.append((start, end, key))
                for i in range(start, end):
                    taken[i] = True
            start = text.find(key, start + 1)
    return sorted(spans)


_UNIT = re.compile(r"[0-9a-z\u30a1-\u30ff][0-9a-z\u30a1-\u30ff\-_./+]*")


def _words_of(text: str) -> list[QueryWord]:
    """Query words of normalised text. A run of Latin letters, digits and katakana typed without
    a space (a product name ``サツソノゲート``, a model ``nx-00042``) stays one word even where the
    dictionary splits it: it needs all of its pieces, or its bigrams in a row."""
    result: list[QueryWord] = []
    cursor = 0
    for match in _UNIT.finditer(text):
        result += [QueryWord(w.text, w.parts) for w in words(text[cursor:match.start()], normalised=True)]
        run = match.group().strip("-_./+")
        pieces = [w.text for w in words(run, normalised=True)]
        if len(pieces) > 1:
            result.append(QueryWord(run, [], [[run], pieces]))
        else:
            result += [QueryWord(w.text, w.parts) for w in words(run, normalised=True)]
        cursor = match.end()
    result += [QueryWord(w.text, w.parts) for w in words(text[cursor:], normalised=True)]
    return result


def parse(text: str, synonyms: dict[str, list[str]] | None = None) -> ParsedQuery:
    """Split the user's text into phrases, synonym groups and words."""
    synonyms = synonyms or {}
    phrases: list[str] = []

    def take_phrase(match: re.Match) -> str:
        phrase = normalise(next(g for g in match.groups() if g)).strip()
        if phrase:
            phrases.append(phrase)
        return " "

    rest = normalise(_PHRASE.sub(take_phrase, text or "")).replace('"', " ")
    keys = sorted((k for k in synonyms if len(k) > 1), key=len, reverse=True)
    pieces: list[QueryWord | str] = []
    cursor = 0
    for start, end, key in _synonym_spans(rest, keys):
        pieces.append(rest[cursor:start])
        members = [[w.text for w in words(m)] or [normalise(m)] for m in [key, *synonyms[key]]]
        unique = [m for i, m in enumerate(members) if m not in members[:i]]
        pieces.append(QueryWord(key, [], unique))
        cursor = end
    pieces.append(rest[cursor:])

    seen: set[str] = set()
    query_words: list[QueryWord] = []
    for piece in pieces:
        candidates = [piece] if isinstance(piece, QueryWord) else _words_of(piece)
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
    return ParsedQuery(query_words, phrases, [n for n in dict.fromkeys(needles) if n])


def minimum_match(word_count: int) -> int:
    """How many of the words a document needs: any one of two, all but one of three or four,
    half of a longer sentence (whose extra words are usually paraphrase)."""
    if word_count <= 2:
        return min(word_count, 1)
    if word_count <= 4:
        return word_count - 1
    return -(-word_count // 2)


# --- which documents match, and how well (arrays over the reader's documents) -----------------

def _single_impacts(cache, text: str, parts: list[str] | None = None) -> np.ndarray:
    """Score per document for one word: BM25 of its exact form in each word field (weighted),
    plus its compound parts (only where all of them occur), lower; a word the index does not
    have as a word is matched by its bigrams instead (all of them), lower still."""
    def compute():
        scores = np.zeros(cache.size, dtype=np.float32)
        for fieldname, weight in FIELD_WEIGHTS.items():
            scores += weight * cache.impacts(fieldname, text)
        if parts:
            part_scores = [_single_impacts(cache, p) for p in parts]
            everywhere = np.logical_and.reduce([ps > 0 for ps in part_scores])
            scores += PARTS_WEIGHT * everywhere * (sum(part_scores) / len(parts))
        if has_bigrams(text) and len(text) > 1 and not scores.any():
            # Only for a word the index does not have as a word (a product name the dictionary
            # splits differently, part of a longer term): bigrams carry no positions, so for
            # a known word they would add loose matches (00042 inside other numbers).
            grams = list(dict.fromkeys(bigrams(text, normalised=True)))
            gram_scores = [cache.impacts("ngram", g) for g in grams]
            everywhere = np.logical_and.reduce([gs > 0 for gs in gram_scores])
            scores += NGRAM_WEIGHT * everywhere * (sum(gram_scores) / len(grams))
        return scores
    return cache.memo(("word", text, tuple(parts or ())), compute)


def word_impacts(cache, word: QueryWord) -> np.ndarray:
    """Score per document of a query word (0: no match): the exact word, its parts, or all of its
    bigrams; for a synonym group, its best member (a member of several words needs all)."""
    if not word.members:
        return _single_impacts(cache, word.text, word.parts)

    def compute():
        best = np.zeros(cache.size, dtype=np.float32)
        for member in word.members:
            parts = [_single_impacts(cache, w) for w in member]
            if len(parts) == 1:
                score = parts[0]
            else:
                score = np.logical_and.reduce([p > 0 for p in parts]) * sum(parts)
            np.maximum(best, score, out=best)
        return best
    return cache.memo(("group", word.text, tuple(tuple(m) for m in word.members)), compute)


def matching_mask(cache, words: list[QueryWord]) -> np.ndarray:
    """Documents with at least ``minimum_match`` of the words."""
    counts = sum((word_impacts(cache, w) > 0).astype(np.int8) for w in words)
    return counts >= max(1, minimum_match(len(words)))


def scores_for(cache, words: list[QueryWord]) -> np.ndarray:
    """The query's score per document: the sum of its words' scores."""
    return sum(word_impacts(cache, w) for w in words)


def phrase_words(phrase: str) -> list[QueryWord]:
    return [QueryWord(w.text, w.parts) for w in words(phrase, normalised=True)]

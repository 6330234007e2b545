"""From what a staffer typed to a Whoosh query.

- ``"..."`` is a phrase: it must appear as typed (matched on character bigrams with positions).
- Everything else is analysed into words; particles and filler are dropped.
- Each word matches its exact form in the word fields (title > tags > resolution > body), or its
  compound parts, or, for words the dictionary does not know, all of its character bigrams
  (so ``nonsense`` finds nothing) with a low weight, and the same for each of its synonyms.
- The words are OR-ed and ranked (documents with more of them score higher), with a minimum
  number of words that must match: one word of a query may always be missing, more for long
  sentences, never a word's n-grams counted as words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import combinations
from math import comb

from whoosh import query as Q

from app.search.analysis import bigrams, normalise, words

FIELD_WEIGHTS = {"title": 3.0, "tags": 2.5, "resolution": 2.0, "body": 1.0}
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
        candidates = [piece] if isinstance(piece, QueryWord) else [
            QueryWord(w.text, w.parts) for w in words(piece, normalised=True)
        ]
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


def _term_clause(text: str, parts: list[str] | None = None) -> Q.Query:
    alternatives: list[Q.Query] = [Q.Term(f, text, boost=w) for f, w in FIELD_WEIGHTS.items()]
    if parts:
        alternatives.append(Q.And([Q.Or([Q.Term(f, p) for f in FIELD_WEIGHTS]) for p in parts],
                                  boost=PARTS_WEIGHT))
    grams = bigrams(text, normalised=True)
    if len(grams) > 1 or (grams and len(text) > 1):
        weight = NGRAM_WEIGHT / len(grams)
        alternatives.append(Q.And([Q.Term("ngram", g, boost=weight) for g in grams]))
    return Q.Or(alternatives)


def word_clause(word: QueryWord) -> Q.Query:
    """A word: its exact form, its parts or its bigrams. A synonym group: any of its members,
    a member of several words needing all of them."""
    if not word.members:
        return _term_clause(word.text, word.parts)
    alternatives = [
        _term_clause(member[0]) if len(member) == 1 else Q.And([_term_clause(w) for w in member])
        for member in word.members
    ]
    return alternatives[0] if len(alternatives) == 1 else Q.Or(alternatives)


def phrase_clause(phrase: str) -> Q.Query:
    grams = bigrams(phrase, normalised=True)
    if len(grams) == 1:
        return Q.Term("ngram", grams[0])
    return Q.Phrase("ngram", grams)


MAX_COMBINATIONS = 20


@dataclass
class BuiltQuery:
    scored: Q.Query               # what ranks the documents
    required: Q.Query | None      # what a document must match besides (phrases, minimum match)
    counted: list[Q.Query] = field(default_factory=list)  # minimum match left to counting...
    need: int = 0                 # ...of this many of those clauses


def build(parsed: ParsedQuery) -> BuiltQuery:
    clauses = [word_clause(w) for w in parsed.words]
    phrases = [phrase_clause(p) for p in parsed.phrases]
    required: list[Q.Query] = list(phrases)
    counted: list[Q.Query] = []
    need = 0
    if clauses:
        scored: Q.Query = clauses[0] if len(clauses) == 1 else Q.Or(clauses)
        need = minimum_match(len(clauses))
        if len(clauses) > 1 and need == len(clauses):
            required.append(Q.And(clauses))
        elif need > 1 and comb(len(clauses), need) <= MAX_COMBINATIONS:
            required.append(Q.Or([Q.And(list(combo)) for combo in combinations(clauses, need)]))
        elif need > 1:
            counted = clauses
    else:
        scored = Q.And(phrases) if len(phrases) > 1 else phrases[0]
    joined = None if not required else required[0] if len(required) == 1 else Q.And(required)
    return BuiltQuery(scored, joined, counted, need)

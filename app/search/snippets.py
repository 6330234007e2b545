"""Highlighted snippets that cut Japanese text at sentence ends, not in the middle of a word."""
from __future__ import annotations

import re

from markupsafe import Markup, escape

from app.search.analysis import normalise, normalise_with_offsets

SNIPPET_CHARS = 120
_SENTENCE_END = re.compile(r"[。．！？!?\n]")
_SPACES = re.compile(r"\s+")


def _matches(normalised: str, needles: list[str]) -> list[tuple[int, int, str]]:
    spans = []
    for needle in sorted({normalise(n) for n in needles}, key=len, reverse=True):
        if not needle:
            continue
        start = normalised.find(needle)
        while start != -1:
            spans.append((start, start + len(needle), needle))
            start = normalised.find(needle, start + len(needle))
    spans.sort()
    merged: list[tuple[int, int, str]] = []
    for span in spans:
        if merged and span[0] < merged[-1][1]:
            continue  # overlaps a longer match already kept
        merged.append(span)
    return merged


def _best_window(spans, length: int, size: int) -> tuple[int, int]:
    """The window of ``size`` characters holding the most different needles (earliest wins)."""
    if not spans:
        return 0, min(length, size)
    best = (0, 0, 0)
    for i, (start, _end, _n) in enumerate(spans):
        distinct = {n for s, e, n in spans[i:] if e <= start + size}
        score = (len(distinct), -start)
        if score > best[:2]:
            best = (score[0], score[1], start)
    start = best[2]
    return start, min(length, start + size)


def make_snippet(text: str, needles: list[str], size: int = SNIPPET_CHARS) -> Markup:
    """A piece of ``text`` around the query words, with the words in <mark>."""
    text = _SPACES.sub(" ", text or "").strip()
    if not text:
        return Markup("")
    normalised, offsets = normalise_with_offsets(text)
    spans = _matches(normalised, needles)
    window_start, window_end = _best_window(spans, len(normalised), size)
    # Map to the original text and move the start back to the beginning of its sentence.
    start = offsets[window_start] if window_start < len(offsets) else 0
    end = offsets[window_end] if window_end < len(offsets) else len(text)
    sentence = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
    if start - sentence <= size // 3:
        start = sentence
    stop = _SENTENCE_END.search(text, end)
    if stop and stop.end() - end <= size // 4:
        end = stop.end()
    pieces: list[str] = ["…" if start > 0 else ""]
    cursor = start
    for s, e, _n in spans:
        original_start, original_end = offsets[s], offsets[e] if e < len(offsets) else len(text)
        if original_start < start or original_end > end:
            continue
        pieces.append(str(escape(text[cursor:original_start])))
        pieces.append(f"<mark>{escape(text[original_start:original_end])}</mark>")
        cursor = original_end
    pieces.append(str(escape(text[cursor:end])))
    if end < len(text):
        pieces.append("…")
    return Markup("".join(pieces).strip())

"""Text analysis for Japanese help-desk text.

Both the index and the queries go through the same steps:
1. ``prefold``: Unicode NFKC (ＶＰＮ→VPN, ｻｰﾊﾞ→サーバ), case folding, the long-vowel mark at the
   end of katakana words dropped (サーバー→サーバ, プリンター→プリンタ), and version shorthands
   spelled one way (Win10, Windows10 → windows 10; WS2019 → windows server 2019). Sudachi reads this.
2. ``normalise`` = ``prefold`` plus every long-vowel mark after a katakana letter dropped, inside
   compounds too (サーバールーム = サーバルーム, セキュリティーポリシー = セキュリティポリシー): the form of
   every term in the index, every query word and every string matched against text.
3. Words: SudachiPy (dictionary ``core``) in split mode C, with each compound's mode-A parts as
   extra tokens at the same position (情報セキュリティポリシー also yields セキュリティ, ポリシ).
   Particles, auxiliaries, symbols, filler (こと, とき, する ...) and request phrases (教えて,
   〜について, 〜したい, 〜のはなぜ) are dropped.
4. Character bigrams of the normalised text, for words the dictionary does not know.

The Whoosh tokenizers below are pickled into the index schema: they live at a stable import path
and hold no Sudachi object in their state. Sudachi tokenizers are created lazily, one per thread
(a SudachiPy tokenizer shared between threads raises "Already borrowed").
"""
from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from whoosh.analysis import Token, Tokenizer

_KATAKANA_LONG_VOWEL_END = re.compile(r"((?<![\u30a1-\u30fc])[\u30a1-\u30fa][\u30a1-\u30fc]*[\u30a1-\u30fa])\u30fc+(?![\u30a1-\u30fc])")
_RUN = re.compile(r"[0-9a-z\u00c0-\u024f\u3041-\u309f\u30a1-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆ヶ]+")
# Bigrams are kept for the scripts in which new terms appear (product names, abbreviations,
# katakana loanwords): Latin letters, digits and katakana. Kanji and hiragana words are covered
# by the dictionary and its compound parts; leaving them out keeps the index a third smaller.
_GRAM_RUN = re.compile(r"[0-9a-z\u00c0-\u024f\u30a1-\u30ff]+")
_HALFWIDTH_VOICE_MARKS = "\uff9e\uff9f"
_HALFWIDTH_VOICE_MARK_SET = frozenset(_HALFWIDTH_VOICE_MARKS)

# Bump when a change here changes the terms of indexed text: indexes made by another version are
# rebuilt (``flask search reindex --if-outdated``, which ``make run`` calls).
ANALYSIS_VERSION = 2

# Parts of speech that carry meaning; everything else (particles, auxiliaries, symbols,
# blanks, conjunctions, adverbs, pronouns ...) is dropped.
_CONTENT_POS = {"名詞", "動詞", "形容詞", "形状詞", "接頭辞"}

# Filler that a staffer's sentence contains but that says nothing about the problem.
STOPWORDS = frozenset({
    "こと", "もの", "時", "とき", "ため", "場合", "方法", "よう", "様", "際", "方", "件", "等", "など",
    "為る", "する", "有る", "ある", "居る", "いる", "成る", "なる", "出来る", "できる", "思う", "下さる",
    "くださる", "頂く", "いただく", "言う", "いう", "行う", "おこなう", "教える", "知る", "分かる", "わかる",
    "良い", "よい", "いい", "無い", "ない", "それ", "これ", "何", "どう", "について", "関する", "問い合わせ",
    "質問", "相談", "お願い", "願う", "ほしい", "欲しい", "たい", "困る", "的", "仕舞う", "しまう",
    "下さい", "ください", "どこ", "いつ", "誰", "なぜ", "何故", "どの", "どれ", "くらい", "ぐらい",
    # request phrases: 〜してもらえますか, 〜を伺いたい, 〜と考えています
    "もらう", "貰う", "くれる", "呉れる", "おる", "伺う", "存じる", "考える", "御座る", "ござる", "頂ける",
    "いただける", "どうして", "如何", "いかが", "具体", "具体的", "可能", "お伺い", "教示", "つく", "付く", "遣る", "やる",
})


# Version shorthands that staff write in many ways: one spelling for the index and the queries.
_SHORTHANDS = (
    (re.compile(r"(?<![0-9a-z])(?:windows|win)\s?(xp|vista|7|8\.1|8|10|11)(?![0-9a-z])"), r"windows \1"),
    (re.compile(r"(?<![0-9a-z])(?:windows\s?server|winsvr|ws)\s?(2008|2012|2016|2019|2022|2025)(?![0-9])"),
     r"windows server \1"),
)
_LONG_VOWEL_AFTER_KATAKANA = re.compile(r"(?<=[\u30a1-\u30fa])\u30fc+")


def prefold(text: str) -> str:
    """What Sudachi reads: NFKC, case folding, no long-vowel mark at the end of katakana words,
    version shorthands spelled one way."""
    folded = _KATAKANA_LONG_VOWEL_END.sub(r"\1", unicodedata.normalize("NFKC", text).casefold())
    for pattern, replacement in _SHORTHANDS:
        folded = pattern.sub(replacement, folded)
    return folded


def fold_katakana(text: str) -> str:
    """No long-vowel mark after a katakana letter (the mark in compounds and word ends varies)."""
    return _LONG_VOWEL_AFTER_KATAKANA.sub("", text)


def normalise(text: str) -> str:
    """The form of terms, query words and matched strings (see the module docstring)."""
    return fold_katakana(prefold(text))


@lru_cache(maxsize=65536)
def fold_word(word: str) -> str:
    """A dictionary form as a term (remembered: the same few thousand forms make most of a text,
    and normalising each one again was a fifth of the analysis)."""
    return normalise(word).strip()


def _drop_spans(text: str, offsets: list[int], spans: list[tuple[int, int]]) -> tuple[str, list[int]]:
    """``text`` without the (sorted, disjoint) spans, with ``offsets`` (one per character plus
    the end) kept aligned: slices, not a loop over characters."""
    parts: list[str] = []
    kept: list[int] = []
    cursor = 0
    for span_start, span_end in spans:
        parts.append(text[cursor:span_start])
        kept.extend(offsets[cursor:span_start])
        cursor = span_end
    parts.append(text[cursor:])
    kept.extend(offsets[cursor:len(text)])
    kept.append(offsets[len(text)])
    return "".join(parts), kept


def fold_katakana_with_offsets(text: str) -> tuple[str, list[int]]:
    """``fold_katakana(text)`` plus, for each of its characters, its index in ``text`` (and one
    more entry for the end)."""
    spans = [m.span() for m in _LONG_VOWEL_AFTER_KATAKANA.finditer(text)]
    return _drop_spans(text, list(range(len(text) + 1)), spans)


class _PieceTable(dict):
    """Code point → its NFKC + case folding, filled as characters come (for ``str.translate``: the
    whole text in one C loop; the same few thousand characters come back all the time)."""

    def __missing__(self, code: int) -> str:
        piece = unicodedata.normalize("NFKC", chr(code)).casefold()
        if len(self) < 65536:
            self[code] = piece
        return piece


_PIECES = _PieceTable()


def normalise_with_offsets(text: str) -> tuple[str, list[int]]:
    """``normalise(text)`` plus, for every character of it, the index of its source character
    in ``text`` (and one more entry for the end), so snippets can mark the original text."""
    n = len(text)
    marks = bool(_HALFWIDTH_VOICE_MARK_SET.intersection(text))
    folded = "" if marks else text.translate(_PIECES)
    if not marks and len(folded) == n:
        offsets = list(range(n + 1))   # every character gave one (no piece is empty)
    else:
        pieces = [_PIECES[ord(ch)] for ch in text]
        if marks:
            # A half-width voiced mark joins the character before it (ｶﾞ → ガ), scanning left to
            # right as the reader does: a character already joined to the one before starts no pair.
            joined = set()
            for j in range(1, n):
                if text[j] in _HALFWIDTH_VOICE_MARK_SET and (j - 1) not in joined:
                    pieces[j - 1] = unicodedata.normalize("NFKC", text[j - 1:j + 1]).casefold()
                    pieces[j] = ""
                    joined.add(j)
        offsets = [i for i, piece in enumerate(pieces) for _ in piece]
        offsets.append(n)
        folded = "".join(pieces)
    # Drop long-vowel marks at katakana word ends, keeping the offsets aligned.
    spans = [(m.end(1), m.end()) for m in _KATAKANA_LONG_VOWEL_END.finditer(folded)]
    if spans:
        folded, offsets = _drop_spans(folded, offsets, spans)
    # Version shorthands: the replacement's characters point at the start of what they replace.
    for pattern, replacement in _SHORTHANDS:
        pieces, new_offsets, cursor = [], [], 0
        for match in pattern.finditer(folded):
            pieces.append(folded[cursor:match.start()])
            new_offsets.extend(offsets[cursor:match.start()])
            expanded = match.expand(replacement)
            pieces.append(expanded)
            new_offsets.extend([offsets[match.start()]] * len(expanded))
            cursor = match.end()
        if pieces:
            pieces.append(folded[cursor:])
            new_offsets.extend(offsets[cursor:])
            folded, offsets = "".join(pieces), new_offsets + [offsets[-1]]
    spans = [m.span() for m in _LONG_VOWEL_AFTER_KATAKANA.finditer(folded)]
    return _drop_spans(folded, offsets, spans) if spans else (folded, offsets)


# --- Sudachi ----------------------------------------------------------------------------------

_local = threading.local()


@lru_cache(maxsize=1)
def _dictionary():
    from sudachipy import Dictionary

    return Dictionary(dict="core")


def _sudachi():
    tokenizer = getattr(_local, "tokenizer", None)
    if tokenizer is None:
        from sudachipy import SplitMode

        tokenizer = _dictionary().tokenizer(mode=SplitMode.C)
        _local.tokenizer = tokenizer
        _local.mode_a = SplitMode.A
    return tokenizer


@dataclass
class Word:
    """A word of the text: its folded form, its compound parts, and where it stands."""

    text: str
    parts: list[str] = field(default_factory=list)
    start: int = 0
    end: int = 0
    predicate: bool = False   # a verb or adjective (says less about the topic than a noun)


# Sudachi works on bounded chunks: long texts are cut at line ends.
_MAX_CHUNK = 4000


def _chunks(text: str):
    start = 0
    while start < len(text):
        end = min(len(text), start + _MAX_CHUNK)
        if end < len(text):
            cut = text.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
        yield start, text[start:end]
        start = end


# What the analysis does with a morpheme of each part of speech (by Sudachi's id: the tuple of
# six strings is made again for every call of ``part_of_speech()``).
_DROP, _NOUN, _PREDICATE, _OTHER_CONTENT, _NOUN_SUFFIX = range(5)
_POS_KINDS: dict[int, int] = {}


def _pos_kind(morpheme) -> int:
    pos_id = morpheme.part_of_speech_id()
    kind = _POS_KINDS.get(pos_id)
    if kind is None:
        pos, subtype = morpheme.part_of_speech()[:2]
        if pos == "接尾辞" and subtype == "名詞的":
            kind = _NOUN_SUFFIX
        elif pos == "名詞":
            kind = _NOUN
        elif pos in ("動詞", "形容詞"):
            kind = _PREDICATE
        elif pos in _CONTENT_POS:
            kind = _OTHER_CONTENT
        else:
            kind = _DROP
        _POS_KINDS[pos_id] = kind
    return kind


# A dictionary word's term and compound parts depend on the word alone: remembered by word id
# (a bounded table; words the dictionary does not know are worked out every time).
_WORD_TERMS: dict[tuple[int, bool], tuple[str, tuple[str, ...]]] = {}
_WORD_TERMS_LIMIT = 200_000


def _word_term(morpheme) -> str:
    """The term of a content word, or "" where it is dropped (filler, no letters or digits)."""
    folded = fold_word(morpheme.normalized_form())
    if not folded or folded in STOPWORDS or not _RUN.search(folded):
        return ""
    return folded


def _compound_parts(morpheme, folded: str, mode_a) -> tuple[str, ...]:
    parts: list[str] = []
    split = morpheme.split(mode_a)
    if len(split) > 1:
        for p in split:
            if p.part_of_speech()[0] in _CONTENT_POS:
                part = fold_word(p.normalized_form())
                if part and part != folded and part not in STOPWORDS and part not in parts:
                    parts.append(part)
    return tuple(parts)


def _term_and_parts(morpheme, long: bool, mode_a) -> tuple[str, tuple[str, ...]]:
    """The term of a content word ("" where it is dropped) and, for a compound of three
    characters or more (``long``), its mode-A parts."""
    known = not morpheme.is_oov()
    if known:
        key = (morpheme.word_id(), long)
        cached = _WORD_TERMS.get(key)
        if cached is not None:
            return cached
    folded = _word_term(morpheme)
    parts = _compound_parts(morpheme, folded, mode_a) if folded and long else ()
    if known:
        if len(_WORD_TERMS) >= _WORD_TERMS_LIMIT:
            _WORD_TERMS.clear()
        _WORD_TERMS[key] = (folded, parts)
    return folded, parts


def words(text: str, *, normalised: bool = False) -> list[Word]:
    """The content words of ``text``, each in its ``normalise``d form; offsets point into
    ``prefold(text)`` (``normalised=True``: ``text`` has been through ``prefold`` already)."""
    if not text:
        return []
    if not normalised:
        text = prefold(text)
    tokenizer = _sudachi()
    mode_a = _local.mode_a
    result: list[Word] = []
    for offset, chunk in _chunks(text):
        if not chunk.strip():
            continue
        noun_end = -1  # where the last noun ended (a suffix right after it makes a compound)
        for m in tokenizer.tokenize(chunk):
            kind = _pos_kind(m)
            if kind == _NOUN_SUFFIX:
                if result and noun_end == offset + m.begin():
                    # サーバ室, 基幹系, 専用線: one word, with the noun before it as a part
                    last = result[-1]
                    suffix = fold_word(m.normalized_form())
                    result[-1] = Word(last.text + suffix, [last.text, *last.parts], last.start, offset + m.end())
                    noun_end = offset + m.end()
                    continue
                kind = _DROP   # a suffix on its own, like every 接尾辞, is not a word
            if kind == _DROP:
                noun_end = -1
                continue
            surface = m.surface()
            if surface in STOPWORDS:
                noun_end = -1
                continue
            folded, parts = _term_and_parts(m, len(surface) >= 3, mode_a)
            if not folded:
                noun_end = -1
                continue
            result.append(Word(folded, list(parts), offset + m.begin(), offset + m.end(), kind == _PREDICATE))
            noun_end = offset + m.end() if kind == _NOUN else -1
    return result


def has_bigrams(word: str) -> bool:
    """Whether a (normalised) word is indexed as bigrams too: Latin, digits or katakana only."""
    return bool(word) and _GRAM_RUN.fullmatch(word) is not None


def bigrams(text: str, *, normalised: bool = False) -> list[str]:
    """Character bigrams of each run of Latin letters, digits and katakana (a lone character stays)."""
    if not normalised:
        text = normalise(text)
    grams: list[str] = []
    for run in _GRAM_RUN.findall(text):
        if len(run) == 1:
            grams.append(run)
        else:
            grams.extend(run[i:i + 2] for i in range(len(run) - 1))
    return grams


# --- Whoosh tokenizers (pickled in the schema: keep these names and module stable) -----------

class _StatelessTokenizer(Tokenizer):
    """Pickled into the index schema with no state: the Sudachi tokenizer is made lazily."""

    def __eq__(self, other):
        return other is not None and self.__class__ is other.__class__

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        pass


class JapaneseWordTokenizer(_StatelessTokenizer):
    """Sudachi words, each compound followed by its parts at the same position."""

    def terms(self, value: str) -> list[str]:
        """The tokens' texts, in order (for writing many documents: no Token per word)."""
        return [text for word in words(value) for text in (word.text, *word.parts)]

    def __call__(self, value, positions=False, chars=False, keeporiginal=False, removestops=True,
                 start_pos=0, start_char=0, mode="", **kwargs):
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for index, word in enumerate(words(value)):
            for text in [word.text, *word.parts]:
                token.text = text
                token.boost = 1.0
                token.stopped = False
                if positions:
                    token.pos = start_pos + index
                if chars:
                    token.startchar = start_char + word.start
                    token.endchar = start_char + word.end
                yield token


class BigramTokenizer(_StatelessTokenizer):
    """Distinct character bigrams of the Latin, digit and katakana runs of the normalised text."""

    def terms(self, value: str) -> list[str]:
        """The tokens' texts, in order (for writing many documents: no Token per gram)."""
        return list(dict.fromkeys(bigrams(value)))

    def __call__(self, value, positions=False, chars=False, keeporiginal=False, removestops=True,
                 start_pos=0, start_char=0, mode="", **kwargs):
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for position, gram in enumerate(dict.fromkeys(bigrams(value))):
            token.text = gram
            token.boost = 1.0
            token.stopped = False
            if positions:
                token.pos = start_pos + position
            yield token


def tag_key(tag: str) -> str:
    """How a tag is stored for exact filtering: normalised, spaces removed."""
    return re.sub(r"\s+", "", normalise(tag))

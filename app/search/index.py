"""The Whoosh index on disk.

Layout under ``SEARCH_INDEX_DIR``::

    CURRENT          name of the generation in use (replaced atomically by a reindex)
    write.lock       one writer at a time across every process (gunicorn workers, CLI)
    g<timestamp>/    a complete Whoosh index

Readers in every process notice a new generation (CURRENT changed) or new segments (a commit
by another process) and reopen their searcher. Searchers are reused, one per thread.
"""
from __future__ import annotations

import math
import os
import shutil
import struct
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
import numpy as np
from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher, _lenfield
from whoosh.fields import COLUMN, ID, KEYWORD, STORED, TEXT, Schema
from whoosh.matching.wrappers import FilterMatcher
from whoosh.columns import NumericColumn, TranslatingColumnReader
from whoosh.util.numeric import byte_to_length

from app.search.analysis import ANALYSIS_VERSION, BigramTokenizer, JapaneseWordTokenizer
from app.search.bulk import bulk_writer
from app.search.postings_file import EXTENSION, POSTINGS_FILES, PostingsFile, term_key

# Whoosh names segments and temporary files with the ``random`` module. Forked server workers
# share its state (and tests that seed it repeat it), so two writers can pick the same segment
# name and read each other's half-written files. Names come from the OS instead.
import random as _random  # noqa: E402
import whoosh.util as _whoosh_util  # noqa: E402

_whoosh_util.random = _random.SystemRandom()

CURRENT = "CURRENT"
ANALYSIS = "ANALYSIS"   # in each generation: the analysis version its terms were made with
LOCK = "write.lock"
LOCK_TIMEOUT_SECONDS = 60


def _number_column() -> COLUMN:
    """An unsigned number per document, read as a column only (sorting, date filters, case ids).
    Not indexed: a NUMERIC field adds 16 terms per value for range queries nobody makes here."""
    return COLUMN(NumericColumn("Q", default=2**64 - 1))


def build_schema() -> Schema:
    """Word fields for ranking (title and tags > resolution > the rest), bigrams for unknown
    words, and the fields the permission filter, filters and facets use."""
    words = JapaneseWordTokenizer()
    return Schema(
        id=ID(stored=True, unique=True),
        case_id=_number_column(),
        title=TEXT(analyzer=words, phrase=False),
        body=TEXT(analyzer=words, phrase=False),
        resolution=TEXT(analyzer=words, phrase=False),
        ngram=TEXT(analyzer=BigramTokenizer(), phrase=False),
        tag=KEYWORD(commas=True),
        category=ID(),
        municipality=ID(),   # the owner, for the permission filter only
        owner=ID(),          # the owner as readers may see it: "anon" for an anonymous case
        visibility=ID(),
        published=_number_column(),
        signature=STORED(),
    )


def _field_types(schema: Schema) -> dict[str, str]:
    return {name: type(field).__name__ for name, field in schema.items()}


K1, B = 1.2, 0.75  # BM25 parameters (Whoosh's defaults)
_LENGTHS = np.array([byte_to_length(b) or 0 for b in range(256)], dtype=np.float32)


def _posting_arrays(matcher) -> tuple[np.ndarray, np.ndarray]:
    """Document numbers and term frequencies of a posting list, decoded a block at a time with
    numpy (much faster than Whoosh's posting-at-a-time matcher, which stays the fallback)."""
    fast = isinstance(matcher, W3LeafMatcher) and hasattr(matcher, "_next_block") and not matcher._byteids
    if not fast:
        ids, weights = [], []
        while matcher.is_active():
            ids.append(matcher.id())
            weights.append(matcher.weight())
            matcher.next()
        return np.array(ids, dtype=np.int64), np.array(weights, dtype=np.float32)
    id_parts, weight_parts = [], []
    while matcher.is_active():
        if matcher._data is None:
            matcher._read_data()
        count = matcher._blocklength
        id_parts.append(np.cumsum(np.asarray(matcher._data[0], dtype=np.int64)))
        raw = matcher._data[1]
        if raw is None:
            weight_parts.append(np.ones(count, dtype=np.float32))
        elif isinstance(raw, float):
            weight_parts.append(np.full(count, raw, dtype=np.float32))
        else:
            weight_parts.append(np.asarray(raw, dtype=np.float32))
        matcher._next_block()
    if not id_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return np.concatenate(id_parts), np.concatenate(weight_parts)


def _numeric_column(column, doccount: int) -> np.ndarray:
    """All values of a fixed-size numeric Whoosh column at once (or value by value otherwise)."""
    raw_reader = column.raw_column() if isinstance(column, TranslatingColumnReader) else column
    if isinstance(raw_reader, NumericColumn.Reader) and column is raw_reader:
        dtype = np.dtype(raw_reader._typecode).newbyteorder(">")
        data = raw_reader._dbfile.get(raw_reader._basepos, raw_reader._count * raw_reader._fixedlen)
        values = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))
        out = np.full(doccount, raw_reader._default, dtype=values.dtype)
        out[: len(values)] = values[:doccount]
        return out
    # Value by value: a document without a value reads as the column's "missing" default, which
    # Whoosh sets to the field's maximum (NUMERIC: "int fields default to the maximum representable
    # value"), 2**64 - 1 for our unsigned 64-bit columns: beyond int64 (an OverflowError under load,
    # while publishes were written). It becomes -1 (no case, no date), as the fast path above gives
    # (the same bits read as int64).
    limit = np.iinfo(np.int64).max
    values = np.fromiter((v if isinstance(v, int) and 0 <= v <= limit else -1 for v in column), dtype=np.int64)
    out = np.full(doccount, -1, dtype=np.int64)
    out[: min(len(values), doccount)] = values[:doccount]
    return out


class SegmentArrays:
    """What never changes in a Whoosh segment, shared by every reader of the process: postings of
    terms, field lengths and numeric columns, as numpy arrays over the segment's own document
    numbers. A new index version (a publish, an edit) adds or merges a few small segments and
    changes deletions; the large old segments keep their arrays, so the first search after a
    write decodes only what is new. Bounded (least recently used dropped first)."""

    def __init__(self, limit_bytes: int = 384 * 1024 * 1024):
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._held = 0
        self._limit = limit_bytes
        self._lock = threading.Lock()

    def get(self, key: tuple, compute):
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        value = compute()
        size = getattr(value, "nbytes", 64)
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._held += size
            while self._held > self._limit and len(self._items) > 1:
                _old_key, old = self._items.popitem(last=False)
                self._held -= getattr(old, "nbytes", 64)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._held = 0

    def set_limit(self, limit_bytes: int) -> None:
        with self._lock:
            self._limit = limit_bytes


SEGMENT_ARRAYS = SegmentArrays()

# What one process's ReaderCache may hold (postings, masks, per-scope scores of the current index
# version); ``configure_caches`` sets it from SEARCH_CACHE_MB.
READER_CACHE_BYTES = 384 * 1024 * 1024


def configure_caches(reader_cache_mb: int, segment_arrays_mb: int) -> None:
    """Memory budgets of the two per-process caches (SEARCH_CACHE_MB, SEARCH_SEGMENT_CACHE_MB)."""
    global READER_CACHE_BYTES
    READER_CACHE_BYTES = max(16, int(reader_cache_mb)) * 1024 * 1024
    SEGMENT_ARRAYS.set_limit(max(16, int(segment_arrays_mb)) * 1024 * 1024)


def _segment_key(leaf) -> str | None:
    segment = leaf.segment() if hasattr(leaf, "segment") else None
    storage = getattr(leaf, "_storage", None)
    folder = getattr(getattr(storage, "b", storage), "folder", None) or getattr(storage, "folder", None)
    if segment is None or folder is None:
        return None
    return f"{folder}/{segment.segment_id()}"


def _postings_file(leaf) -> PostingsFile | None:
    """The segment's postings file (``postings_file``), if it has a usable one."""
    segment = _segment_key(leaf)
    return POSTINGS_FILES.of(segment + EXTENSION, leaf.doc_count_all()) if segment is not None else None


_NO_POSTINGS = (np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.float32))


class ReaderCache:
    """What one reader (one index version) knows, as arrays over its document numbers, computed
    once: postings of terms, masks of filter values, publication dates, case ids, keyed by terms
    and values only. Anything statistical (BM25 impacts) is computed in a ScopedView, over the
    documents one permission scope allows. Bounded in memory (least recently used dropped first)."""

    def __init__(self, searcher, limit_bytes: int | None = None):
        self.searcher = searcher
        self.reader = searcher.reader()
        self.leaves = list(self.reader.leaf_readers()) if self.reader.doc_count_all() else []
        self.size = self.reader.doc_count_all()
        self._memo: OrderedDict[tuple, object] = OrderedDict()
        self._holders: dict[int, int] = {}   # id(value) -> how many keys hold it (counted once)
        self._held = 0
        self._limit = READER_CACHE_BYTES if limit_bytes is None else limit_bytes
        self._lock = threading.Lock()
        self.computed = 0   # values computed (a measure of how well the budget fits: bench/)
        # One cache (and one Whoosh reader) serves every thread of the process: Whoosh readers
        # seek and read shared file objects, so whatever reads the index holds this lock.
        self.reader_lock = threading.RLock()

    # --- memory ---------------------------------------------------------------------------
    def memo(self, key: tuple, compute):
        """The value remembered under ``key``, else ``compute()`` remembered. Least recently used
        entries go first when the budget is full (the reader's own arrays and a scope's mask are
        used by every request and stay); a value held under several keys (a word that is just its
        exact form) counts once."""
        with self._lock:
            cached = self._memo.get(key)
            if cached is not None:
                self._memo.move_to_end(key)
                return cached
        value = compute()
        self.computed += 1
        if value is None:
            return value
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            holders = self._holders.get(id(value), 0)
            size = 0 if holders else getattr(value, "nbytes", 64)
            while self._memo and self._held + size > self._limit:
                _old_key, old = self._memo.popitem(last=False)
                self._release(old)
            self._memo[key] = value
            self._holders[id(value)] = holders + 1
            self._held += size
        return value

    def _release(self, value) -> None:
        left = self._holders.pop(id(value)) - 1
        if left:
            self._holders[id(value)] = left
        else:
            self._held -= getattr(value, "nbytes", 64)

    @property
    def held_bytes(self) -> int:
        return self._held

    # --- per-document arrays --------------------------------------------------------------
    def _leaf_array(self, leaf, key: tuple, compute):
        """A per-segment array, shared across index versions when the segment is known."""
        def locked():
            with self.reader_lock:
                return compute()
        segment = _segment_key(leaf)
        return locked() if segment is None else SEGMENT_ARRAYS.get((segment, *key), locked)

    def _concat(self, name: str) -> np.ndarray:
        out = np.zeros(self.size, dtype=np.int64)
        for leaf, offset in self.leaves:
            count = leaf.doc_count_all()
            out[offset: offset + count] = self._leaf_array(
                leaf, ("column", name), lambda: _numeric_column(leaf.column_reader(name, translate=False), count))
        return out

    def live(self) -> np.ndarray:
        def compute():
            mask = np.ones(self.size, dtype=bool)
            with self.reader_lock:
                for leaf, offset in self.leaves:
                    if leaf.has_deletions():
                        deleted = np.fromiter(leaf.deleted_docs_set, dtype=np.int64)
                        mask[deleted + offset] = False
            return mask
        return self.memo(("live",), compute)

    def published(self) -> np.ndarray:
        return self.memo(("published",), lambda: self._concat("published"))

    def case_ids(self) -> np.ndarray:
        return self.memo(("case_ids",), lambda: self._concat("case_id"))

    def lengths(self, fieldname: str) -> np.ndarray:
        def compute():
            out = np.zeros(self.size, dtype=np.float32)
            for leaf, offset in self.leaves:
                count = leaf.doc_count_all()

                def leaf_lengths(leaf=leaf, count=count):
                    column = leaf._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
                    if column is None:
                        return np.zeros(count, dtype=np.float32)
                    return _LENGTHS[_numeric_column(column, count).astype(np.int64)]
                out[offset: offset + count] = self._leaf_array(leaf, ("lengths", fieldname), leaf_lengths)
            return out
        return self.memo(("lengths", fieldname), compute)

    # --- terms ----------------------------------------------------------------------------
    def postings(self, fieldname: str, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Document numbers (live ones) and term frequencies of one term."""
        def compute():
            id_parts, weight_parts = [], []
            key = None
            for leaf, offset in self.leaves:
                def leaf_postings(leaf=leaf):
                    if (fieldname, text) not in leaf:
                        return _Postings(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
                    matcher = leaf.postings(fieldname, text)
                    if isinstance(matcher, FilterMatcher):
                        matcher = matcher.child  # deletions are removed below, all at once
                    return _Postings(*_posting_arrays(matcher))
                arrays = _postings_file(leaf)
                if arrays is not None:   # written by the bulk writer: a lookup, no decoding, no lock
                    if key is None:
                        key = term_key(fieldname, self.reader.schema[fieldname].to_bytes(text))
                    ids, weights = arrays.get(key) or _NO_POSTINGS
                    found = _Postings(ids.astype(np.int64), weights)
                else:
                    found = self._leaf_array(leaf, ("postings", fieldname, text), leaf_postings)
                if len(found.ids):
                    id_parts.append(found.ids + offset)
                    weight_parts.append(found.weights)
            id_array = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
            weight_array = np.concatenate(weight_parts) if weight_parts else np.zeros(0, dtype=np.float32)
            if len(id_array):
                keep = self.live()[id_array]
                id_array, weight_array = id_array[keep], weight_array[keep]
            return _Postings(id_array, weight_array)
        found = self.memo(("postings", fieldname, text), compute)
        return found.ids, found.weights

    def mask(self, fieldname: str, text: str) -> np.ndarray:
        def compute():
            out = np.zeros(self.size, dtype=bool)
            out[self.postings(fieldname, text)[0]] = True
            return out
        return self.memo(("mask", fieldname, text), compute)

    def scoped(self, key: tuple, allowed) -> ScopedView:
        """The documents one reader may see (``allowed()``: a mask, or None for all), as a view whose
        statistics are computed over those documents only."""
        def compute():
            mask = allowed()
            live = self.live()
            return ScopedView(self, key, live.copy() if mask is None else (mask & live))
        return self.memo(("view", key), compute)

    def longer_terms(self, fieldnames: tuple[str, ...], prefix: str) -> list[str]:
        """Terms of these fields that start with ``prefix`` and are longer (every one: which of them
        count is decided per reader, from their documents)."""
        def compute():
            found: set[str] = set()
            with self.reader_lock:
                terms = [t for fieldname in fieldnames for t in self.reader.expand_prefix(fieldname, prefix)]
            for term in terms:
                term = term.decode("utf-8") if isinstance(term, bytes) else term
                if term != prefix:
                    found.add(term)
            return _Terms(sorted(found))
        return self.memo(("longer", fieldnames, prefix), compute).terms

    def values(self, fieldname: str) -> list[str]:
        with self.reader_lock:
            found = list(self.reader.lexicon(fieldname))
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in found]

    def codes(self, fieldname: str) -> tuple[list[str], np.ndarray]:
        """Each document's value of a one-valued field, as an index into the returned values."""
        def compute():
            values = self.values(fieldname)
            out = np.full(self.size, len(values), dtype=np.int32)
            for index, value in enumerate(values):
                out[self.postings(fieldname, value)[0]] = index
            return _Codes(values, out)
        found = self.memo(("codes", fieldname), compute)
        return found.values, found.codes


class ScopedView:
    """What one reader's search may depend on: the documents of its permission scope and BM25
    statistics (document frequencies, document count, average lengths) computed over those
    documents alone. So whether a word is "known" (else its n-grams are used), every score, and
    every threshold derived from them are the same whatever cases the reader may not see.

    It offers the part of ReaderCache that queries use (``impacts``, ``memo``, ``size``); its memo
    entries are keyed by the scope, so two scopes never share a statistic."""

    def __init__(self, cache: ReaderCache, key: tuple, allowed: np.ndarray):
        self.cache = cache
        self.key = key
        self.allowed = allowed
        self.size = cache.size
        self.count = int(np.count_nonzero(allowed))

    @property
    def nbytes(self) -> int:
        return self.allowed.nbytes

    def memo(self, key: tuple, compute):
        return self.cache.memo(("scoped", self.key, *key), compute)

    def scores_memo(self, key: tuple, compute, sparse: bool = False):
        """A per-document score array (float32, 0 where absent), remembered as its non-zero
        entries: most terms match few documents, and kept dense (400 KB each at 100,000 cases)
        the words of a few case pages filled the cache, so every page computed them again.
        Each call returns a fresh array the caller may change; ``sparse=True``: the remembered
        non-zero entries themselves (``ids``, ``values``; do not change them)."""
        def remembered():
            found = compute()
            return found if isinstance(found, SparseScores) else SparseScores.of(found)
        found = self.memo(key, remembered)
        return found if sparse else found.dense(self.size)

    def average_length(self, fieldname: str) -> float:
        def compute():
            lengths = self.cache.lengths(fieldname)[self.allowed]
            return _Scalar(float(lengths.astype(np.float64).mean()) if len(lengths) else 0.0)
        return self.memo(("average", fieldname), compute).value or 1.0

    def impacts(self, fieldname: str, text: str, sparse: bool = False, remember: bool = True):
        """BM25 of one term in one field, per document of the scope (0 where absent or not allowed).
        ``remember=False``: computed, not kept (a caller that keeps what it makes of them)."""
        def compute():
            ids, tf = self.cache.postings(fieldname, text)
            keep = self.allowed[ids]
            ids, tf = ids[keep], tf[keep]
            if not len(ids):
                return SparseScores(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
            idf = math.log(self.count / (len(ids) + 1)) + 1
            norm = K1 * ((1 - B) + B * self.cache.lengths(fieldname)[ids] / self.average_length(fieldname))
            return SparseScores(ids.astype(np.int32), (idf * (tf * (K1 + 1)) / (tf + norm)).astype(np.float32))
        if not remember:
            found = compute()
            return found if sparse else found.dense(self.size)
        return self.scores_memo(("impacts", fieldname, text), compute, sparse)


@dataclass
class _Terms:
    terms: list[str]

    @property
    def nbytes(self) -> int:
        return 64 + sum(len(t) * 4 for t in self.terms)


@dataclass
class SparseScores:
    """Scores of the documents that have one (``ids`` ascending, unique; ``values`` > 0)."""
    ids: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, scores: np.ndarray) -> "SparseScores":
        ids = np.flatnonzero(scores).astype(np.int32)
        return cls(ids, scores[ids].astype(np.float32))

    def dense(self, size: int) -> np.ndarray:
        out = np.zeros(size, dtype=np.float32)
        out[self.ids] = self.values
        return out

    def mask(self, size: int) -> np.ndarray:
        out = np.zeros(size, dtype=bool)
        out[self.ids] = True
        return out

    @property
    def nbytes(self) -> int:
        return 64 + self.ids.nbytes + self.values.nbytes


@dataclass
class _Scalar:
    value: float
    nbytes: int = 8


@dataclass
class _Postings:
    ids: np.ndarray
    weights: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.weights.nbytes


@dataclass
class _Codes:
    values: list[str]
    codes: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes


@dataclass
class _Opened:
    generation: str
    index: whoosh_index.FileIndex
    stamp: tuple[int, int]


class IndexMissing(RuntimeError):
    """The index directory has no usable generation (deleted, or never built)."""


class SearchIndex:
    """One index root. ``searcher()`` is cheap to call on every request."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._opened: _Opened | None = None
        self._open_lock = threading.Lock()
        self._shared: tuple | None = None   # (index, searcher, ReaderCache) of the current version
        self._share_lock = threading.Lock()
        self._lock: FileLock | None = None

    # --- generations ----------------------------------------------------------------------
    def _current_file(self) -> Path:
        return self.root / CURRENT

    def current_generation(self) -> str | None:
        try:
            name = self._current_file().read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        return name or None

    def lock(self) -> FileLock:
        """The cross-process write lock (re-entrant within a thread)."""
        if self._lock is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.root / LOCK), timeout=LOCK_TIMEOUT_SECONDS)
        return self._lock

    def new_generation_dir(self) -> Path:
        name = f"g{time.time_ns()}"
        path = self.root / name
        path.mkdir(parents=True)
        whoosh_index.create_in(str(path), build_schema())
        (path / ANALYSIS).write_text(str(ANALYSIS_VERSION), encoding="ascii")
        return path

    def switch_to(self, generation_dir: Path) -> None:
        """Make ``generation_dir`` current (atomic rename); call with the write lock held."""
        tmp = self.root / f"{CURRENT}.{os.getpid()}.tmp"
        tmp.write_text(generation_dir.name, encoding="ascii")
        os.replace(tmp, self._current_file())

    def has_generation(self) -> bool:
        generation = self.current_generation()
        return bool(generation) and (self.root / generation).is_dir()

    def ensure(self) -> str:
        """The current generation; ``IndexMissing`` when there is none (``sync.ready_index`` decides
        whether an empty one may be made: only when nothing would be missing from it)."""
        generation = self.current_generation()
        if generation and (self.root / generation).is_dir():
            return generation
        raise IndexMissing(str(self.root))

    def create_empty(self) -> str:
        """Make an empty generation current (call with the write lock held)."""
        path = self.new_generation_dir()
        self.switch_to(path)
        return path.name

    def schema_outdated(self) -> bool:
        """Whether the current generation was built with other fields, or by another version of the
        text analysis, than this code uses (after such an upgrade: ``flask search reindex``)."""
        generation = self.current_generation()
        if not generation or not (self.root / generation).is_dir():
            return False
        try:
            version = (self.root / generation / ANALYSIS).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            version = ""
        if version != str(ANALYSIS_VERSION):
            return True
        attempts = 0
        while True:
            try:
                index = whoosh_index.open_dir(str(self.root / generation))
                return _field_types(index.schema) != _field_types(build_schema())
            except FileNotFoundError:
                # Another process committed between Whoosh listing the folder and opening the newest
                # table of contents, and removed it (seen under load): read the newer one.
                attempts += 1
                if attempts == 5:
                    raise
                time.sleep(0.01)

    def lacks_postings_files(self) -> bool:
        """Whether the current generation's largest segment has no postings file (written before
        they existed). It is searched all the same, only slower: ``search reindex --if-outdated``
        rebuilds it (``make run`` and the systemd unit run that), nothing else refuses it."""
        generation = self.current_generation()
        if not generation or not (self.root / generation).is_dir():
            return False
        try:
            segments = whoosh_index.open_dir(str(self.root / generation))._segments()
        except (FileNotFoundError, whoosh_index.EmptyIndexError):
            return False
        if not segments:
            return False
        largest = max(segments, key=lambda segment: segment.doc_count_all())
        try:
            PostingsFile(str(self.root / generation / largest.make_filename(EXTENSION)), largest.doc_count_all()).close()
        except (OSError, ValueError, struct.error):   # none, or not usable
            return True
        return False

    def prune_generations(self, keep: int = 2) -> None:
        """Remove old generations, keeping the current one and ``keep - 1`` before it."""
        current = self.current_generation()
        generations = sorted(p for p in self.root.glob("g*") if p.is_dir())
        old = [p for p in generations if p.name != current][: max(0, len(generations) - keep)]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)

    # --- reading --------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int]:
        try:
            st = self._current_file().stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_ino)

    def open_index(self) -> whoosh_index.FileIndex:
        stamp = self._stamp()
        opened = self._opened
        if opened is not None and opened.stamp == stamp:
            return opened.index
        with self._open_lock:
            generation = self.ensure()
            stamp = self._stamp()
            index = whoosh_index.open_dir(str(self.root / generation))
            self._opened = _Opened(generation, index, stamp)
            return index

    def searcher(self):
        """A searcher of its own, for a caller that walks the whole index (``search check``): the
        shared one of ``reading()`` may be read only through its ReaderCache, under its lock."""
        searcher = self.open_index().searcher()
        weakref.finalize(searcher, _close_quietly, searcher.ixreader)
        return searcher

    def reading(self):
        """The process's searcher of the current index version and its ReaderCache, renewed when
        the index changed (in any process: a commit, or a new generation from a reindex).

        One per process, not per thread: a new version (every publish) makes each cache start
        again, and with a cache per thread each of a worker's threads paid that again."""
        index = self.open_index()
        cached = self._shared
        if cached is not None and cached[0] is index and self._current_version(cached[1]):
            return cached[1], cached[2]
        with self._share_lock:
            cached = self._shared
            if cached is not None and cached[0] is index and self._current_version(cached[1]):
                return cached[1], cached[2]
            # A new searcher, not ``refresh()``: Whoosh's refresh reuses segment readers by segment
            # id and so keeps their old deletions (an updated or removed case would stay visible).
            # The old one is not closed here: a request of another thread may still be reading it.
            # Segment files stay open while a searcher lives and are closed when it is collected.
            searcher = index.searcher()
            weakref.finalize(searcher, _close_quietly, searcher.ixreader)
            cache = ReaderCache(searcher)
            self._shared = (index, searcher, cache)
            # postings files of segments this version no longer has are let go (disk space, pages)
            segments = [_segment_key(leaf) for leaf, _offset in cache.leaves]
            POSTINGS_FILES.retain(str(self.root), [s + EXTENSION for s in segments if s is not None])
            return searcher, cache

    @staticmethod
    def _current_version(searcher) -> bool:
        """Whether no commit happened since this searcher was opened (Whoosh lists the folder)."""
        try:
            return searcher.up_to_date()
        except Exception:   # the generation folder removed under it by a reindex
            return False

    # --- writing --------------------------------------------------------------------------
    @contextmanager
    def writer(self, generation: str | None = None, procs: int = 1):
        """A Whoosh writer on the current generation; hold ``lock()`` around it. With ``procs`` > 1,
        documents are analysed and written by that many processes (one new segment each)."""
        name = generation or self.ensure()
        index = whoosh_index.open_dir(str(self.root / name))
        writer = bulk_writer(index, procs)
        try:
            yield writer
        except BaseException:
            if not writer.is_closed:
                writer.cancel()
            raise
        else:
            if not writer.is_closed:   # the caller cancelled it: nothing to write
                writer.commit()

    def size_bytes(self) -> int:
        generation = self.current_generation()
        if not generation:
            return 0
        return sum(f.stat().st_size for f in (self.root / generation).iterdir() if f.is_file())


def _close_quietly(reader) -> None:
    try:
        reader.close()
    except Exception:  # already closed, or its files removed by a reindex
        pass


_indexes: dict[str, SearchIndex] = {}
_indexes_lock = threading.Lock()


def forget_indexes() -> None:
    """Drop every process-wide index object (tests that delete an index directory use this); their
    searchers close their files as they are collected."""
    with _indexes_lock:
        _indexes.clear()
    SEGMENT_ARRAYS.clear()
    import gc

    gc.collect()


def get_index(root: str | os.PathLike) -> SearchIndex:
    """The process-wide ``SearchIndex`` for a root (so searchers are reused across requests)."""
    key = str(Path(root).resolve())
    with _indexes_lock:
        if key not in _indexes:
            _indexes[key] = SearchIndex(key)
        return _indexes[key]

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
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, TEXT, Schema
from whoosh.matching.wrappers import FilterMatcher

from app.search.analysis import BigramTokenizer, JapaneseWordTokenizer

CURRENT = "CURRENT"
LOCK = "write.lock"
LOCK_TIMEOUT_SECONDS = 60


def build_schema() -> Schema:
    """Word fields for ranking (title and tags > resolution > the rest), bigrams for unknown
    words, and the fields the permission filter, filters and facets use."""
    words = JapaneseWordTokenizer()
    return Schema(
        id=ID(stored=True, unique=True, sortable=True),
        title=TEXT(analyzer=words, phrase=False),
        body=TEXT(analyzer=words, phrase=False),
        resolution=TEXT(analyzer=words, phrase=False),
        ngram=TEXT(analyzer=BigramTokenizer(), phrase=False),
        tag=KEYWORD(commas=True),
        category=ID(),
        municipality=ID(),
        visibility=ID(),
        published=NUMERIC(int, bits=64, signed=False, sortable=True),
        signature=STORED(),
    )


WORD_FIELDS = ("title", "body", "resolution")


K1, B = 1.2, 0.75  # BM25 parameters (Whoosh's defaults)


def _blocks(matcher):
    """(ids, weights) of a posting list, a block at a time (several times faster than walking
    Whoosh's matcher one posting at a time; falls back to that for other matcher types)."""
    if not isinstance(matcher, W3LeafMatcher) or not hasattr(matcher, "_next_block"):
        ids, weights = [], []
        while matcher.is_active():
            ids.append(matcher.id())
            weights.append(matcher.weight())
            matcher.next()
        yield ids, weights
        return
    while matcher.is_active():
        if matcher._ids is None:
            matcher._read_ids()
        if matcher._weights is None:
            matcher._read_weights()
        start = matcher._i
        yield matcher._ids[start:], matcher._weights[start:]
        matcher._next_block()


def _leaf_ids(matcher) -> list[int]:
    """Every id of a posting list, a block at a time (several times faster than all_ids())."""
    if not isinstance(matcher, W3LeafMatcher) or not hasattr(matcher, "_next_block"):
        return list(matcher.all_ids())
    ids: list[int] = []
    while matcher.is_active():
        if matcher._ids is None:
            matcher._read_ids()
        ids.extend(matcher._ids[matcher._i:] if matcher._i else matcher._ids)
        matcher._next_block()
    return ids


class ReaderCache:
    """What one reader (one index version) knows, computed once: document sets of terms and
    filter values, BM25 impacts of terms, the newest-first order. Keyed by terms and values
    only, never by user: the permission filter is applied to these sets on every search.
    Bounded by the number of entries held (oldest dropped first)."""

    def __init__(self, searcher, limit: int = 3_000_000):
        self.searcher = searcher
        self.reader = searcher.reader()
        self._sets: dict[tuple, object] = {}
        self._held = 0
        self._limit = limit
        self._lock = threading.Lock()
        self._newest: list[int] | None = None
        self._doc_count = self.reader.doc_count_all()

    def _store(self, key: tuple, value):
        size = len(value) if hasattr(value, "__len__") else 1
        with self._lock:
            while self._sets and self._held + size > self._limit:
                old_key = next(iter(self._sets))
                old = self._sets.pop(old_key)
                self._held -= len(old) if hasattr(old, "__len__") else 1
            self._sets[key] = value
            self._held += size
        return value

    def impacts(self, fieldname: str, text: str) -> dict[int, float]:
        """BM25 of one term in one field, per document (unweighted by field)."""
        key = ("impact", fieldname, text)
        cached = self._sets.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        df = self.reader.doc_frequency(fieldname, text)
        scores: dict[int, float] = {}
        if df:
            idf = math.log(self._doc_count / (df + 1)) + 1
            average = (self.reader.field_length(fieldname) / (self._doc_count or 1)) or 1.0
            for leaf, offset in self.reader.leaf_readers():
                if (fieldname, text) not in leaf:
                    continue
                matcher = leaf.postings(fieldname, text)
                deleted = ()
                if isinstance(matcher, FilterMatcher):
                    matcher = matcher.child
                    deleted = leaf.deleted_docs_set
                length_of = leaf._perdoc.doc_field_length_reader(fieldname)
                for ids, weights in _blocks(matcher):
                    for d, tf in zip(ids, weights):
                        if deleted and d in deleted:
                            continue
                        norm = K1 * ((1 - B) + B * (length_of(d) or 0) / average)
                        scores[d + offset] = idf * (tf * (K1 + 1)) / (tf + norm)
        return self._store(key, scores)  # type: ignore[return-value]

    def term(self, fieldname: str, text: str) -> frozenset[int]:
        key = (fieldname, text)
        cached = self._sets.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        docs: set[int] = set()
        for leaf, offset in self.reader.leaf_readers():
            if (fieldname, text) not in leaf:
                continue
            matcher = leaf.postings(fieldname, text)
            if isinstance(matcher, FilterMatcher):
                matcher = matcher.child
            ids = _leaf_ids(matcher)
            docs.update(ids if not offset else (i + offset for i in ids))
            deleted = leaf.deleted_docs_set if leaf.has_deletions() else ()
            if deleted:
                docs.difference_update(d + offset for d in deleted)
        return self._store(key, frozenset(docs))

    def memo(self, key: tuple, compute):
        """A value computed once per reader: frozen if it is a set, kept as is otherwise."""
        cached = self._sets.get(key)
        if cached is None:
            value = compute()
            if isinstance(value, (set, list, tuple)) or not hasattr(value, "get"):
                value = frozenset(value)
            cached = self._store(key, value)
        return cached

    def case_id(self, docnum: int) -> int:
        return int(self._ids[docnum])

    @property
    def _ids(self):
        column = getattr(self, "_id_column", None)
        if column is None:
            column = self._id_column = self.reader.column_reader("id")
        return column

    def values(self, fieldname: str) -> list[str]:
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in self.reader.lexicon(fieldname)]

    def live_docs(self) -> frozenset[int]:
        return self.memo(("*live*",), self.reader.all_doc_ids)

    def published(self) -> list[int]:
        """Publication time (epoch seconds) per document number."""
        column = getattr(self, "_published", None)
        if column is None:
            column = self._published = self.reader.column_reader("published")
        return column

    def newest_first(self) -> list[int]:
        """Live documents by publication date, newest first, then case id (stable)."""
        if self._newest is None:
            published = self.reader.column_reader("published")
            ids = self._ids
            self._newest = sorted(self.live_docs(), key=lambda d: (-published[d], int(ids[d])))
        return self._newest


@dataclass
class _Opened:
    generation: str
    index: whoosh_index.FileIndex
    stamp: tuple[int, int]


class SearchIndex:
    """One index root. ``searcher()`` is cheap to call on every request."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._opened: _Opened | None = None
        self._open_lock = threading.Lock()
        self._local = threading.local()
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
        return path

    def switch_to(self, generation_dir: Path) -> None:
        """Make ``generation_dir`` current (atomic rename); call with the write lock held."""
        tmp = self.root / f"{CURRENT}.{os.getpid()}.tmp"
        tmp.write_text(generation_dir.name, encoding="ascii")
        os.replace(tmp, self._current_file())

    def ensure(self) -> str:
        """The current generation, creating an empty index if there is none."""
        generation = self.current_generation()
        if generation and (self.root / generation).is_dir():
            return generation
        with self.lock():
            generation = self.current_generation()
            if generation and (self.root / generation).is_dir():
                return generation
            path = self.new_generation_dir()
            self.switch_to(path)
            return path.name

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
        return self.reading()[0]

    def reading(self):
        """This thread's searcher and its ReaderCache, renewed when the index changed (in any
        process: a commit, or a new generation from a reindex)."""
        index = self.open_index()
        cached = getattr(self._local, "reading", None)
        if cached is not None and cached[0] is index and cached[1].up_to_date():
            return cached[1], cached[2]
        if cached is not None:
            cached[1].close()
        # A new searcher, not ``refresh()``: Whoosh's refresh reuses segment readers by segment
        # id and so keeps their old deletions (an updated or removed case would stay visible).
        searcher = index.searcher()
        cache = ReaderCache(searcher)
        self._local.reading = (index, searcher, cache)
        return searcher, cache

    # --- writing --------------------------------------------------------------------------
    @contextmanager
    def writer(self, generation: str | None = None):
        """A Whoosh writer on the current generation; hold ``lock()`` around it."""
        name = generation or self.ensure()
        index = whoosh_index.open_dir(str(self.root / name))
        writer = index.writer()
        try:
            yield writer
        except BaseException:
            writer.cancel()
            raise
        else:
            writer.commit()

    def size_bytes(self) -> int:
        generation = self.current_generation()
        if not generation:
            return 0
        return sum(f.stat().st_size for f in (self.root / generation).iterdir() if f.is_file())


_indexes: dict[str, SearchIndex] = {}
_indexes_lock = threading.Lock()


def get_index(root: str | os.PathLike) -> SearchIndex:
    """The process-wide ``SearchIndex`` for a root (so searchers are reused across requests)."""
    key = str(Path(root).resolve())
    with _indexes_lock:
        if key not in _indexes:
            _indexes[key] = SearchIndex(key)
        return _indexes[key]

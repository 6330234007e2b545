"""The Whoosh index on disk.

Layout under ``SEARCH_INDEX_DIR``::

    CURRENT          name of the generation in use (replaced atomically by a reindex)
    write.lock       one writer at a time across every process (gunicorn workers, CLI)
    g<timestamp>/    a complete Whoosh index

Readers in every process notice a new generation (CURRENT changed) or new segments (a commit
by another process) and reopen their searcher. Searchers are reused, one per thread.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from whoosh import index as whoosh_index
from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, TEXT, Schema

from app.search.analysis import BigramTokenizer, JapaneseWordTokenizer

CURRENT = "CURRENT"
LOCK = "write.lock"
LOCK_TIMEOUT_SECONDS = 60


def build_schema() -> Schema:
    words = JapaneseWordTokenizer()
    return Schema(
        id=ID(stored=True, unique=True),
        title=TEXT(analyzer=words, phrase=False),
        body=TEXT(analyzer=words, phrase=False),
        resolution=TEXT(analyzer=words, phrase=False),
        tags=TEXT(analyzer=words, phrase=False),
        ngram=TEXT(analyzer=BigramTokenizer(), phrase=True),
        tag=KEYWORD(commas=True),
        category=ID(sortable=True),
        municipality=ID(sortable=True),
        visibility=ID(),
        published=NUMERIC(int, bits=64, signed=False, sortable=True),
        signature=STORED(),
    )


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
        """A searcher for this thread, refreshed when the index changed (any process)."""
        index = self.open_index()
        cached = getattr(self._local, "searcher", None)
        if cached is not None and cached[0] is index:
            searcher = cached[1]
            if not searcher.up_to_date():
                # A new searcher, not ``refresh()``: Whoosh's refresh reuses segment readers by
                # segment id and so keeps their old deletions (an updated or removed case would
                # stay visible). Tested in test_search.py.
                searcher.close()
                searcher = index.searcher()
                self._local.searcher = (index, searcher)
            return searcher
        if cached is not None:
            cached[1].close()
        searcher = index.searcher()
        self._local.searcher = (index, searcher)
        return searcher

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

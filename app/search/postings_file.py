"""A segment's postings as plain arrays on disk, beside Whoosh's own files, read through ``mmap``.

Whoosh stores a posting list as compressed, pickled blocks: every process that searches decodes
each term it needs (decompress, unpickle, convert) and keeps the arrays in its own memory, one
copy per server worker, and only one thread of a process may read Whoosh's files at a time. The
bulk writer (``bulk.py``) has every term's document numbers and frequencies in memory when it
writes a segment; it also writes them here, uncompressed, so a search finds a term's postings
with one lookup and two slices of a file the operating system keeps once for all workers.

The file is derived data, like the whole index: a segment without one (written by an older
version, or by Whoosh itself) is read from Whoosh's blocks as before, and so is a file that does
not look right. It is named after its segment (``MAIN_<id>.npp``), so Whoosh deletes it with the
segment when segments are merged away.

Layout (little-endian, sections aligned to 8 bytes):

    header   magic, term count, posting count, key bytes, weight type (0: uint16, 1: float32)
    hashes   uint64[terms]      64-bit hash of each key, ascending
    starts   uint64[terms + 1]  where each term's postings start (in hash order)
    keys     uint64[terms + 1]  where each key starts in the key bytes
    key bytes                   b"<field>\\x00<term bytes>" of every term, in hash order
    ids      uint32[postings]   document numbers within the segment, ascending per term
    weights  uint16 or float32[postings]  term frequencies

A lookup compares the key's bytes too, so two keys with the same hash cannot be confused.
"""
from __future__ import annotations

import hashlib
import logging
import mmap
import os
import struct
import threading
from collections import OrderedDict

import numpy as np

log = logging.getLogger(__name__)

EXTENSION = ".npp"
MAGIC = b"HDPOST01"
_HEADER = struct.Struct("<8sQQQQ")   # magic, terms, postings, key bytes, weight type
_HEADER_SIZE = 64
_WEIGHT_TYPES = {0: np.dtype("<u2"), 1: np.dtype("<f4")}


def term_key(fieldname: str, tbytes: bytes) -> bytes:
    return fieldname.encode("utf-8") + b"\x00" + tbytes


def _hash(key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def _padding(size: int) -> bytes:
    return b"\x00" * (-size % 8)


def write_postings_file(path: str, terms: list) -> None:
    """``terms``: ``(key, document numbers, frequencies)`` for every term of a segment (numbers
    ascending within a term; ``array("I")`` and ``array("f")`` or numpy arrays). Written to
    ``path`` whole or not at all (a temporary name first), a term at a time: a segment of twelve
    million postings needs no second copy of them in memory."""
    hashes = np.fromiter((_hash(key) for key, _docs, _weights in terms), dtype="<u8", count=len(terms))
    order = np.argsort(hashes, kind="stable")
    hashes = hashes[order]
    counts = np.fromiter((len(terms[i][1]) for i in order), dtype="<u8", count=len(terms))
    starts = np.zeros(len(terms) + 1, dtype="<u8")
    np.cumsum(counts, out=starts[1:])
    key_starts = np.zeros(len(terms) + 1, dtype="<u8")
    np.cumsum(np.fromiter((len(terms[i][0]) for i in order), dtype="<u8", count=len(terms)), out=key_starts[1:])
    # frequencies are whole numbers (a word's count in a field): two bytes each where they fit
    small = all(_small_whole_numbers(np.asarray(weights)) for _key, _docs, weights in terms)
    weight_type = 0 if small else 1
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "wb") as out:
            header = _HEADER.pack(MAGIC, len(terms), int(starts[-1]), int(key_starts[-1]), weight_type)
            out.write(header + b"\x00" * (_HEADER_SIZE - len(header)))
            for section in (hashes, starts, key_starts):
                out.write(section.tobytes())
            for i in order:
                out.write(terms[i][0])
            out.write(_padding(int(key_starts[-1])))
            for i in order:
                out.write(np.asarray(terms[i][1], dtype="<u4").tobytes())
            out.write(_padding(4 * int(starts[-1])))
            for i in order:
                out.write(np.asarray(terms[i][2]).astype(_WEIGHT_TYPES[weight_type]).tobytes())
            out.write(_padding(_WEIGHT_TYPES[weight_type].itemsize * int(starts[-1])))
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _small_whole_numbers(weights: np.ndarray) -> bool:
    return bool(np.all((weights >= 0) & (weights <= 65535) & (weights == np.floor(weights))))


class PostingsFile:
    """One segment's postings file, mapped read-only. Safe to use from several threads."""

    def __init__(self, path: str, doc_count: int | None = None):
        """``doc_count``: the segment's number of documents; a file naming a document beyond it
        (damage, or a file copied from elsewhere) is refused: its postings would point into the
        next segment's documents."""
        with open(path, "rb") as source:
            self._map = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            magic, terms, postings, key_length, weight_type = _HEADER.unpack_from(self._map, 0)
            if magic != MAGIC or weight_type not in _WEIGHT_TYPES:
                raise ValueError("not a postings file")
            sections = [("hashes", "<u8", terms), ("starts", "<u8", terms + 1), ("keys", "<u8", terms + 1),
                        ("key_bytes", "u1", key_length), ("ids", "<u4", postings),
                        ("weights", _WEIGHT_TYPES[weight_type], postings)]
            offset = _HEADER_SIZE
            for name, dtype, count in sections:
                dtype = np.dtype(dtype)
                size = dtype.itemsize * count
                if offset + size > len(self._map):
                    raise ValueError("postings file is shorter than its header says")
                setattr(self, f"_{name}", np.frombuffer(self._map, dtype=dtype, count=count, offset=offset))
                offset += size + (-size % 8)
            self._key_offset = _HEADER_SIZE + 8 * (3 * terms + 2)
            if (int(self._starts[0]) or int(self._keys[0]) or int(self._starts[-1]) != postings
                    or int(self._keys[-1]) != key_length):
                raise ValueError("postings file sections do not add up")
            if terms and (np.any(self._hashes[1:] < self._hashes[:-1]) or np.any(self._starts[1:] < self._starts[:-1])
                          or np.any(self._keys[1:] < self._keys[:-1])):
                raise ValueError("postings file tables are out of order")
            if doc_count is not None and postings and int(self._ids.max()) >= doc_count:
                raise ValueError("postings file names documents the segment does not have")
        except BaseException:
            self.close()
            raise
        self.terms = terms

    def get(self, key: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        """Document numbers (uint32) and frequencies (float32) of the term ``key``, else None."""
        wanted = np.uint64(_hash(key))
        index = int(np.searchsorted(self._hashes, wanted))
        while index < self.terms and self._hashes[index] == wanted:
            start, end = int(self._keys[index]), int(self._keys[index + 1])
            if self._map[self._key_offset + start: self._key_offset + end] == key:
                first, last = int(self._starts[index]), int(self._starts[index + 1])
                return self._ids[first:last], self._weights[first:last].astype(np.float32)
            index += 1
        return None

    def close(self) -> None:
        for name in ("_hashes", "_starts", "_keys", "_key_bytes", "_ids", "_weights"):
            self.__dict__.pop(name, None)
        try:
            self._map.close()
        except BufferError:   # an array still points into it: the mapping goes with the last one
            pass


class PostingsFiles:
    """The postings files of the segments this process reads, opened once each (a segment without
    a usable file is remembered as such).

    Files are never closed here: a dropped one is unmapped when the last array of a search still
    reading it is gone. ``retain`` drops the files of segments the current index version no longer
    has (merged away, or an older generation after a reindex), so their disk space and pages are
    given back."""

    def __init__(self, limit: int = 256):
        self._files: OrderedDict[str, PostingsFile | None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def of(self, path: str, doc_count: int | None = None) -> PostingsFile | None:
        with self._lock:
            if path in self._files:
                self._files.move_to_end(path)
                return self._files[path]
        found = None
        if os.path.exists(path):
            try:
                found = PostingsFile(path, doc_count)
            except (ValueError, struct.error) as error:
                log.warning("postings file %s not used (%s): read from the index instead", path, error)
            except OSError as error:   # perhaps passing (no file descriptor left): tried again next time
                log.warning("postings file %s could not be opened (%s): read from the index instead", path, error)
                return None
        with self._lock:
            found = self._files.setdefault(path, found)   # another thread may have opened it meanwhile
            while len(self._files) > self._limit:
                self._files.popitem(last=False)
        return found

    def retain(self, folder: str, paths) -> None:
        """Of the files under ``folder`` (an index's root), keep only these."""
        keep, prefix = set(paths), folder.rstrip("/") + "/"
        with self._lock:
            for path in [p for p in self._files if p.startswith(prefix) and p not in keep]:
                del self._files[path]

    def clear(self) -> None:
        with self._lock:
            self._files.clear()


POSTINGS_FILES = PostingsFiles()

"""Writing many documents into Whoosh segments at once (a reindex, an import, a category rename).

Whoosh's own writer sends every posting through a sorting pool that pickles it to temporary runs
and merges them back, then hands the postings one at a time to the codec, looking up the
document's field length for each: at 100,000 cases that was more than half of a reindex. Here
postings are kept in memory per term (document numbers and weights in arrays, in the order the
documents were added, which is already sorted) and written a block at a time into the very
same codec objects, so the files are what Whoosh would have written (``tests/test_search_bulk``
compares both, term by term).

``BulkSegmentWriter`` is a drop-in ``SegmentWriter`` (deletions, merges of small segments and
the commit are Whoosh's). ``ParallelBulkWriter`` sends documents to worker processes that
analyse and write their own segments, bounded in memory; the parent deletes, merges and commits
them under its lock.
"""
from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import queue
import traceback
from array import array
from collections import Counter

from whoosh.codec.whoosh3 import W3Codec
from whoosh.formats import Frequency
from whoosh.system import pack_uint
from whoosh.writing import SegmentWriter

from app.search.postings_file import EXTENSION, term_key, write_postings_file

# A worker starts a new segment after this many postings (≈ 16 bytes each in memory).
SEGMENT_POSTINGS = 12_000_000
BATCH_DOCUMENTS = 250      # documents sent to a worker at a time
WORKER_TIMEOUT_SECONDS = 3600
# Postings per block (Whoosh writes 128). Searches decode a term's whole posting list into arrays
# (``index._posting_arrays``) and never skip within it, so a block is only a unit of decoding
# work, with a fixed cost each (decompress, unpickle, numpy conversion): fewer, larger blocks.
POSTING_BLOCK = 1024

log = logging.getLogger(__name__)


class TermPostings:
    """The postings of one segment in memory: per field, per term (bytes), the document numbers,
    weights and encoded values, in the order they were added."""

    def __init__(self):
        self.fields: dict[str, dict[bytes, tuple[array, array, list]]] = {}
        self.fieldnames: set[str] = set()
        self.count = 0
        self.unordered: set[tuple[str, bytes]] = set()   # terms whose documents came out of order
        self._values: dict[bytes, bytes] = {}   # one object per distinct value (b"\x00\x00\x00\x01" …)

    def terms(self, fieldname: str) -> dict[bytes, tuple[array, array, list]]:
        terms = self.fields.get(fieldname)
        if terms is None:
            terms = self.fields[fieldname] = {}
            self.fieldnames.add(fieldname)
        return terms

    def add(self, item) -> None:
        """One posting ``(fieldname, text, docnum, weight, value)``, as Whoosh's pool takes it (a
        merge of small segments into this writer comes this way)."""
        fieldname, tbytes, docnum, weight, vbytes = item
        entry = self.terms(fieldname).get(tbytes)
        if entry is None:
            entry = self.fields[fieldname][tbytes] = (array("I"), array("f"), [])
        elif entry[0][-1] > docnum:
            self.unordered.add((fieldname, tbytes))
        entry[0].append(docnum)
        entry[1].append(weight)
        entry[2].append(self._values.setdefault(vbytes or b"", vbytes or b""))
        self.count += 1

    def cleanup(self) -> None:
        self.fields.clear()
        self.unordered.clear()

    def write(self, schema, lengths, fieldwriter, doccount: int, postings_path: str | None = None) -> None:
        """Every term in order into ``fieldwriter``, a block at a time, with the statistics Whoosh's
        posting-at-a-time path computes (field lengths of the block's documents, largest weight);
        and, given ``postings_path``, the same postings as arrays there (``postings_file``)."""
        arrays = []
        for fieldname in sorted(self.fields):
            terms = self.fields[fieldname]
            fieldobj = schema[fieldname]
            fieldwriter.start_field(fieldname, fieldobj)
            field_lengths = _field_lengths(lengths, fieldname, doccount)
            for tbytes in sorted(terms):
                docs, weights, values = terms[tbytes]
                if (fieldname, tbytes) in self.unordered:
                    order = sorted(range(len(docs)), key=docs.__getitem__)
                    docs = array("I", (docs[i] for i in order))
                    weights = array("f", (weights[i] for i in order))
                    values = [values[i] for i in order]
                fieldwriter.start_term(tbytes)
                _add_postings(fieldwriter._postwriter, docs, weights, values, field_lengths)
                fieldwriter.finish_term()
                if postings_path is not None:
                    arrays.append((term_key(fieldname, tbytes), docs, weights))
            fieldwriter.finish_field()
        if postings_path is not None:
            try:
                write_postings_file(postings_path, arrays)
            except OSError as error:
                # derived data: the segment is searched from Whoosh's blocks instead (a disk that is
                # full fails Whoosh's own files anyway; a file alone must not fail the index write)
                log.warning("postings file %s not written (%s)", postings_path, error)


def _field_lengths(lengths, fieldname: str, doccount: int) -> list[int]:
    """Each document's length in the field (0 where Whoosh passes no length)."""
    if lengths is None:
        return [0] * doccount
    get = lengths.doc_field_length_reader(fieldname)
    return [get(docnum) or 0 for docnum in range(doccount)]


def _add_postings(postwriter, docs: array, weights: array, values: list, field_lengths: list[int]) -> None:
    """What ``W3PostingsWriter.add_posting`` does for each posting, for a block at a time: full
    blocks are written as soon as the next posting arrives, the last one is left to
    ``finish_postings`` (which may inline it)."""
    limit = postwriter._blocklimit
    total = len(docs)
    start = 0
    while start < total:
        if start:
            postwriter._write_block()
        end = min(start + limit, total)
        block_docs = docs[start:end]
        block_weights = weights[start:end]
        postwriter._ids = block_docs
        postwriter._weights = block_weights
        postwriter._values = [v for v in values[start:end] if v]
        postwriter._maxweight = max(0, max(block_weights))
        block_lengths = [field_lengths[d] for d in block_docs]
        present = [n for n in block_lengths if n]
        postwriter._minlength = min(present) if present else None
        postwriter._maxlength = max(present) if present else 0
        start = end


def postings_path(storage, segment) -> str | None:
    """Where a segment's postings file goes: beside its other files (none in a storage without
    a folder, such as Whoosh's RAM storage)."""
    folder = getattr(storage, "folder", None)
    return os.path.join(folder, segment.make_filename(EXTENSION)) if folder else None


_FREQUENCIES: dict[int, bytes] = {}


def _term_frequencies(field, value):
    """``field.index(value)``: (term bytes, frequency, weight, encoded value) for each distinct term.
    For a field whose analyzer gives its terms as strings (``terms``: the Japanese word and bigram
    tokenizers) and whose postings hold frequencies, without a Whoosh token per word."""
    terms_of = getattr(field.analyzer, "terms", None)
    fieldformat = field.format
    if terms_of is None or type(fieldformat) is not Frequency or fieldformat.field_boost != 1.0 \
            or not isinstance(value, str):
        return field.index(value)
    result = []
    for text, freq in Counter(terms_of(value)).items():
        packed = _FREQUENCIES.get(freq)
        if packed is None:
            packed = _FREQUENCIES[freq] = pack_uint(freq)
        result.append((text.encode("utf-8"), freq, float(freq), packed))
    return result


class BulkSegmentWriter(SegmentWriter):
    """A Whoosh ``SegmentWriter`` that keeps its new segment's postings in memory per term."""

    def __init__(self, ix, **kwargs):
        kwargs.setdefault("codec", W3Codec(blocklimit=POSTING_BLOCK))
        super().__init__(ix, **kwargs)
        if self.docbase:
            raise ValueError("a bulk segment numbers its documents from 0")
        self.pool = TermPostings()

    def add_document(self, **fields):
        """Whoosh's ``add_document`` for the fields this schema has (no spelling or vector
        fields), adding postings to the term lists directly."""
        self._check_state()
        schema = self.schema
        perdocwriter = self.perdocwriter
        pool = self.pool
        docnum = self.docnum
        docboost = self._doc_boost(fields)
        fieldnames = sorted(name for name in fields if not name.startswith("_"))
        self._check_fields(schema, fieldnames)
        intern = pool._values.setdefault
        perdocwriter.start_doc(docnum)
        try:
            for fieldname in fieldnames:
                value = fields.get(fieldname)
                if value is None:
                    continue
                field = schema[fieldname]
                if field.separate_spelling() or field.vector:
                    raise ValueError(f"field {fieldname!r}: spelling and vectors are not written in bulk")
                length = 0
                if field.indexed:
                    fieldboost = self._field_boost(fields, fieldname, docboost)
                    scorable = field.scorable
                    terms = pool.terms(fieldname)
                    for tbytes, freq, weight, vbytes in _term_frequencies(field, value):
                        # TermPostings.add, inlined: this runs once per distinct word of every document
                        entry = terms.get(tbytes)
                        if entry is None:
                            entry = terms[tbytes] = (array("I"), array("f"), [])
                        entry[0].append(docnum)
                        entry[1].append(weight * fieldboost)
                        entry[2].append(intern(vbytes or b"", vbytes or b""))
                        pool.count += 1
                        if scorable:
                            length += freq
                customval = fields.get(f"_stored_{fieldname}", value)
                perdocwriter.add_field(fieldname, field, customval if field.stored else None, length)
                column = field.column_type
                if column and customval is not None:
                    perdocwriter.add_column_value(fieldname, column, field.to_column_value(customval))
        except ValueError:
            perdocwriter.cancel_doc()
            raise
        perdocwriter.finish_doc()
        self._added = True
        self.docnum += 1

    def _flush_segment(self):
        self.perdocwriter.close()
        lengths = self.per_document_reader() if self.codec.length_stats else None
        try:
            self.pool.write(self.schema, lengths, self.fieldwriter, self.docnum - self.docbase,
                            postings_path(self.storage, self.newsegment))
        finally:
            if lengths is not None:
                lengths.close()
        self.fieldwriter.close()


def _segment_worker(storage, indexname, jobs, results, segment_postings: int) -> None:
    """A worker process: documents from ``jobs`` (lists of field dicts, ``None`` to finish) into
    new segments of the index, a new one after ``segment_postings`` postings; puts
    ``("ok", segments)`` or ``("error", traceback)`` on ``results``."""
    # What the parent process held when it forked is never garbage here: the collector need not
    # walk it (and touch its pages, copying them) again and again.
    gc.freeze()
    segments = []
    writer = None
    try:
        ix = storage.open_index(indexname)
        while True:
            batch = jobs.get()
            if batch is None:
                break
            if writer is None:
                writer = BulkSegmentWriter(ix, _lk=False, compound=False)
            for fields in batch:
                writer.add_document(**fields)
            if writer.pool.count >= segment_postings:
                segments.append(writer._finalize_segment())
                writer = None
        if writer is not None:
            if writer._added:
                segments.append(writer._finalize_segment())
            else:
                writer._close_segment()
        # (the temporary folder is shared with the parent, which removes it when it finishes)
        results.put(("ok", segments))
    except BaseException:
        results.put(("error", traceback.format_exc()))


class WorkerFailed(RuntimeError):
    pass


class ParallelBulkWriter(BulkSegmentWriter):
    """Documents analysed and written by ``procs`` worker processes (forked: the dictionary is
    shared), each into its own new segments; deletions, merges and the commit stay here.

    A worker that fails or dies makes ``commit`` raise (nothing is committed) instead of losing
    its documents."""

    def __init__(self, ix, procs: int, segment_postings: int = SEGMENT_POSTINGS, **kwargs):
        super().__init__(ix, **kwargs)
        self._procs = procs
        self._segment_postings = segment_postings
        self._context = multiprocessing.get_context("fork")
        self._jobs = self._context.Queue(procs * 2)
        self._results = self._context.Queue()
        self._workers: list = []
        self._buffer: list[dict] = []

    def add_document(self, **fields):
        self._check_state()
        self._buffer.append(fields)
        if len(self._buffer) >= BATCH_DOCUMENTS:
            self._send()

    def _send(self) -> None:
        if not self._workers:
            # Analysers load what they need (a dictionary) on first use: here, once, so that the
            # forked workers share it instead of each loading its own.
            for fieldname, field in self.schema.items():
                if field.indexed and field.analyzer is not None and field.format is not None:
                    list(field.index("準備"))
            for _ in range(self._procs):
                worker = self._context.Process(
                    target=_segment_worker, daemon=True,
                    args=(self.storage, self.indexname, self._jobs, self._results, self._segment_postings))
                worker.start()
                self._workers.append(worker)
        batch, self._buffer = self._buffer, []
        self._put(batch)

    def _put(self, item) -> None:
        while True:
            try:
                self._jobs.put(item, timeout=1)
                return
            except queue.Full:
                if any(not w.is_alive() for w in self._workers):
                    raise WorkerFailed(self._failure("a worker stopped while documents were queued"))

    def _failure(self, default: str) -> str:
        try:
            status, detail = self._results.get(timeout=1)
        except queue.Empty:
            return default
        return detail if status == "error" else default

    def _collect(self) -> list:
        """Every worker's segments, once all have finished."""
        if self._buffer:
            self._send()
        for _ in self._workers:
            self._put(None)
        segments = []
        for _ in self._workers:
            while True:
                try:
                    status, detail = self._results.get(timeout=1)
                    break
                except queue.Empty:
                    if all(not w.is_alive() for w in self._workers):
                        try:   # the last result may still be in the pipe
                            status, detail = self._results.get(timeout=5)
                            break
                        except queue.Empty:
                            raise WorkerFailed("the index workers stopped without a result") from None
            if status != "ok":
                raise WorkerFailed(detail)
            segments += detail
        for worker in self._workers:
            worker.join(WORKER_TIMEOUT_SECONDS)
        self._workers = []
        self._close_queues()
        return segments

    def _close_queues(self, abandon: bool = False) -> None:
        """Closes both queues. ``abandon``: what is still buffered for workers that were stopped
        is dropped (otherwise the queue's feeder thread would wait for a reader forever, and so
        would this process when it exits)."""
        for q in (self._jobs, self._results):
            if abandon:
                q.cancel_join_thread()
            q.close()

    def commit(self, mergetype=None, optimize=None, merge=None):
        self._check_state()
        if not self._workers and not self._buffer:
            self._close_queues()
            return super().commit(mergetype=mergetype, optimize=optimize, merge=merge)
        try:
            added = self._collect()
            finalsegments = self._merge_segments(mergetype, optimize, merge)
            if self._added:
                finalsegments.append(self._finalize_segment())
            else:
                self._close_segment()
            self._commit_toc(finalsegments + added)
        except BaseException:
            self._stop_workers()
            try:
                self._close_segment()
            except Exception:   # already closed, or the error came from closing it
                pass
            self._cleanup_on_error()
            raise
        self._finish()

    def _stop_workers(self) -> None:
        for worker in self._workers:
            if worker.is_alive():
                worker.terminate()
            worker.join(5)
        self._workers = []
        self._close_queues(abandon=True)

    def cancel(self):
        self._stop_workers()
        self._buffer = []
        super().cancel()


def bulk_writer(ix, procs: int = 1) -> BulkSegmentWriter:
    """The writer for a Whoosh index: in this process, or with ``procs`` > 1 worker processes.
    Segments stay separate files (not one compound file), so that opening a new index version maps
    the files instead of copying each segment into memory."""
    if procs > 1:
        return ParallelBulkWriter(ix, procs=procs, compound=False)
    return BulkSegmentWriter(ix, compound=False)

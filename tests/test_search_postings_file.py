"""Postings files (app/search/postings_file.py): the bulk writer's arrays beside each segment hold
exactly the postings Whoosh's blocks hold, searches read them, and anything wrong with one (none,
damaged) falls back to Whoosh's blocks with the same answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from whoosh import index as whoosh_index
from whoosh.writing import SegmentWriter

from app.search import index as search_index
from app.search import postings_file
from app.search.bulk import BulkSegmentWriter, ParallelBulkWriter
from app.search.index import ReaderCache, _posting_arrays
from app.search.postings_file import POSTINGS_FILES, PostingsFile, term_key, write_postings_file
from tests.test_search_bulk import build, documents


@pytest.fixture(autouse=True)
def fresh_postings_files():
    POSTINGS_FILES.clear()
    search_index.SEGMENT_ARRAYS.clear()
    yield
    POSTINGS_FILES.clear()
    search_index.SEGMENT_ARRAYS.clear()


def segment_files(directory: Path, extension: str) -> set[str]:
    return {p.name[: -len(extension)] for p in directory.iterdir() if p.name.endswith(extension)}


def batches():
    docs = documents(900)
    # a large commit, then small ones that delete, replace and make Whoosh merge small segments
    return [(docs[:600], [])] + [(docs[600 + 60 * i: 660 + 60 * i], [3 + i, 100 + i]) for i in range(5)]


@pytest.mark.parametrize("writer_class,kwargs", [
    (BulkSegmentWriter, {}),
    (ParallelBulkWriter, {"procs": 2, "segment_postings": 3_000}),
], ids=["in-process", "two-workers-many-segments"])
def test_every_segment_has_a_postings_file_with_exactly_whooshs_postings(tmp_path, writer_class, kwargs):
    directory = build(tmp_path / "ix", writer_class, batches(), **kwargs)
    ix = whoosh_index.open_dir(str(directory))
    segments = {s.segment_id() for s in ix._segments()}
    assert len(segments) >= 3
    # one file per live segment, none left over from segments merged away
    assert segment_files(directory, postings_file.EXTENSION) == segments
    compared = 0
    with ix.reader() as reader:
        for leaf, _offset in reader.leaf_readers():
            arrays = PostingsFile(str(directory / f"{leaf.segment().segment_id()}{postings_file.EXTENSION}"))
            assert arrays.terms == sum(1 for _ in leaf.all_terms())
            for fieldname, text in leaf.all_terms():
                ids, weights = arrays.get(term_key(fieldname, text))
                # every posting written, deleted documents too (a search applies deletions afterwards)
                matcher = leaf._terms.matcher(fieldname, text, leaf.schema[fieldname].format)
                expected_ids, expected_weights = _posting_arrays(matcher)
                np.testing.assert_array_equal(ids, expected_ids)
                np.testing.assert_array_equal(weights, expected_weights)
                compared += 1
            assert arrays.get(term_key("body", "どこにもない語".encode())) is None
            arrays.close()
    assert compared > 1000


def every_term_postings(directory: Path) -> dict:
    """What a search reads for every term: ``ReaderCache.postings`` over the whole index."""
    ix = whoosh_index.open_dir(str(directory))
    with ix.searcher() as searcher:
        cache = ReaderCache(searcher)
        return {(f, t.decode()): tuple(a.tolist() for a in cache.postings(f, t.decode()))
                for f, t in searcher.reader().all_terms() if f not in ("id",)}


def test_searches_read_postings_files_and_get_what_whooshs_blocks_give(tmp_path, monkeypatch):
    directory = build(tmp_path / "ix", BulkSegmentWriter, batches())
    from_files = every_term_postings(directory)

    # the same index read only through Whoosh's blocks
    POSTINGS_FILES.clear()
    monkeypatch.setattr(search_index, "_postings_file", lambda leaf: None)
    from_blocks = every_term_postings(directory)
    assert from_files == from_blocks and len(from_files) > 1000

    # and the files are what was read: with Whoosh's decoding broken, the answers stay
    monkeypatch.undo()
    POSTINGS_FILES.clear()
    search_index.SEGMENT_ARRAYS.clear()
    monkeypatch.setattr(search_index, "_posting_arrays", lambda matcher: pytest.fail("decoded Whoosh blocks"))
    assert every_term_postings(directory) == from_files


def test_an_index_without_postings_files_is_read_from_whooshs_blocks(tmp_path):
    """An index written before postings files existed (here: by Whoosh's own writer)."""
    whoosh_made = build(tmp_path / "whoosh", SegmentWriter, batches())
    assert not segment_files(whoosh_made, postings_file.EXTENSION)
    bulk_made = build(tmp_path / "bulk", BulkSegmentWriter, batches())
    # document numbers differ between writers only by order within a segment: compare by term
    whoosh_terms = {k: len(v[0]) for k, v in every_term_postings(whoosh_made).items()}
    bulk_terms = {k: len(v[0]) for k, v in every_term_postings(bulk_made).items()}
    assert whoosh_terms == bulk_terms


def _other_segments_file(tmp_path) -> bytes:
    """A valid postings file of a larger segment (600 documents)."""
    other = build(tmp_path / "other", BulkSegmentWriter, [(documents(600, seed=5), [])])
    (path,) = other.glob(f"*{postings_file.EXTENSION}")
    return path.read_bytes()


def _unordered(data: bytes) -> bytes:
    """The file with its first two term hashes swapped (a lookup by binary search would miss)."""
    first = postings_file._HEADER_SIZE
    return data[:first] + data[first + 8: first + 16] + data[first: first + 8] + data[first + 16:]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "unordered", "another segment's"])
def test_a_damaged_postings_file_is_not_used(tmp_path, damage, caplog):
    """Searched from Whoosh's blocks instead, with the same postings; a file naming documents the
    segment does not have (they would be the next segment's documents) is refused too."""
    directory = build(tmp_path / "ix", BulkSegmentWriter, [(documents(300), [])])
    expected = every_term_postings(directory)
    POSTINGS_FILES.clear()
    search_index.SEGMENT_ARRAYS.clear()
    (path,) = directory.glob(f"*{postings_file.EXTENSION}")
    data = path.read_bytes()
    path.write_bytes({"truncated": lambda: data[: len(data) // 2], "garbage": lambda: b"\x01" * len(data),
                      "empty": lambda: b"", "unordered": lambda: _unordered(data),
                      "another segment's": lambda: _other_segments_file(tmp_path)}[damage]())
    assert every_term_postings(directory) == expected
    assert "not used" in caplog.text


def test_a_postings_file_that_cannot_be_written_does_not_fail_the_index_write(tmp_path, monkeypatch, caplog):
    def disk_full(path, terms):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("app.search.bulk.write_postings_file", disk_full)
    directory = build(tmp_path / "ix", BulkSegmentWriter, [(documents(300), [])])
    assert not segment_files(directory, postings_file.EXTENSION)
    assert "not written" in caplog.text
    monkeypatch.undo()
    POSTINGS_FILES.clear()
    search_index.SEGMENT_ARRAYS.clear()
    assert every_term_postings(directory) == every_term_postings(build(tmp_path / "b", BulkSegmentWriter,
                                                                       [(documents(300), [])]))


def test_terms_with_the_same_hash_are_told_apart_by_their_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(postings_file, "_hash", lambda key: 42 if key.startswith(b"body") else 7)
    path = str(tmp_path / "MAIN_x.npp")
    write_postings_file(path, [
        (term_key("body", b"a"), np.array([1, 5], dtype=np.uint32), np.array([1.0, 2.0], dtype=np.float32)),
        (term_key("body", b"b"), np.array([2], dtype=np.uint32), np.array([3.0], dtype=np.float32)),
        (term_key("title", b"a"), np.array([0, 1, 2], dtype=np.uint32), np.array([1.5, 1.0, 1.0], dtype=np.float32)),
    ])
    arrays = PostingsFile(path)
    assert [a.tolist() for a in arrays.get(term_key("body", b"a"))] == [[1, 5], [1.0, 2.0]]
    assert [a.tolist() for a in arrays.get(term_key("body", b"b"))] == [[2], [3.0]]
    # a weight that is not a small whole number is kept as it is
    assert [a.tolist() for a in arrays.get(term_key("title", b"a"))] == [[0, 1, 2], [1.5, 1.0, 1.0]]
    assert arrays.get(term_key("body", b"c")) is None
    arrays.close()


def test_the_files_of_segments_a_new_index_version_no_longer_has_are_let_go(app, make_user):
    """After a reindex (a new generation folder), a worker keeps no file of the old one mapped:
    its disk space is freed when the folder is removed."""
    from app.search.sync import reindex
    from tests.test_search import add_case, titles

    desk = make_user("helpdesk")
    add_case(make_user, "VPN装置の更新", body="VPN装置のファームウェア")
    assert titles(desk, "VPN装置")[0].total == 1
    before = {path for path, found in POSTINGS_FILES._files.items() if found is not None}
    assert before
    reindex()
    assert titles(desk, "VPN装置")[0].total == 1
    after = set(POSTINGS_FILES._files)
    assert after and not after & before


def test_an_index_written_before_postings_files_is_rebuilt_by_reindex_if_outdated(app, make_user, runner):
    """An upgraded server gets them from ``search reindex --if-outdated`` (``make run``, the systemd
    unit); meanwhile the index is searched and written as before (it is not refused)."""
    from app.search.sync import apply_pending, current_index
    from tests.test_search import add_case, titles

    desk = make_user("helpdesk")
    add_case(make_user, "VPN装置の更新", body="VPN装置のファームウェア")
    index = current_index()
    assert not index.lacks_postings_files()
    before = index.current_generation()
    (path,) = (index.root / before).glob(f"*{postings_file.EXTENSION}")
    path.unlink()
    assert index.lacks_postings_files() and not index.schema_outdated()
    path.write_bytes(b"damaged")   # one that cannot be used counts as none
    assert index.lacks_postings_files()
    add_case(make_user, "VPN装置の設定", body="VPN")   # still written (queued work applied)
    assert apply_pending() == 0 and titles(desk, "VPN装置")[0].total == 2
    result = runner.invoke(args=["search", "reindex", "--if-outdated"])
    assert result.exit_code == 0, result.output
    assert current_index().current_generation() != before
    assert not current_index().lacks_postings_files()
    assert titles(desk, "VPN装置")[0].total == 2

"""The bulk index writers (app/search/bulk.py) write what Whoosh's own writer writes, and a
parallel write that fails commits nothing."""
from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from whoosh import index as whoosh_index
from whoosh.fields import NUMERIC
from whoosh.writing import SegmentWriter

from app.search.bulk import BulkSegmentWriter, ParallelBulkWriter, WorkerFailed
from app.search.index import build_schema

WORDS = ["サーバー", "ファイアウォール", "VPN装置", "情報セキュリティポリシー", "基幹系", "Windows10", "ＬＧＷＡＮ",
         "プリンタの設定", "バックアップ", "<script>alert(1)</script>", "型番 FG-60F", "ウイルス対策ソフト",
         "ネットワーク機器の更新", "庁内LAN", "二要素認証", "メールの誤送信", "電子申請", "クラウド"]


def documents(count: int, seed: int = 3) -> list[dict]:
    """Case documents as ``sync.case_document`` makes them, with words that repeat across
    documents, texts long enough for several posting blocks, and an empty field now and then."""
    rng = random.Random(seed)
    docs = []
    for n in range(1, count + 1):
        body = "。".join(" ".join(rng.sample(WORDS, 4)) for _ in range(rng.randrange(1, 6)))
        docs.append({
            "id": str(n), "case_id": n, "title": f"{rng.choice(WORDS)}の相談 {n}", "body": body,
            "resolution": "" if n % 7 == 0 else " ".join(rng.sample(WORDS, 3)),
            "ngram": body, "tag": ",".join(rng.sample(["vpn", "lgwan", "プリンタ"], 2)),
            "category": rng.choice(["network", "security"]), "municipality": str(rng.randrange(1, 24)),
            "owner": "anon" if n % 5 == 0 else "1", "visibility": rng.choice(["all", "neighbours", "private"]),
            "published": 1_700_000_000 + rng.randrange(10**6), "signature": f"s{n}",
        })
    return docs


def contents(directory) -> dict:
    """Everything a search reads from an index, by case id (document numbers differ between
    writers): every term's postings with weights, values and field lengths, the term statistics,
    stored fields and columns."""
    ix = whoosh_index.open_dir(str(directory))
    with ix.searcher() as searcher:
        reader = searcher.reader()
        case_of = {docnum: fields["id"] for docnum, fields in reader.iter_docs()}
        terms = {}
        for fieldname, text in reader.all_terms():
            info = reader.term_info(fieldname, text)
            matcher = reader.postings(fieldname, text)
            postings = []
            while matcher.is_active():
                docnum = matcher.id()
                postings.append((case_of[docnum], matcher.weight(), matcher.value(),
                                 reader.doc_field_length(docnum, fieldname)))
                matcher.next()
            terms[(fieldname, text)] = (sorted(postings), info.weight(), info.doc_frequency(),
                                        info.min_length(), info.max_length(), info.max_weight())
        columns = {name: sorted((case_of[d], v) for d, v in enumerate(reader.column_reader(name)) if d in case_of)
                   for name in ("case_id", "published")}
        stored = sorted((fields["id"], sorted(fields.items())) for fields in reader.all_stored_fields())
        lengths = {name: reader.field_length(name) for name in ("title", "body", "resolution", "ngram")}
        return {"terms": terms, "columns": columns, "stored": stored, "lengths": lengths,
                "count": reader.doc_count()}


def build(directory, writer_class, batches, **kwargs):
    """Commits each batch (documents to add, case ids to delete first) with its own writer."""
    directory.mkdir()
    ix = whoosh_index.create_in(str(directory), build_schema())
    for added, deleted in batches:
        writer = writer_class(ix, compound=False, **kwargs)
        for case_id in deleted:
            writer.delete_by_term("id", str(case_id))
        for doc in added:
            writer.add_document(**doc)
        writer.commit()
    return directory


@pytest.mark.parametrize("writer_class,kwargs", [
    (BulkSegmentWriter, {}),
    (ParallelBulkWriter, {"procs": 2}),
    (ParallelBulkWriter, {"procs": 2, "segment_postings": 500}),   # a new segment every few documents
], ids=["in-process", "two-workers", "two-workers-many-segments"])
def test_bulk_writers_write_what_whoosh_writes(tmp_path, writer_class, kwargs):
    docs = documents(600)
    # a large first commit, then small ones that delete, replace and make Whoosh merge small segments
    batches = [(docs[:450], [])] + [(docs[450 + 30 * i: 480 + 30 * i], [3 + i, 100 + i]) for i in range(5)]
    whoosh_made = contents(build(tmp_path / "whoosh", SegmentWriter, batches))
    bulk_made = contents(build(tmp_path / "bulk", writer_class, batches, **kwargs))
    assert whoosh_made["count"] == 590
    assert len(whoosh_made["terms"]) > 500
    assert bulk_made == whoosh_made


def test_many_segments_are_made_when_a_worker_holds_many_postings(tmp_path):
    # three batches of documents, each over the limit: three segments, whichever worker takes which
    directory = build(tmp_path / "ix", ParallelBulkWriter, [(documents(600), [])], procs=2, segment_postings=2_000)
    ix = whoosh_index.open_dir(str(directory))
    assert len(ix._segments()) == 3
    assert ix.doc_count() == 600


@pytest.mark.parametrize("writer_class,kwargs", [(BulkSegmentWriter, {}), (ParallelBulkWriter, {"procs": 2})],
                         ids=["in-process", "two-workers"])
def test_posting_lists_are_written_in_large_blocks(tmp_path, writer_class, kwargs, monkeypatch):
    """A search decodes a term's whole posting list a block at a time; each block has a fixed cost."""
    monkeypatch.setattr("app.search.bulk.POSTING_BLOCK", 400)
    directory = build(tmp_path / "ix", writer_class, [(documents(4000), [])], **kwargs)
    with whoosh_index.open_dir(str(directory)).reader() as reader:
        for leaf, _offset in reader.leaf_readers():
            matcher = leaf.postings("category", "network")   # in about half of the segment's documents
            blocks = []
            while matcher.is_active():
                matcher._read_ids()
                blocks.append(matcher._blocklength)
                matcher._next_block()
            assert sum(blocks) == leaf.doc_frequency("category", "network") > 400
            assert blocks[:-1] == [400] * (len(blocks) - 1) and blocks[-1] <= 400


def parallel_writer_with_queued_documents(tmp_path, committed: int):
    """An index of ``committed`` documents and a parallel writer that has been given 600 more."""
    directory = build(tmp_path / "ix", BulkSegmentWriter, [(documents(committed), [])])
    writer = ParallelBulkWriter(whoosh_index.open_dir(str(directory)), procs=2, compound=False)
    for doc in documents(600, seed=9):
        writer.add_document(**doc)
    return directory, writer


def test_a_failing_worker_commits_nothing_and_releases_the_index(tmp_path):
    directory, writer = parallel_writer_with_queued_documents(tmp_path, committed=20)
    writer.add_document(id="bad", unknown_field="x")   # raises in the worker that takes it
    with pytest.raises(WorkerFailed) as failure:
        writer.commit()
    assert "unknown_field" in str(failure.value)
    ix = whoosh_index.open_dir(str(directory))
    assert ix.doc_count() == 20
    with ix.writer() as again:   # the lock was released
        again.add_document(**documents(1, seed=11)[0] | {"id": "new"})
    assert whoosh_index.open_dir(str(directory)).doc_count() == 21


def test_a_cancelled_parallel_writer_stops_its_workers_and_writes_nothing(tmp_path):
    directory, writer = parallel_writer_with_queued_documents(tmp_path, committed=10)
    workers = list(writer._workers)
    assert workers
    writer.cancel()
    assert all(not w.is_alive() for w in workers)
    assert whoosh_index.open_dir(str(directory)).doc_count() == 10


def test_an_index_with_numeric_fields_of_an_older_version_is_outdated(app):
    """Case ids and dates were NUMERIC fields (16 index terms per value) before they became
    columns: an index made then is rebuilt by ``search reindex --if-outdated``."""
    from app.search.sync import current_index, ready_index

    index = ready_index()
    assert not index.schema_outdated()
    older = build_schema()
    older.remove("published")
    older.add("published", NUMERIC(int, bits=64, signed=False, sortable=True))
    path = index.root / index.current_generation()
    whoosh_index.create_in(str(path), older)
    assert current_index().schema_outdated()


@pytest.mark.parametrize("ending", ["cancel", "failure"])
def test_a_process_whose_parallel_write_was_stopped_still_exits(tmp_path, ending):
    """Documents still queued for stopped workers are dropped: the queue's feeder thread must not
    keep the process from exiting (a test run printed its result and then hung)."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        from whoosh import index as whoosh_index
        from app.search.bulk import ParallelBulkWriter, WorkerFailed
        from app.search.index import build_schema
        from test_search_bulk import documents
        ix = whoosh_index.create_in({str(tmp_path)!r}, build_schema())
        writer = ParallelBulkWriter(ix, procs=2, compound=False)
        if {ending!r} == "failure":
            writer.add_document(id="bad", unknown_field="x")
        for doc in documents(3000, seed=2):
            writer.add_document(**doc)
        if {ending!r} == "cancel":
            writer.cancel()
        else:
            try:
                writer.commit()
            except WorkerFailed:
                pass
        print("finished")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout

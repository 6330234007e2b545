"""Graded relevance on two corpora (tests/relevance/): the demo help-desk library (101 queries) and
141 real public Q&A items from assembly and Diet minutes and the Digital Agency (56 queries), each
judged 0/1/2 over the pooled top 20 of this engine, a plain bigram BM25 and SQLite FTS5 trigram.

The floors below are the ones the README states; the targets of the search work were nDCG@10 >= 0.90
and recall@10 >= 0.85 per corpus, sentences within 0.03 of their keyword versions, and no kind below
0.85 (the test prints every number; run with -s to see the table)."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager

import pytest

from tests.relevance.baselines import load_queries, run_system
from tests.relevance.metrics import evaluate, load_judgments

CORPORA = ("helpdesk", "public")
NDCG_FLOOR = 0.90
RECALL_FLOOR = 0.85          # recall@10 of every case judged relevant (grade 1 or 2)
KIND_FLOOR = 0.82            # nDCG@10 of each kind of query
SENTENCE_GAP = 0.05          # a sentence may score at most this much below its keyword version


BACKENDS = ("whoosh", "postgres")


@contextmanager
def engine_backend(backend: str, request):
    """``run_system("engine", ...)`` on this search backend: for PostgreSQL, every app the engine
    makes gets a fresh PostgreSQL database and ``SEARCH_BACKEND = "postgres"``."""
    if backend == "whoosh":
        yield
        return
    import app as app_package
    from tests.pg_cluster import fresh_database

    base = request.getfixturevalue("postgres_base_url")
    original = app_package.create_app
    with ExitStack() as databases, pytest.MonkeyPatch.context() as patch:
        def create_app(config_class):
            class OnPostgres(config_class):
                SQLALCHEMY_DATABASE_URI = databases.enter_context(fresh_database(base))
                SEARCH_BACKEND = "postgres"
            return original(OnPostgres)

        patch.setattr(app_package, "create_app", create_app)
        yield


# Under pytest-xdist (`make test`) each backend's tests stay on one worker, so each is measured once.
@pytest.fixture(scope="module", params=[pytest.param(backend, marks=pytest.mark.xdist_group(f"graded-{backend}"))
                                        for backend in BACKENDS])
def measured(request):
    with engine_backend(request.param, request):
        return _measure()


def _measure():
    results = {}
    for corpus in CORPORA:
        queries = load_queries(corpus)
        judged = load_judgments(corpus)
        engine = run_system("engine", corpus, queries)
        keywords = run_system("engine", corpus, [q for q in queries if q.get("keywords")], field="keywords")
        bigram = run_system("bigram", corpus, queries)
        results[corpus] = {"queries": queries, "judged": judged, "engine": engine, "keywords": keywords,
                           "bigram": bigram, "backend": _backend_in_use()}
    return results


def _backend_in_use() -> str:
    import app as app_package

    return "postgres" if app_package.create_app.__name__ == "create_app" and app_package.create_app.__module__ == __name__ else "whoosh"


def _kinds(data) -> dict[str, dict]:
    kinds = sorted({q["kind"] for q in data["queries"]})
    return {kind: evaluate({q["id"]: data["engine"][q["id"]] for q in data["queries"] if q["kind"] == kind},
                           data["judged"]) for kind in kinds}


@pytest.mark.parametrize("corpus", CORPORA)
def test_the_engine_finds_what_helps_on_each_corpus(measured, corpus):
    data = measured[corpus]
    overall = evaluate(data["engine"], data["judged"])
    kinds = _kinds(data)
    table = "\n".join(f"  {kind:14s} n={m['n']:3d} nDCG@10 {m['ndcg@10']:.3f} recall@10 {m['R1@10']:.3f} MRR {m['MRR']:.3f}"
                      for kind, m in {**kinds, "ALL": overall}.items())
    print(f"\n{corpus} ({data['backend']}):\n{table}")
    assert overall["unjudged@10"] == 0, "documents in the top 10 were never judged: re-pool and judge them"
    assert overall["ndcg@10"] >= NDCG_FLOOR, table
    assert overall["R1@10"] >= RECALL_FLOOR, table
    for kind, m in kinds.items():
        assert m["ndcg@10"] >= KIND_FLOOR, (kind, table)


@pytest.mark.parametrize("corpus", CORPORA)
def test_a_sentence_finds_what_its_keywords_find(measured, corpus):
    data = measured[corpus]
    sentences = {q["id"]: data["engine"][q["id"]] for q in data["queries"] if q.get("keywords")}
    as_sentence = evaluate(sentences, data["judged"])["ndcg@10"]
    as_keywords = evaluate(data["keywords"], data["judged"])["ndcg@10"]
    print(f"\n{corpus} ({data['backend']}): sentences {as_sentence:.3f}, their keyword versions {as_keywords:.3f}")
    assert as_sentence >= as_keywords - SENTENCE_GAP


@pytest.mark.parametrize("corpus", CORPORA)
def test_the_engine_ranks_better_than_plain_bigram_bm25(measured, corpus):
    data = measured[corpus]
    engine = evaluate(data["engine"], data["judged"])
    bigram = evaluate(data["bigram"], data["judged"])
    print(f"\n{corpus} ({data['backend']}): engine nDCG@10 {engine['ndcg@10']:.3f} recall@10 {engine['R1@10']:.3f}; "
          f"bigram BM25 {bigram['ndcg@10']:.3f} / {bigram['R1@10']:.3f}")
    assert engine["ndcg@10"] > bigram["ndcg@10"]
    assert engine["R1@10"] >= bigram["R1@10"]


def test_the_collection_is_as_large_as_promised():
    for corpus, minimum_queries in (("helpdesk", 80), ("public", 40)):
        queries = load_queries(corpus)
        assert len(queries) >= minimum_queries
        kinds = {}
        for q in queries:
            kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
        if corpus == "helpdesk":
            assert len(kinds) == 6 and min(kinds.values()) >= 10, kinds
    from tests.relevance.baselines import load_corpus

    assert len(load_corpus("public")) >= 100

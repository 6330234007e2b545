"""Both search backends behind one interface (app/search/backend.py): Whoosh (embedded, default)
and PostgreSQL (``search_documents`` with tsvector columns, GIN/RUM, ts_rank, the policy's SQL
clause in every statement). The same checks run on both: the permission table through search,
hits/totals/facets agreeing with ``visible_cases_clause``, writes reaching search, ``search
reindex`` and ``search check``, bad configuration and hostile input never giving a 500."""
from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from app import create_app, policy
from app.content import load_reference
from app.extensions import db
from app.models import Case, CaseState, Category, Municipality, utcnow
from app.search import pg_backend
from app.search.backend import get_backend
from app.search.service import SearchParams, search_cases, similar_cases
from app.search.sync import apply_pending, queue_case
from app.services import accounts, municipalities
from config import TestingConfig
from tests.conftest import IsolatedClient, recorded_statements

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("whoosh", "postgres")


@contextmanager
def backend_app(backend: str, tmp_path: Path, request, **settings):
    """An app on ``backend`` (Whoosh on SQLite, or PostgreSQL's table on a fresh PostgreSQL
    database) with the reference data loaded."""
    with ExitStack() as stack:
        if backend == "postgres":
            from tests.pg_cluster import fresh_database

            uri = stack.enter_context(fresh_database(request.getfixturevalue("postgres_base_url")))
        else:
            uri = f"sqlite:///{tmp_path / 'search.db'}"

        class Config(TestingConfig):
            SQLALCHEMY_DATABASE_URI = uri
            SEARCH_INDEX_DIR = str(tmp_path / "index")
            ATTACHMENT_DIR = str(tmp_path / "attachments")
            SEARCH_BACKEND = backend

        for key, value in settings.items():
            setattr(Config, key, value)
        app = create_app(Config)
        app.test_client_class = IsolatedClient
        with app.app_context():
            db.create_all()
            load_reference(ROOT / "content")
            db.session.commit()
            pg_backend.forget_tables()
            yield app
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(params=BACKENDS)
def search_app(request, tmp_path):
    with backend_app(request.param, tmp_path, request) as app:
        yield app


def _by_name():
    return {m.name: m for m in db.session.scalars(select(Municipality))}


def add(title, owner="呉市", visibility="all", body="本文", *, state=CaseState.PUBLISHED.value, anonymous=False,
        consent=None, category="network"):
    case = Case(title=title, issue=body, resolution="対応した。",
                category=db.session.scalar(select(Category).where(Category.slug == category)),
                municipality=_by_name()[owner] if owner else None, state=state, visibility=visibility,
                sharing_consent=consent or visibility, anonymous=anonymous, published_at=utcnow())
    db.session.add(case)
    db.session.flush()
    queue_case(case)
    db.session.commit()
    apply_pending()
    return case


def test_the_configured_backend_is_the_one_that_runs(search_app):
    backend = get_backend()
    assert backend.name == search_app.config["SEARCH_BACKEND"]
    add("VPN がつながらない")
    if backend.name == "postgres":
        assert db.session.scalar(text("SELECT count(*) FROM search_documents")) == 1
        assert db.session.scalar(text("SELECT count(*) FROM search_outbox")) == 0   # nothing to sync


# --- the permission table through search, on both backends ----------------------------------

@pytest.fixture(params=BACKENDS)
def table_world(request, tmp_path):
    from tests.test_policy_table import ACTORS, BAD_ROWS, CASES, OWNER, RELATIONS

    with backend_app(request.param, tmp_path, request) as app:
        municipalities.add_municipality("332020", "倉敷市", prefecture="岡山県", observer=True)
        by_name = _by_name()
        municipalities.link(by_name[OWNER], by_name["竹原市"])
        users = {}
        for role, rel in ACTORS:
            users[(role, rel)] = accounts.create_user(f"{role}-{rel or 'pref'}", "table-password-1", role,
                                                      by_name[RELATIONS[rel]] if rel else None)
        db.session.commit()
        cases = {}
        for n, (visibility, state, anonymous, consent) in enumerate([c + ("all",) for c in CASES] + BAD_ROWS):
            case = add(f"検証事例 その{n}", OWNER, visibility, state=state, anonymous=anonymous, consent=consent,
                       category="network" if n % 2 else "security")
            cases[(visibility, state, anonymous, consent)] = case.id
        yield users, cases


def test_search_follows_the_permission_table_in_hits_totals_and_facets(table_world):
    from tests.test_policy_table import WIDTH, expected

    users, cases = table_world
    for (role, rel), user in users.items():
        user = db.session.merge(user)
        result = search_cases(user, SearchParams(q="検証事例", per_page=100), log_misses=False)
        hits = {h.case.id for h in result.hits}
        for (visibility, state, anonymous, consent), case_id in cases.items():
            shared = visibility if WIDTH[visibility] <= WIDTH[consent] else consent
            assert (case_id in hits) == expected(role, rel, shared, state, anonymous)["search_hit"], \
                (role, rel, visibility, state, anonymous, consent)
        readable = set(db.session.scalars(select(Case.id).where(
            Case.state == CaseState.PUBLISHED.value, policy.visible_cases_clause(user))))
        assert hits == readable and result.total == len(readable), (role, rel)
        by_category = {}
        for case_id in readable:
            slug = db.session.get(Case, case_id).category.slug
            by_category[slug] = by_category.get(slug, 0) + 1
        assert {k: n for k, _label, n in result.facets["category"]} == by_category, (role, rel)
        assert sum(n for _v, _l, n in result.facets["municipality"]) == len(readable)


def test_postgres_puts_the_permission_clause_in_every_search_statement(tmp_path, request):
    with backend_app("postgres", tmp_path, request) as app:
        add("全体共有のVPN設定", "福山市", "all")
        add("呉市の非公開VPN障害", "呉市", "private", body="秘密のホスト vpn01")
        shobara = accounts.create_user("shobara", "table-password-1", "municipal", _by_name()["庄原市"])
        db.session.commit()
        with recorded_statements() as statements:
            for q in ("VPN", "vpn01", "ＶＰＮ 障害", '"VPN"', "ヴィピーエヌ"):
                search_cases(shobara, SearchParams(q=q), log_misses=False)
                similar_cases(shobara, q)
        searching = [s for s in statements if "search_documents" in s
                     and s.lstrip().upper().startswith(("SELECT", "WITH"))   # reads, with or without a CTE
                     and "ts_stat" not in s and "to_regclass" not in s and "indexed_at" not in s]
        assert searching
        for statement in searching:
            assert "JOIN cases" in statement and "cases.state" in statement, statement
            assert "cases.visibility" in statement and "cases.sharing_consent" in statement, statement
        result = search_cases(shobara, SearchParams(q="vpn01"), log_misses=False)
        assert result.total == 0 and not result.hits
        assert result.suggestion is None or "vpn01" not in result.suggestion.query.casefold()


def test_postgres_counts_never_run_as_nested_loops(tmp_path, request):
    """With the reader's cases underestimated (statistics not updated after a bulk load) the
    planner re-ran each word's bitmap scan for every case: 145 s and 14 GB in one backend under
    the load test. The count and facet statements switch nested loops off for themselves."""
    with backend_app("postgres", tmp_path, request) as app:
        add("全体共有のVPN設定", "福山市", "all")
        desk = accounts.create_user("desk", "table-password-1", "helpdesk")
        db.session.commit()
        with recorded_statements() as statements:
            search_cases(desk, SearchParams(q="VPN 設定"), log_misses=False)
        counting = [i for i, s in enumerate(statements) if "search_documents" in s and "count(" in s]
        assert counting
        for i in counting:
            assert "set_config('enable_nestloop', 'off', true)" in statements[i - 1], statements[i - 1]



def test_sqlite_loads_a_searchs_hits_by_their_ids(tmp_path, request):
    """The hits are loaded with "these ids, if this reader may see them". Each branch of the
    permission clause must find the rows by id: with an index usable for ``state = ?`` alone,
    SQLite read every published case instead (1.3 -> 17 ms a page at 100,000 cases)."""
    from sqlalchemy import event

    with backend_app("whoosh", tmp_path, request) as app:
        for n in range(25):   # a page of 20 hits
            add(f"VPN設定の事例 {n}", "福山市", "all")
        kure = accounts.create_user("kure", "table-password-1", "municipal", _by_name()["呉市"])
        db.session.commit()
        sent = []
        listener = lambda _c, _cur, statement, parameters, _ctx, _many: sent.append((statement, parameters))
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert search_cases(kure, SearchParams(q="VPN"), log_misses=False).total == 25
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        loads = [(s, p) for s, p in sent if s.lstrip().startswith("SELECT cases.id") and "cases.id IN" in s
                 and "cases.sharing_consent" in s]
        assert loads
        for statement, parameters in loads:
            plan = [row[3] for row in db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                                 parameters)]
            searches = [step for step in plan if step.startswith(("SEARCH cases", "SCAN cases"))]
            assert searches, plan
            for step in searches:
                assert "rowid=?" in step or "INTEGER PRIMARY KEY" in step, plan

def test_postgres_reads_the_readers_cases_from_the_index_alone(tmp_path, request):
    """The join of "the published cases this reader may see" is an index-only scan of
    ix_cases_state_scope once a reindex has refreshed the statistics and the visibility map: it
    fetched every published case's row before (60 ms a statement at 100,000 cases)."""
    from sqlalchemy import event

    with backend_app("postgres", tmp_path, request) as app:
        for n in range(30):
            add(f"VPN設定の事例 {n}", "福山市", "all")
        add("呉市の非公開VPN障害", "呉市", "private")
        kure = accounts.create_user("kure", "table-password-1", "municipal", _by_name()["呉市"])
        db.session.commit()
        assert app.test_cli_runner().invoke(args=["search", "reindex"]).exit_code == 0
        sent = []
        listener = lambda _c, _cur, statement, parameters, _ctx, _many: sent.append((statement, parameters))
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            search_cases(kure, SearchParams(q="VPN 設定"), log_misses=False)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        joins = [i for i, (s, _p) in enumerate(sent) if "search_documents" in s and "JOIN cases" in s and "count(" in s]
        assert joins
        raw = db.session.connection().connection.driver_connection
        for i in joins:
            statement, parameters = sent[i]
            settings, _none = sent[i - 1]   # the plan settings the app sent for this statement
            assert "set_config('enable_seqscan', 'off', true)" in settings
            with raw.cursor() as cursor:
                cursor.execute(settings)
                cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Index Only Scan using ix_cases_state_scope on cases" in plan, plan
            assert "Heap Fetches: 0" in plan, plan
        db.session.rollback()


def _documents_now():
    return db.session.execute(text(
        "SELECT case_id, tsv_words::text, tsv_ngram::text, tags::text, norm_text, signature "
        "FROM search_documents ORDER BY case_id")).all()


def test_postgres_reindex_in_worker_processes_writes_what_one_process_writes(tmp_path, request, monkeypatch):
    from app.search import pg_backend

    with backend_app("postgres", tmp_path, request) as app:
        for n in range(11):
            add(f"VPN設定の事例 {n}", "福山市" if n % 2 else "呉市", "all" if n % 3 else "private",
                body=f"<script>alert({n})</script> 本文 {n}", anonymous=n == 4)
        gone = add("公開をやめる事例")
        gone.state = CaseState.ARCHIVED.value
        db.session.commit()   # not queued: its document stays until a reindex removes it
        gone_id = gone.id     # (a reindex detaches the cases it loaded)
        assert pg_backend.reindex(batch=4).documents == 11
        one_process = _documents_now()
        assert len(one_process) == 11 and gone_id not in {row.case_id for row in one_process}
        db.session.execute(text("UPDATE search_documents SET tsv_words = '', norm_text = '', signature = ''"))
        db.session.execute(text(
            "INSERT INTO search_documents (case_id, tsv_words, tsv_ngram, tags, norm_text, signature) "
            "VALUES (:id, '', '', '{}', '', '')"), {"id": gone_id})
        db.session.commit()
        monkeypatch.setattr(pg_backend, "PARALLEL_MIN", 1)
        progress = []
        report = pg_backend.reindex(batch=4, procs=2, progress=progress.append)
        assert report.documents == 11 and progress[-1] == 11 and len(progress) == 3   # one per batch
        assert _documents_now() == one_process
        assert pg_backend.is_built()
        assert search_cases(accounts.create_user("desk", "table-password-1", "helpdesk"),
                            SearchParams(q="VPN"), log_misses=False).total == 11


def test_postgres_reindex_says_when_a_worker_process_fails(tmp_path, request, monkeypatch):
    from app.search import pg_backend

    with backend_app("postgres", tmp_path, request) as app:
        broken = [add(f"基幹系の障害 {n}").id for n in range(6)][3]
        real = pg_backend.document_row

        def document_row(case):
            if case.id == broken:
                raise ValueError("analysis failed for this case")
            return real(case)

        monkeypatch.setattr(pg_backend, "document_row", document_row)   # the forked workers inherit it
        monkeypatch.setattr(pg_backend, "PARALLEL_MIN", 1)
        with pytest.raises(pg_backend.ReindexWorkerFailed, match="analysis failed for this case"):
            pg_backend.reindex(batch=2, procs=2)
        # the parent's own connection is untouched (the same server process), no thread of the
        # failed run is left behind, and a reindex without the fault completes
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        monkeypatch.setattr(pg_backend, "document_row", real)
        assert pg_backend.reindex(batch=2, procs=2).documents == 6
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() == pid


def test_postgres_reindex_stops_at_once_when_a_worker_is_killed(tmp_path, request, monkeypatch):
    """A worker killed without a word (out of memory) may hold the lock the others wait on: the
    reindex stops with its exit code instead of waiting, and leaves no thread behind."""
    import os
    import signal
    import threading

    from app.search import pg_backend

    with backend_app("postgres", tmp_path, request) as app:
        killed = [add(f"基幹系の障害 {n}").id for n in range(8)][0]
        real = pg_backend.document_row

        def document_row(case):
            if case.id == killed:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(case)

        monkeypatch.setattr(pg_backend, "document_row", document_row)
        monkeypatch.setattr(pg_backend, "PARALLEL_MIN", 1)
        threads = threading.active_count()
        started = time.monotonic()
        with pytest.raises(pg_backend.ReindexWorkerFailed, match="exit codes"):
            pg_backend.reindex(batch=1, procs=2)
        assert time.monotonic() - started < 30
        assert threading.active_count() == threads


def test_a_word_counts_only_where_it_matches(search_app):
    """A query word not found as a word is matched by all of its bigrams; a case with only some of
    them gets nothing for that word (both backends; PostgreSQL gave it part of the word's score)."""
    desk = accounts.create_user("desk", "table-password-1", "helpdesk")
    some_bigrams = add("VPN 接続の事例 abcd", body="abcd を設定")    # ab, bc, cd of abcdx, not dx
    plain = add("VPN 接続の事例 その2", body="普通の本文")
    all_bigrams = add("別件", body="zzabcdzz dxqq")   # every bigram of abcdx: matched by them
    for n in range(6):   # VPN is not in most cases: it is an informative word
        add(f"無関係の事例 {n}", body="関係ない本文")
    result = search_cases(desk, SearchParams(q="VPN abcdx"), log_misses=False)
    scores = {h.case.id: h.score for h in result.hits}
    assert set(scores) == {some_bigrams.id, plain.id, all_bigrams.id}
    assert scores[some_bigrams.id] == pytest.approx(scores[plain.id], rel=1e-6)


def test_related_cases_share_two_of_the_texts_words(search_app):
    """A related case shares at least two of the text's rarest words (one of them may be a word the
    index knows only by its bigrams); one shared word is not enough. On PostgreSQL the rule is
    also the index condition, so the cases sharing one word are never read."""
    desk = accounts.create_user("desk", "table-password-1", "helpdesk")
    two = add("ルータ ファームウェア の不具合", body="ルータ と ファームウェア")
    with_bigrams = add("ルータ の件", body="zzabcdzz dxqq")   # ルータ, and abcdx by its bigrams
    only_router = add("ルータ の設置", body="設置した")
    only_update = add("更新 の予定", body="予定どおり")
    only_bigrams = add("別件", body="zzabcdzz dxqq")
    for n in range(8):
        add(f"無関係の事例 {n}", body="関係ない本文")
    related = {h.case.id for h in similar_cases(desk, "ルータ ファームウェア 更新 abcdx", limit=10)}
    assert two.id in related   # (the one with bigrams may fall below the best one's share)
    assert related <= {two.id, with_bigrams.id}, (related, {only_router.id, only_update.id, only_bigrams.id})


def test_postgres_finds_cases_sharing_two_words_in_one_index_condition(tmp_path, request):
    with backend_app("postgres", tmp_path, request):
        ab = add("あ", body="認証 障害")
        ac = add("い", body="認証 更新")
        add("う", body="認証 だけ")
        add("え", body="更新 だけ")
        words = [pg_backend._atom("w", pg_backend.lexeme(w)) for w in ("認証", "障害", "更新")]
        condition = pg_backend._sharing(words, [True] * 3, 2)
        assert pg_backend._simplify(condition).op == "atom"   # the pairs as one tsquery: one scan of the GIN index

        def found(condition):
            return set(db.session.scalars(select(pg_backend.documents.c.case_id).where(pg_backend.on_table(condition))))

        assert found(condition) == {ab.id, ac.id}
        assert found(pg_backend._sharing(words, [False, True, False], 2)) == {ab.id}   # a pair with 障害, informative
        mixed = words[:2] + [pg_backend._atom("g", pg_backend.lexeme("更新"))]
        assert pg_backend._sharing(mixed, [True, False, False], 2) == pg_backend._any(mixed[0])   # across columns
        assert pg_backend._sharing(words, [True] * 3, 1) == pg_backend._any(*words)

# --- writes, rebuild and check ----------------------------------------------------------------

def test_postgres_suggestions_read_a_vocabulary_kept_as_documents_are_written(tmp_path, request):
    """「もしかして」 on PostgreSQL compares the typed word with ``search_vocabulary``, filled as
    documents are written: a search after a write does not read every document again (``ts_stat``
    took 3.5-4.2 s at 100,000 cases). A table made before the vocabulary existed gets it once; a
    reindex drops the words of cases no longer published."""
    with backend_app("postgres", tmp_path, request) as app:
        shobara = accounts.create_user("shobara", "table-password-1", "municipal", _by_name()["庄原市"])
        add("アクセスポイントの設定", "福山市")
        assert search_cases(shobara, SearchParams(q="アクセスポインド"), log_misses=False).suggestion.query == "アクセスポイント"
        firewall = add("ファイアウォールのポリシー", "呉市", body="サンドボックスを導入した。")
        with recorded_statements() as statements:
            found = search_cases(shobara, SearchParams(q="サンドバックス"), log_misses=False)
        assert found.suggestion and found.suggestion.query == "サンドボックス"
        assert not [s for s in statements if "ts_stat" in s]

        vocabulary = lambda: set(db.session.scalars(text("SELECT word FROM search_vocabulary")))  # noqa: E731
        assert {"サンドボックス", "アクセスポイント"} <= vocabulary()
        # an installation whose documents were written before the vocabulary table existed
        db.session.execute(text("DROP TABLE search_vocabulary"))
        db.session.execute(text("DELETE FROM search_state WHERE name = 'vocabulary'"))
        db.session.commit()
        pg_backend.forget_tables()
        assert search_cases(shobara, SearchParams(q="アクセスポインド"), log_misses=False).suggestion.query == "アクセスポイント"
        assert "サンドボックス" in vocabulary()

        firewall.state = CaseState.ARCHIVED.value
        queue_case(firewall)
        db.session.commit()
        apply_pending()
        assert "サンドボックス" in vocabulary()   # kept until a reindex: looked up, found in no case
        assert search_cases(shobara, SearchParams(q="サンドバックス"), log_misses=False).suggestion is None
        pg_backend.reindex()
        assert "サンドボックス" not in vocabulary() and "アクセスポイント" in vocabulary()


def test_changes_reach_search_and_leaving_publication_removes_the_case(search_app):
    desk = accounts.create_user("desk", "table-password-1", "helpdesk")
    case = add("プリンタに印刷できない")
    assert [h.case.id for h in search_cases(desk, SearchParams(q="プリンタ"), log_misses=False).hits] == [case.id]
    case.title = "複合機のスキャナが動かない"
    queue_case(case)
    db.session.commit()
    apply_pending()
    assert search_cases(desk, SearchParams(q="プリンタ"), log_misses=False).total == 0
    assert search_cases(desk, SearchParams(q="スキャナ"), log_misses=False).total == 1
    case.state = CaseState.ARCHIVED.value
    queue_case(case)
    db.session.commit()
    apply_pending()
    assert search_cases(desk, SearchParams(q="スキャナ"), log_misses=False).total == 0


def test_a_rolled_back_change_leaves_search_alone(search_app):
    desk = accounts.create_user("desk", "table-password-1", "helpdesk")
    case = add("ファイアウォールの更新")
    case.title = "ロールバックされた題名"
    queue_case(case)
    db.session.rollback()
    apply_pending()
    assert search_cases(desk, SearchParams(q="ファイアウォール"), log_misses=False).total == 1
    assert search_cases(desk, SearchParams(q="ロールバック"), log_misses=False).total == 0


def test_cli_reindex_and_check_work_on_both_backends(search_app):
    for n in range(5):
        add(f"基幹系の障害 {n}")
    runner = search_app.test_cli_runner()
    result = runner.invoke(args=["search", "reindex"])
    assert result.exit_code == 0 and "5 件" in result.output, result.output
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 0, result.output
    # break the index behind its back: one document lost
    lost = db.session.scalar(select(func.min(Case.id)))
    if search_app.config["SEARCH_BACKEND"] == "postgres":
        db.session.execute(text("DELETE FROM search_documents WHERE case_id = :id"), {"id": lost})
        db.session.commit()
    else:
        from app.search.sync import current_index

        index = current_index()
        with index.lock(), index.writer() as writer:
            writer.delete_by_term("id", str(lost))
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 1 and f"#{lost}" in result.output, result.output
    assert runner.invoke(args=["search", "reindex", "--if-outdated"]).exit_code == 0
    assert runner.invoke(args=["search", "reindex"]).exit_code == 0
    assert runner.invoke(args=["search", "check"]).exit_code == 0
    assert runner.invoke(args=["search", "sync"]).exit_code == 0


def test_postgres_without_its_table_says_so_and_reindex_restores_it(tmp_path, request):
    with backend_app("postgres", tmp_path, request) as app:
        desk = accounts.create_user("desk", "table-password-1", "helpdesk")
        add("VPN がつながらない")
        db.session.execute(text("DROP TABLE search_documents"))
        db.session.execute(text("DELETE FROM search_state"))
        db.session.commit()
        pg_backend.forget_tables()
        result = search_cases(desk, SearchParams(q="VPN"), log_misses=False)
        assert result.unavailable and result.total == 0
        client = app.test_client()
        assert app.test_cli_runner().invoke(args=["search", "check"]).exit_code == 1
        assert app.test_cli_runner().invoke(args=["search", "reindex"]).exit_code == 0
        assert search_cases(desk, SearchParams(q="VPN"), log_misses=False).total == 1
        assert client.get("/healthz").status_code in (200, 503)


# --- rum ----------------------------------------------------------------------------------------

def test_rum_is_detected_and_used_for_broad_queries_or_left_alone(tmp_path, request, monkeypatch):
    """SEARCH_USE_RUM (off by default: rum crashed under load) uses the extension where it exists."""
    with backend_app("postgres", tmp_path, request, SEARCH_USE_RUM=True) as app:
        desk = accounts.create_user("desk", "table-password-1", "helpdesk")
        shobara = accounts.create_user("shobara", "table-password-1", "municipal", _by_name()["庄原市"])
        db.session.commit()
        for n in range(12):
            add(f"VPN 接続の事例 {n}", "福山市", "all", body="VPN " * (n + 1))
        add("非公開の VPN 事例", "呉市", "private", body="VPN VPN VPN")
        with db.engine.connect() as connection:
            available = pg_backend.rum_available(connection)
            installed = pg_backend.rum_installed(connection)
        assert installed == available   # installed wherever the server has it
        assert pg_backend.rum_in_use() == available
        full = search_cases(shobara, SearchParams(q="VPN 接続", per_page=5), log_misses=False)
        monkeypatch.setattr(pg_backend, "RUM_MIN_HITS", 1)
        monkeypatch.setattr(pg_backend, "RUM_POOL", 8)
        pooled = search_cases(shobara, SearchParams(q="VPN 接続", per_page=5), log_misses=False)
        assert pooled.total == full.total == 12
        assert len(pooled.hits) == 5 and all(h.case.title != "非公開の VPN 事例" for h in pooled.hits)
        assert search_cases(desk, SearchParams(q="VPN", per_page=5), log_misses=False).total == 13


def test_rum_is_off_by_default_and_an_index_left_from_before_is_dropped(tmp_path, request):
    with backend_app("postgres", tmp_path, request) as app:
        add("VPN 接続の事例", "福山市", "all")
        with db.engine.begin() as connection:
            available = pg_backend.rum_available(connection)
            if available:   # as an earlier version left it
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS rum"))
                connection.execute(text(pg_backend._RUM_DDL))
        pg_backend.forget_tables()
        desk = accounts.create_user("desk", "table-password-1", "helpdesk")
        db.session.commit()
        assert search_cases(desk, SearchParams(q="VPN"), log_misses=False).total == 1
        assert pg_backend.rum_in_use() is False


# --- bad configuration and hostile input ------------------------------------------------------

@pytest.mark.parametrize("name,database", [("elastic", "sqlite"), ("postgres", "sqlite")])
def test_a_wrong_backend_setting_is_named_not_a_500(tmp_path, name, database):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'x.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "index")
        SEARCH_BACKEND = name

    app = create_app(Config)
    with app.app_context():
        db.create_all()
        load_reference(ROOT / "content")
        desk = accounts.create_user("desk", "table-password-1", "helpdesk")
        db.session.commit()
        add("VPN がつながらない")   # the write is kept (on the outbox) whatever the setting
        result = search_cases(desk, SearchParams(q="VPN"), log_misses=False)
        assert result.unavailable and "SEARCH_BACKEND" in result.unavailable
        cli = app.test_cli_runner().invoke(args=["search", "reindex"])
        assert cli.exit_code == 1 and "SEARCH_BACKEND" in cli.output
        db.session.remove()
        db.engine.dispose()


HOSTILE = ["'", "\\", "a'b", "'':*", "!!", "& | !", "(((", "VPN:*", "VPN & !プリンタ", "<->", "\u0000x",
           "ＶＰＮ" * 300, '"', '"\'"', "🙂", "%_", "\\'; DROP TABLE cases; --"]


def test_hostile_queries_never_fail(search_app):
    desk = accounts.create_user("desk", "table-password-1", "helpdesk")
    token = accounts.create_token(desk)
    db.session.commit()
    add("VPN がつながらない")
    client = search_app.test_client()
    for q in HOSTILE:
        response = client.get("/api/v1/cases", query_string={"q": q}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 400), (q, response.status_code)
    assert search_cases(desk, SearchParams(q="VPN"), log_misses=False).total == 1


def test_a_superseded_case_ranks_below_its_replacement_only_for_readers_of_the_replacement(search_app):
    """The older case (the query's words in its title) ranks first until a newer case the reader
    may read supersedes it; then it comes after every other hit. A superseding case the reader may
    not read changes nothing."""
    from app.services import review

    old = add("VPN 接続 の手順", body="VPN 接続 の設定")
    new = add("新しい手順", body="VPN 接続 の設定")
    hidden = add("VPN 接続 の非公開手順", owner="三次市", visibility="private", body="VPN 接続")
    reader = accounts.create_user("shobara-s", "table-password-1", "municipal", _by_name()["庄原市"])
    desk = accounts.create_user("desk-s", "table-password-1", "helpdesk", None)
    db.session.commit()

    def order():
        return [h.case.id for h in search_cases(reader, SearchParams(q="VPN 接続"), log_misses=False).hits]

    first = order()
    assert hidden.id not in first and first.index(old.id) < first.index(new.id)
    db.session.execute(Case.__table__.update().where(Case.id == old.id).values(superseded_by_id=hidden.id))
    db.session.commit()
    assert order() == first
    review.set_superseded_by(desk, db.session.get(Case, old.id), str(new.id))
    db.session.commit()
    after = order()
    assert after.index(new.id) < after.index(old.id)

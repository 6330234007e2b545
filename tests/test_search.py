"""Search: analysis, permissions inside the query, consistency with the database, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import Case, SearchMiss, SearchOutbox, SearchSynonym
from app.search import analysis
from app.search.service import SearchParams, search_cases
from app.search.snippets import make_snippet
from app.search.sync import apply_pending, check, current_index, pending_exists, queue_case, reindex
from app.services import municipalities as municipality_service
from tests.conftest import municipality, recorded_statements

ROOT = Path(__file__).resolve().parent.parent


# --- analysis ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,same_as", [
    ("ＶＰＮ", "vpn"), ("ｻｰﾊﾞ", "サーバ"), ("サーバー", "サーバ"), ("プリンター", "プリンタ"),
    ("セキュリティー", "セキュリティ"), ("Ｗｉ－Ｆｉ", "wi-fi"), ("サーバールーム", "サーバルーム"),
    ("セキュリティーポリシー", "セキュリティポリシ"), ("ユーザーアカウント", "ユーザアカウント"),
    ("Win10", "Windows 10"), ("windows10", "WINDOWS 10"), ("Ｗｉｎ１１", "windows 11"), ("WS2019", "Windows Server 2019"),
])
def test_normalise_folds_width_case_long_vowels_and_version_shorthands(raw, same_as):
    assert analysis.normalise(raw) == analysis.normalise(same_as)


def test_long_vowel_marks_inside_compounds_meet_in_words_and_bigrams():
    for a, b in (("サーバールームの温度", "サーバルームの温度"), ("セキュリティーポリシーの改定", "セキュリティポリシーの改定")):
        assert [w.text for w in analysis.words(a)] == [w.text for w in analysis.words(b)]
        assert analysis.bigrams(a) == analysis.bigrams(b)


def test_snippet_offsets_survive_every_fold():
    text = "Win10 のサーバールームで障害"
    folded, offsets = analysis.normalise_with_offsets(text)
    assert folded == analysis.normalise(text)
    start = folded.index("サバルム")
    assert text[offsets[start]:offsets[start + 4]] == "サーバールーム"


@pytest.mark.parametrize("seed", range(4))
def test_snippet_offsets_agree_with_normalise_on_mixed_text(seed):
    import random

    rng = random.Random(seed)
    alphabet = list("ｶﾞﾟｱｰサーバールームＡＢＣabc１２Win10 ws2019 漢字の。\nßİ㍻①ﾞ") + ["ﬁ", "㌔", "ｳﾞｧ"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        folded, offsets = analysis.normalise_with_offsets(text)
        assert folded == analysis.normalise(text)
        assert len(offsets) == len(folded) + 1 and offsets[-1] == len(text)
        assert offsets == sorted(offsets) and all(0 <= o <= len(text) for o in offsets)


def test_words_drop_particles_and_filler_and_keep_content():
    texts = [w.text for w in analysis.words("夜間バッチが朝までに終わらないときに確認すること")]
    assert texts == ["夜間", "バッチ", "朝", "終わる", "確認"]


def test_katakana_variants_give_the_same_words():
    assert [w.text for w in analysis.words("サーバーのプリンター")] == [w.text for w in analysis.words("ｻｰﾊﾞのプリンタ")]


def test_compounds_also_yield_their_parts():
    word = analysis.words("無線LANアクセスポイント")[-1]
    assert word.text == "アクセスポイント" and word.parts == ["アクセス", "ポイント"]


def test_bigrams_cover_latin_digits_and_katakana_only():
    assert analysis.bigrams("FortiGate60Fの設定とサーバー") == [
        "fo", "or", "rt", "ti", "ig", "ga", "at", "te", "e6", "60", "0f", "サバ"]


def test_tokenizer_is_one_per_thread():
    import threading

    errors = []

    def work():
        try:
            for _ in range(50):
                analysis.words("情報セキュリティポリシーの見直しとサーバー更改")
        except Exception as error:  # "Already borrowed" if a tokenizer were shared
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_snippet_marks_words_in_the_original_text_and_escapes_html():
    snippet = str(make_snippet("前置き。ｻｰﾊﾞーに接続できない<script>x</script>。VPN装置を再起動した。", ["サーバ", "vpn"]))
    assert "<mark>ｻｰﾊﾞー</mark>" in snippet and "<mark>VPN</mark>" in snippet
    assert "<script>" not in snippet and "&lt;script&gt;" in snippet


def test_snippet_starts_at_a_sentence():
    text = "一文目はとても長い前置きです。" * 10 + "二文目で証明書の期限が切れていました。三文目。"
    snippet = str(make_snippet(text, ["証明書"]))
    assert snippet.startswith("…二文目で<mark>証明書</mark>")


# --- a small world ----------------------------------------------------------------------------

def add_case(make_user, title, *, owner="呉市", visibility="all", body="本文", tags=(), category="network"):
    from app.models import Category, CaseState
    from app.services.validation import tags_for

    case = Case(
        title=title, issue=body, resolution="対応した。", category=db.session.scalar(
            select(Category).where(Category.slug == category)),
        municipality=municipality(owner) if owner else None, state=CaseState.PUBLISHED.value,
        visibility=visibility, sharing_consent=visibility, tags=tags_for(list(tags)),
    )
    from app.models import utcnow

    case.published_at = utcnow()
    db.session.add(case)
    db.session.flush()
    queue_case(case)
    db.session.commit()
    apply_pending()
    return case


def titles(user, q, **kw):
    result = search_cases(user, SearchParams(q=q, **kw), log_misses=False)
    return result, [h.case.title for h in result.hits]


# --- permissions ------------------------------------------------------------------------------

def test_search_shows_only_what_the_policy_allows_in_hits_totals_facets_and_snippets(make_user):
    kure = make_user("municipal", "呉市")
    shobara = make_user("municipal", "庄原市")
    desk = make_user("helpdesk")
    add_case(make_user, "呉市の非公開VPN障害", owner="呉市", visibility="private", body="秘密のVPNホスト vpn01")
    add_case(make_user, "全体共有のVPN設定", owner="福山市", visibility="all", body="VPNの設定例")
    add_case(make_user, "近隣共有のVPN更新", owner="東広島市", visibility="neighbours", body="VPN機器の更新")

    result, seen = titles(shobara, "VPN")
    assert seen == ["全体共有のVPN設定"]
    assert result.total == 1
    assert [label for _v, label, _n in result.facets["municipality"]] == ["福山市"]
    assert all("vpn01" not in str(h.snippet) for h in result.hits)

    result, seen = titles(kure, "VPN")
    assert set(seen) == {"呉市の非公開VPN障害", "全体共有のVPN設定"}
    assert result.total == 2

    municipality_service.link(municipality("呉市"), municipality("東広島市"))
    db.session.commit()
    _result, seen = titles(kure, "VPN")
    assert "近隣共有のVPN更新" in seen

    result, seen = titles(desk, "VPN")
    assert result.total == 3


def test_group_members_see_neighbours_cases(make_user):
    sera = make_user("municipal", "世羅町")  # 共同利用2 with 三原市
    add_case(make_user, "三原市の基幹システム共同利用", owner="三原市", visibility="neighbours")
    _result, seen = titles(sera, "基幹システム")
    assert seen == ["三原市の基幹システム共同利用"]


def test_observer_viewer_sees_cases_shared_with_all_only(make_user):
    viewer = make_user("viewer", "笠岡市")
    add_case(make_user, "全市町共有のUTM更新", visibility="all")
    add_case(make_user, "非公開のUTM更新", visibility="private")
    _result, seen = titles(viewer, "UTM")
    assert seen == ["全市町共有のUTM更新"]


def test_a_user_who_may_see_nothing_in_the_index_gets_nothing_not_everything(make_user):
    kure = make_user("municipal", "竹原市")
    add_case(make_user, "呉市だけのプリンタ設定", owner="呉市", visibility="private")
    result, seen = titles(kure, "プリンタ")
    assert result.total == 0 and seen == []
    result, seen = titles(kure, "")
    assert result.total == 0


def test_drafts_are_not_searchable(make_user):
    desk = make_user("helpdesk")
    case = add_case(make_user, "下書きになるDNS設定")
    case.state = "draft"
    queue_case(case)
    db.session.commit()
    apply_pending()
    assert titles(desk, "DNS")[0].total == 0


# --- consistency with the database ------------------------------------------------------------

def test_publish_and_edit_reach_the_index_right_after_the_commit(client, make_user, make_question, token_for):
    asker = make_user("municipal", "呉市")
    desk = make_user("helpdesk")
    headers = token_for(desk)
    question = make_question(asker, title="プロキシ認証でWeb会議が切れる")
    answer = client.post(f"/api/v1/questions/{question.id}/answers", headers=headers, json={"body": "除外設定"}).get_json()
    case = client.post(f"/api/v1/questions/{question.id}/resolve", headers=headers, json={"answer_id": answer["id"]}).get_json()
    assert titles(desk, "プロキシ")[0].total == 0  # a draft is not in the index
    client.post(f"/api/v1/cases/{case['id']}/publish", headers=headers, json={})
    assert titles(desk, "プロキシ")[1] == ["プロキシ認証でWeb会議が切れる"]
    client.patch(f"/api/v1/cases/{case['id']}", headers=headers, json={"title": "Web会議の音声が途切れる"})
    assert titles(desk, "プロキシ")[0].total == 0  # the old title is gone from the index
    assert titles(desk, "音声")[1] == ["Web会議の音声が途切れる"]
    assert check().ok


def test_threads_of_a_process_share_one_reader_and_answer_as_one_thread_does(app, make_user):
    """The worker's threads read one index version through one cache (under its lock): searches
    from several threads at once give exactly what one thread gets, also across a publish."""
    import threading

    kure = make_user("municipal", "呉市")
    desk = make_user("helpdesk")
    for i in range(12):
        add_case(make_user, f"ファイアウォール設定{i}", body=f"UTMのポリシー{i}とVPN接続の確認", owner="呉市" if i % 3 else "庄原市",
                 visibility="private" if i % 4 == 0 else "all")
    queries = ["ファイアウォール", "VPN 確認", "UTM ポリシー", "設定"]
    users = [kure.id, desk.id]
    from app.models import User

    def found(u, q):
        return [h.case.id for h in search_cases(db.session.get(User, u), SearchParams(q=q), log_misses=False).hits]

    expected = {(u, q): found(u, q) for u in users for q in queries}
    index = current_index()
    first_cache = index.reading()[1]
    seen_caches, failures = set(), []

    def run(n):
        with app.app_context():
            try:
                for k in range(20):
                    u, q = users[(n + k) % 2], queries[(n * 3 + k) % 4]
                    got = found(u, q)
                    if got != expected[(u, q)]:
                        failures.append((u, q, got))
                    seen_caches.add(id(index.reading()[1]))
            except Exception as error:  # pragma: no cover - reported below
                failures.append(repr(error))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert seen_caches == {id(first_cache)}   # one cache for all threads of the process
    add_case(make_user, "ファイアウォール更新の手順", body="UTM", owner="呉市")
    assert index.reading()[1] is not first_cache   # a new version after the publish
    assert "ファイアウォール更新の手順" in titles(kure, "ファイアウォール")[1]


def test_the_reader_cache_drops_the_least_recently_used_first_and_counts_a_shared_value_once(make_user):
    """Within its budget: what every request uses (the reader's arrays, a scope's mask) was dropped
    first when the oldest entry went first, and a word that is just its exact form held its
    scores twice."""
    from app.search.index import ReaderCache

    add_case(make_user, "キャッシュの事例")
    searcher = current_index().reading()[0]

    class Value:
        nbytes = 100

    cache = ReaderCache(searcher, limit_bytes=300)
    a, b, c, d = Value(), Value(), Value(), Value()
    for key, value in (("a", a), ("b", b), ("c", c)):
        assert cache.memo((key,), lambda value=value: value) is value
    assert cache.memo(("a",), lambda: Value()) is a        # used again: now the most recent
    assert cache.memo(("d",), lambda: d) is d               # over budget: "b" goes, not "a"
    assert cache.held_bytes == 300
    assert cache.memo(("a",), lambda: Value()) is a
    computed = cache.computed
    assert cache.memo(("b",), lambda: b) is b and cache.computed == computed + 1   # computed again
    assert cache.memo(("same as d",), lambda: d) is d       # one value under two keys: counted once
    assert cache.held_bytes == 300
    assert cache.memo(("c",), lambda: Value()) is not c     # "c" went to make room for "b"


def test_work_on_a_draft_applies_without_making_a_new_index_version(make_user):
    """A draft is never in the index: applying its queued work writes nothing, so the version stays
    and no worker has to start its caches again; publishing it makes the new version."""
    from app.models import Category, CaseState, utcnow

    desk = make_user("helpdesk")
    add_case(make_user, "公開済みの事例 スイッチ")
    index = current_index()
    searcher = index.reading()[0]
    draft = Case(title="下書きの事例 スイッチ", issue="本文", resolution="対応した。", state=CaseState.DRAFT.value,
                 category=db.session.scalar(select(Category).where(Category.slug == "network")),
                 municipality=municipality("呉市"), visibility="private", sharing_consent="private")
    db.session.add(draft)
    db.session.flush()
    queue_case(draft)
    db.session.commit()
    assert pending_exists()
    apply_pending()
    assert not pending_exists()                   # applied (this index's position moved on)
    assert index.reading()[0] is searcher         # the same index version
    draft.state, draft.visibility, draft.sharing_consent = CaseState.PUBLISHED.value, "all", "all"
    draft.published_at = utcnow()
    queue_case(draft)
    db.session.commit()
    apply_pending()
    assert index.reading()[0] is not searcher
    assert sorted(titles(desk, "スイッチ")[1]) == ["下書きの事例 スイッチ", "公開済みの事例 スイッチ"]
    assert check().ok


def test_the_schema_check_reads_again_when_a_commit_removed_the_file_it_was_opening(make_user, monkeypatch):
    """Under load the background sync failed with FileNotFoundError: another worker's commit had
    replaced the index's table of contents between listing and opening it."""
    from whoosh import index as whoosh_index

    add_case(make_user, "スキーマ確認の事例")
    real_open_dir = whoosh_index.open_dir
    calls = []

    def open_dir_racing_a_commit(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise FileNotFoundError("_MAIN_49.toc")
        return real_open_dir(*args, **kwargs)

    monkeypatch.setattr(whoosh_index, "open_dir", open_dir_racing_a_commit)
    assert current_index().schema_outdated() is False
    assert len(calls) == 2


def test_a_failed_index_write_is_kept_and_retried(app, make_user, monkeypatch):
    desk = make_user("helpdesk")
    from app.search import index as index_module

    def broken_writer(self, generation=None, procs=1):
        raise OSError("disk full")

    monkeypatch.setattr(index_module.SearchIndex, "writer", broken_writer)
    with pytest.raises(OSError):
        add_case(make_user, "停電後にスイッチが起動しない")
    row = db.session.scalar(select(SearchOutbox))
    assert pending_exists() and row.attempts == 1 and "disk full" in row.last_error
    assert db.session.scalar(select(func.count()).select_from(Case)) == 1  # the database keeps the case
    monkeypatch.undo()
    assert not check().ok
    apply_pending()
    assert titles(desk, "停電")[1] == ["停電後にスイッチが起動しない"]
    assert check().ok


def test_a_search_does_not_wait_for_another_worker_that_is_applying_queued_work(app, make_user):
    """Work queued over 2 s ago is applied by the next search, unless another worker holds the
    index lock (it is applying that work): then the search answers at once from the index as it is."""
    import threading
    import time
    from datetime import timedelta

    from app.models import Category, CaseState, utcnow

    desk = make_user("helpdesk")
    add_case(make_user, "既にある事例 ルーター")
    case = Case(title="キューにある事例 ルーター", issue="本文", resolution="対応した。", state=CaseState.PUBLISHED.value,
                category=db.session.scalar(select(Category).where(Category.slug == "network")),
                municipality=municipality("呉市"), visibility="all", sharing_consent="all", published_at=utcnow())
    db.session.add(case)
    db.session.flush()
    queue_case(case)
    db.session.execute(SearchOutbox.__table__.update().values(created_at=utcnow() - timedelta(seconds=10)))
    db.session.commit()
    held, release = threading.Event(), threading.Event()
    index = current_index()

    def other_worker():
        with index.lock():
            held.set()
            release.wait(30)

    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        assert titles(desk, "ルーター")[1] == ["既にある事例 ルーター"]
        assert time.monotonic() - started < 5   # the lock's own timeout is 60 s
        assert pending_exists()
    finally:
        release.set()
        worker.join()
    assert sorted(titles(desk, "ルーター")[1]) == ["キューにある事例 ルーター", "既にある事例 ルーター"]
    assert not pending_exists()


def test_reindex_builds_a_new_generation_and_keeps_searching(make_user):
    desk = make_user("helpdesk")
    add_case(make_user, "ガバメントクラウド接続の回線選定")
    index = current_index()
    before = index.current_generation()
    report = reindex()
    assert report.documents == 1
    assert index.current_generation() != before
    assert titles(desk, "ガバクラ")[1] == ["ガバメントクラウド接続の回線選定"]
    assert check().ok


def test_check_reports_every_difference(make_user):
    first = add_case(make_user, "ランサムウェア初動")
    second = add_case(make_user, "標的型メール訓練")
    with current_index().lock(), current_index().writer() as writer:
        writer.delete_by_term("id", str(first.id))
    second.title = "標的型メール訓練（改訂）"
    db.session.commit()  # changed without queueing: the index is now stale
    report = check()
    assert report.missing == [first.id] and report.stale == [second.id] and not report.ok


def test_cli_check_and_reindex(runner, make_user):
    add_case(make_user, "複合機のスキャンが共有フォルダに保存できない")
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 0 and "一致" in result.output
    with current_index().lock(), current_index().writer() as writer:
        writer.delete_by_term("id", "1")
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 1 and "事例 #1" in result.output
    result = runner.invoke(args=["search", "reindex"])
    assert result.exit_code == 0 and "1 件を索引しました" in result.output
    assert runner.invoke(args=["search", "check"]).exit_code == 0


def test_two_processes_writing_at_once_lose_nothing(app, tmp_path):
    """Two CLI processes import into the same database and index at the same time."""
    env = {
        "FLASK_SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "FLASK_SEARCH_INDEX_DIR": app.config["SEARCH_INDEX_DIR"],
        "APP_CONFIG": "development",
        "PATH": "/usr/bin:/bin",
    }
    db.session.commit()
    files = []
    for n in range(2):
        path = tmp_path / f"part{n}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for i in range(25):
                handle.write(json.dumps({"title": f"並行取り込み{n}-{i} サーバ更改", "issue": "内容",
                                         "resolution": "対応", "visibility": "all"}, ensure_ascii=False) + "\n")
        files.append(path)
    processes = [
        subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "cases", "import", str(path)],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for path in files
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Case)) == 50
    report = check()
    assert report.ok and report.pending == 0, report


# --- query features ---------------------------------------------------------------------------

def test_quoted_phrase_must_appear_as_typed(make_user):
    desk = make_user("helpdesk")
    add_case(make_user, "証明書の期限切れ", body="サーバ証明書の期限が切れた")
    add_case(make_user, "期限と証明書", body="証明書を更新する期限を決めた")
    _r, seen = titles(desk, '"証明書の期限"')
    assert seen == ["証明書の期限切れ"]


def test_filters_by_category_tag_municipality_and_period(make_user):
    desk = make_user("helpdesk")
    add_case(make_user, "無線LANの設定A", tags=["Wi-Fi"], category="network", owner="呉市")
    add_case(make_user, "無線LANの設定B", tags=["暗号化"], category="security", owner="福山市")
    assert titles(desk, "無線LAN", category="security")[1] == ["無線LANの設定B"]
    assert titles(desk, "無線LAN", tag="ｗｉ－ｆｉ")[1] == ["無線LANの設定A"]
    assert titles(desk, "無線LAN", municipality=str(municipality("呉市").id))[1] == ["無線LANの設定A"]
    from datetime import date, timedelta

    assert titles(desk, "無線LAN", date_to=date.today() - timedelta(days=2))[0].total == 0


def test_synonym_added_by_the_help_desk_applies_at_once(client, make_user, login):
    desk = make_user("helpdesk")
    add_case(make_user, "SIEMの導入", body="SIEMでログを集めた")
    assert titles(desk, "ログ分析基盤")[0].total == 0
    login(desk)
    response = client.post("/search/synonyms", data={"terms": "SIEM=ログ分析基盤"})
    assert response.status_code == 302
    assert titles(desk, "ログ分析基盤")[1] == ["SIEMの導入"]


def test_queries_without_results_are_logged_without_the_user_and_listed(client, make_user, login):
    kure = make_user("municipal", "呉市")
    login(kure)
    client.get("/search?q=量子暗号の調達")
    miss = db.session.scalar(select(SearchMiss))
    assert miss.query == "量子暗号の調達"
    assert {c.name for c in SearchMiss.__table__.columns} == {"id", "query", "created_at"}
    assert client.get("/search/misses").status_code == 403
    login(make_user("helpdesk"))
    assert "量子暗号の調達" in client.get("/search/misses").get_data(as_text=True)


def test_search_page_shows_hits_snippets_and_facets(client, make_user, login):
    add_case(make_user, "VPN装置の証明書更新", body="VPN装置の証明書が期限切れ。")
    login(make_user("municipal", "呉市"))
    page = client.get("/search?q=ＶＰＮ").get_data(as_text=True)
    assert "VPN装置の証明書更新" in page and "<mark>VPN</mark>" in page
    assert "1件" in page and "ネットワーク" in page


def test_api_search_returns_total_results_and_snippets(client, make_user, token_for):
    add_case(make_user, "UTMのファームウェア更新", body="UTMを更新した")
    headers = token_for(make_user("municipal", "庄原市"))
    body = client.get("/api/v1/cases?q=統合脅威管理", headers=headers).get_json()
    assert body["total"] == 1
    hit = body["results"][0]
    assert hit["title"] == "UTMのファームウェア更新" and "<mark>" in hit["snippet"] and hit["score"] > 0
    assert client.get("/api/v1/cases?page=0", headers=headers).status_code == 400
    assert client.get("/api/v1/cases?municipality=どこか", headers=headers).status_code == 400


@pytest.mark.parametrize("total, informative", [
    (1000, ["vpn", "証明書", "期限"]),            # 業務 and システム: in most of the reader's cases
    (99, ["vpn", "証明書", "期限", "業務", "システム"]),   # a small library: every word counts
])
def test_related_cases_need_an_informative_word(total, informative):
    from app.search import querying

    words = querying.parse("業務 システム VPN 証明書 期限").words
    share = {"業務": 0.7, "システム": 0.9, "vpn": 0.02, "証明書": 0.05, "期限": 0.1}
    matched = {id(w): max(1, int(share[w.text] * total)) for w in words}
    related = querying.related_words(words, matched, total)
    assert [w.text for w in related.chosen] == ["vpn", "証明書", "期限", "業務", "システム"]   # all score, rarest first
    assert [w.text for w, flag in zip(related.chosen, related.informative) if flag] == informative
    assert related.least == 2


def test_related_cases_of_a_text_of_common_words_use_them_all():
    from app.search import querying

    words = querying.parse("業務 システム").words
    matched = {id(w): 800 for w in words}
    related = querying.related_words(words, matched, 1000)
    assert {w.text for w in related.chosen} == {"業務", "システム"} and all(related.informative)
    assert related.least == 1   # fewer than three words: one shared word is enough


def test_similar_cases_while_typing_a_question(client, make_user, login):
    add_case(make_user, "夜間バッチが朝までに終わらない", body="夜間バッチの処理時間が延びた")
    add_case(make_user, "プリンタの印刷が遅い")
    login(make_user("municipal", "呉市"))
    data = client.post("/search/similar", data={"title": "夜間のバッチ処理", "body": "朝までに終わりません"}).get_json()
    assert [r["title"] for r in data["results"]][:1] == ["夜間バッチが朝までに終わらない"]
    # What is typed into a draft never travels in a URL.
    assert client.get("/search/similar?title=fs01.city.local&body=192.168.1.1").status_code == 405


def test_the_index_is_rebuildable_from_the_database_alone(app, make_user):
    add_case(make_user, "LGWANメールの遅延")
    import shutil

    shutil.rmtree(app.config["SEARCH_INDEX_DIR"])
    from app.search import index as index_module

    index_module.forget_indexes()
    reindex()
    desk = make_user("helpdesk")
    assert titles(desk, "総合行政ネットワーク")[1] == ["LGWANメールの遅延"]


# --- import and export ------------------------------------------------------------------------

def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


CSV = ("title,issue,environment,cause,resolution,category,tags,municipality,visibility,published_at\r\n"
       "Excelから来た事例,症状です,,,対応です,ネットワーク,VPN、テレワーク,呉市,all,2024/4/1\r\n"
       "和暦の事例,症状,,,対応,security,,342076,neighbours,令和6年4月1日\r\n"
       "県の事例,症状,,,対応,,,,,\r\n")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_import_csv_in_every_excel_encoding(runner, tmp_path, encoding):
    path = write(tmp_path / "faq.csv", CSV, encoding)
    result = runner.invoke(args=["cases", "import", str(path)])
    assert result.exit_code == 0, result.output
    cases = {c.title: c for c in db.session.scalars(select(Case))}
    assert set(cases) == {"Excelから来た事例", "和暦の事例", "県の事例"}
    excel = cases["Excelから来た事例"]
    assert [t.name for t in excel.tags] == ["VPN", "テレワーク"] and excel.municipality.name == "呉市"
    assert excel.state == "published" and excel.visibility == "all" and excel.sharing_consent == "all"
    assert cases["和暦の事例"].municipality.name == "福山市"
    from app.models import as_utc
    from zoneinfo import ZoneInfo

    assert as_utc(cases["和暦の事例"].published_at).astimezone(ZoneInfo("Asia/Tokyo")).date().isoformat() == "2024-04-01"
    assert cases["県の事例"].municipality is None and cases["県の事例"].visibility == "private"
    assert cases["県の事例"].category.slug == "other"
    assert check().ok  # imported cases are indexed before the command ends


def test_import_with_an_invalid_row_imports_nothing(runner, tmp_path):
    text = CSV + "件名だけ,,,,,network,,,,\r\n" + "不明な市,症状,,,対応,network,,どこか町,,\r\n"
    path = write(tmp_path / "bad.csv", text, "utf-8-sig")
    result = runner.invoke(args=["cases", "import", str(path)])
    assert result.exit_code != 0
    assert "line 5: issue" in result.output and "line 5: resolution" in result.output
    assert "line 6: municipality" in result.output
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0


def test_import_dry_run_changes_nothing(runner, tmp_path):
    path = write(tmp_path / "faq.csv", CSV)
    result = runner.invoke(args=["cases", "import", str(path), "--dry-run"])
    assert result.exit_code == 0 and "3 件を取り込めます" in result.output
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0


def test_import_jsonl_with_a_tag_list_and_reimport_skips(runner, tmp_path):
    row = {"title": "JSON事例", "issue": "症状", "resolution": "対応", "tags": ["UTM", "ログ"], "category": "security"}
    path = write(tmp_path / "faq.jsonl", json.dumps(row, ensure_ascii=False) + "\n\n")
    assert runner.invoke(args=["cases", "import", str(path)]).exit_code == 0
    again = runner.invoke(args=["cases", "import", str(path)])
    assert again.exit_code == 0 and "読み飛ばしました" in again.output
    assert db.session.scalar(select(func.count()).select_from(Case)) == 1


def test_a_bulk_import_is_stored_in_batches_and_written_by_several_index_processes(app, runner, tmp_path, monkeypatch,
                                                                                   make_user):
    """Batches of a few rows and a parallel index writer (thresholds lowered) give what one row
    at a time did: every case with its tags, one revision each, one document each in the index
    (also for a case that was indexed before and is written again), a clean check."""
    from app.models import CaseRevision
    from app.search import sync
    from app.services import importing

    monkeypatch.setattr(importing, "IMPORT_BATCH", 3)
    monkeypatch.setattr(sync, "PARALLEL_MIN", 4)
    desk = make_user("helpdesk")
    before = add_case(make_user, "既存の事例 UTM", body="UTM")
    rows = [{"title": f"一括事例{i}", "issue": f"症状{i} ファイアウォール", "resolution": "対応",
             "tags": ["UTM", f"タグ{i % 3}"], "category": "security", "municipality": "呉市", "visibility": "all"}
            for i in range(11)]
    path = write(tmp_path / "bulk.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    queue_case(before)   # written again in the same bulk: replaced, not doubled
    db.session.commit()
    from app.search.index import SearchIndex

    writers, real_writer = [], SearchIndex.writer
    monkeypatch.setattr(SearchIndex, "writer", lambda self, generation=None, procs=1: (
        writers.append(procs), real_writer(self, generation, procs))[1])
    result = runner.invoke(args=["cases", "import", str(path), "--procs", "2"])
    assert result.exit_code == 0, result.output
    assert writers == [2]
    cases = db.session.scalars(select(Case).where(Case.title.like("一括事例%"))).all()
    assert len(cases) == 11
    assert all(sorted(t.name for t in c.tags) == sorted(["UTM", f"タグ{int(c.title[4:]) % 3}"]) for c in cases)
    assert db.session.scalar(select(func.count()).select_from(CaseRevision)
                             .where(CaseRevision.case_id.in_([c.id for c in cases]))) == 11
    assert all(c.review_due is not None and c.created_at is not None and c.updated_at is not None for c in cases)
    assert check().ok and not pending_exists()
    result, found = titles(desk, "UTM")
    assert result.total == 12 and found.count("既存の事例 UTM") == 1


def test_a_tag_that_appeared_meanwhile_is_used_not_inserted_twice(app):
    """Two people asking at once with the same new tag: the second finds the first one's row
    (``known`` stands for what this transaction read before the other one committed)."""
    from app.models import Tag
    from app.services.validation import tags_for

    db.session.add(Tag(name="新しいタグ"))
    db.session.commit()
    found = tags_for(["新しいタグ", "もう一つ"], known={})
    db.session.commit()
    assert [t.name for t in found] == ["新しいタグ", "もう一つ"]
    assert db.session.scalar(select(func.count()).select_from(Tag).where(Tag.name == "新しいタグ")) == 1


def test_a_large_import_refreshes_the_planners_statistics(app, runner, tmp_path, monkeypatch):
    from app import cli

    monkeypatch.setattr(cli, "ANALYZE_AFTER_IMPORT", 2)
    with recorded_statements() as statements:
        assert runner.invoke(args=["cases", "import", str(write(tmp_path / "faq.csv", CSV))]).exit_code == 0
    if db.engine.dialect.name == "sqlite":
        assert any(s.strip() == "ANALYZE cases" for s in statements)
        assert db.session.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'cases'")).scalar() > 0
    else:
        assert any(s.strip() == "VACUUM (ANALYZE) cases" for s in statements)
        # the planner knows the rows (-1 before any analyse; the index-only scan that the vacuum
        # allows is checked in test_search_backends)
        assert db.session.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'cases'")).scalar() >= 3


def test_import_reports_malformed_jsonl_lines(runner, tmp_path):
    path = write(tmp_path / "faq.jsonl", '{"title": "a", "issue": "b", "resolution": "c"}\n{broken\n')
    result = runner.invoke(args=["cases", "import", str(path)])
    assert result.exit_code != 0 and "line 2" in result.output
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0


def test_export_csv_opens_in_excel_and_round_trips(runner, tmp_path):
    runner.invoke(args=["cases", "import", str(write(tmp_path / "faq.csv", CSV))])
    out = tmp_path / "out.csv"
    assert runner.invoke(args=["cases", "export", str(out)]).exit_code == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "Excelから来た事例" in raw.decode("utf-8-sig") and "VPN、テレワーク" in raw.decode("utf-8-sig")
    jsonl = tmp_path / "out.jsonl"
    runner.invoke(args=["cases", "export", str(jsonl)])
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert {r["title"] for r in rows} == {"Excelから来た事例", "和暦の事例", "県の事例"}
    assert next(r for r in rows if r["title"] == "和暦の事例")["published_at"] == "2024-04-01"


def test_content_load_ships_synonyms_and_keeps_help_desk_ones(runner, make_user):
    db.session.add(SearchSynonym(terms="SIEM=ログ分析基盤", source="helpdesk"))
    db.session.commit()
    runner.invoke(args=["content", "load"])
    runner.invoke(args=["content", "load"])
    groups = set(db.session.scalars(select(SearchSynonym.terms)))
    assert "UTM=統合脅威管理=統合脅威管理装置" in groups and "SIEM=ログ分析基盤" in groups
    assert db.session.scalar(select(func.count()).select_from(SearchSynonym)) == len(groups)


def test_words_missing_from_the_dictionary_are_found_through_bigrams(make_user):
    desk = make_user("helpdesk")
    add_case(make_user, "ＦｏｒｔｉＧａｔｅ６０Ｆのファーム更新", body="ﾌｫｰﾃｨｹﾞｰﾄ機器")
    assert titles(desk, "ortigat")[1] == ["ＦｏｒｔｉＧａｔｅ６０Ｆのファーム更新"]
    assert titles(desk, "gate60f")[0].total == 1
    assert titles(desk, "gatefort")[0].total == 0  # every bigram of a word is needed


def test_exact_word_matches_rank_above_bigram_matches(make_user):
    desk = make_user("helpdesk")
    add_case(make_user, "京都の事例", body="東京都の庁舎で設定した")   # 京都 only as bigrams inside 東京都
    add_case(make_user, "別の事例", body="京都府の庁舎で設定した")     # 京都 as a word
    assert titles(desk, "京都 庁舎")[1][0] in {"京都の事例", "別の事例"}
    ranked = titles(desk, "京都府")[1]
    assert ranked[0] == "別の事例"


def test_a_reused_searcher_sees_updates_and_removals_made_after_it_opened(make_user):
    desk = make_user("helpdesk")
    case = add_case(make_user, "スイッチのループ検知")
    assert titles(desk, "ループ")[0].total == 1  # the thread's searcher is now open
    case.title = "スイッチのループ検知（改訂）"
    queue_case(case)
    db.session.commit()
    apply_pending()
    result, seen = titles(desk, "ループ")
    assert seen == ["スイッチのループ検知（改訂）"] and result.total == 1  # not the old version too
    case.state = "archived"
    queue_case(case)
    db.session.commit()
    apply_pending()
    assert titles(desk, "ループ")[0].total == 0


def test_another_process_reindexing_is_noticed_by_running_searchers(app, make_user):
    """Two SearchIndex objects on one root stand for two server processes."""
    from app.search.index import SearchIndex

    desk = make_user("helpdesk")
    add_case(make_user, "UPSのバッテリー交換")
    serving = current_index()
    assert titles(desk, "UPS")[0].total == 1
    before = serving.current_generation()
    other = SearchIndex(app.config["SEARCH_INDEX_DIR"])
    case = db.session.scalar(select(Case))
    case.title = "蓄電池の交換"
    db.session.commit()  # not queued: only the rebuild by the other process will show it
    assert titles(desk, "蓄電池")[0].total == 0
    reindex(other)
    assert serving.current_generation() != before
    assert titles(desk, "蓄電池")[1] == ["蓄電池の交換"]


def test_fast_index_readers_agree_with_whoosh(make_user):
    """The block-at-a-time readers use Whoosh internals: if an upgrade changes them, this fails."""
    from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield

    from app.search.index import _numeric_column, _posting_arrays

    for i in range(3):
        add_case(make_user, f"設定の確認{i}", body="サーバの設定を確認した。" * (i + 1))
    searcher = current_index().searcher()
    for leaf, _offset in searcher.reader().leaf_readers():
        count = leaf.doc_count_all()
        for name in ("published", "case_id"):
            assert _numeric_column(leaf.column_reader(name, translate=False), count).tolist() == list(leaf.column_reader(name))
        lengths = leaf._perdoc._cached_reader(_lenfield("body"), LENGTHS_COLUMN)
        assert _numeric_column(lengths, count).tolist() == [v or 0 for v in lengths]
        ids, weights = _posting_arrays(leaf.postings("body", "設定"))
        slow = leaf.postings("body", "設定")
        expected = []
        while slow.is_active():
            expected.append((slow.id(), slow.weight()))
            slow.next()
        assert list(zip(ids.tolist(), weights.tolist())) == expected


def test_a_model_number_typed_with_a_hyphen_is_one_word(make_user):
    desk = make_user("helpdesk")
    add_case(make_user, "NX-00042のファーム更新")
    add_case(make_user, "NX-77777の設定")
    assert titles(desk, "NX-00042")[1] == ["NX-00042のファーム更新"]


def test_each_facet_is_counted_without_its_own_filter(make_user):
    desk = make_user("helpdesk")
    add_case(make_user, "VPNの設定A", category="network", owner="呉市")
    add_case(make_user, "VPNの設定B", category="security", owner="呉市")
    add_case(make_user, "VPNの設定C", category="security", owner="福山市")
    result, seen = titles(desk, "VPN", category="security")
    assert set(seen) == {"VPNの設定B", "VPNの設定C"}
    assert {v: n for v, _l, n in result.facets["category"]} == {"network": 1, "security": 2}
    assert {label: n for _v, label, n in result.facets["municipality"]} == {"呉市": 1, "福山市": 1}
    assert [v for v, _l, _n in result.facets["municipality"]] == ["342025", "342076"]  # official codes


def test_misses_are_only_words_that_found_nothing(client, make_user, login):
    add_case(make_user, "VPNの設定")
    login(make_user("municipal", "呉市"))
    client.get("/search?q=VPN&from=2030-01-01")   # a filter found nothing, not the words
    client.get("/search?q=のに")                    # only particles
    client.get("/search?q=量子暗号")
    assert [m.query for m in db.session.scalars(select(SearchMiss))] == ["量子暗号"]


def test_bad_search_parameters_are_named_in_japanese_and_the_rest_still_runs(client, make_user, login):
    add_case(make_user, "VPNの設定")
    login(make_user("municipal", "呉市"))
    page = client.get("/search?q=VPN&from=2024-13-01&category=nope").get_data(as_text=True)
    assert "公開日（から）は 2024-04-01 の形式" in page and "分類「nope」はありません" in page
    assert "VPNの設定" in page
    reversed_dates = client.get("/search?q=VPN&from=2025-01-01&to=2024-01-01").get_data(as_text=True)
    assert "公開日（まで）は公開日（から）より後" in reversed_dates


def test_municipal_staff_case_list_shows_their_own_cases(client, make_user, login):
    add_case(make_user, "呉市の共有事例", owner="呉市", visibility="all")
    add_case(make_user, "福山市の共有事例", owner="福山市", visibility="all")
    login(make_user("municipal", "呉市"))
    page = client.get("/cases").get_data(as_text=True)
    assert "呉市の共有事例" in page and "福山市の共有事例" not in page
    assert "福山市の共有事例" in client.get("/search?q=共有事例").get_data(as_text=True)


def test_a_synonym_term_already_in_a_group_is_refused(client, make_user, login):
    login(make_user("helpdesk"))
    client.post("/search/synonyms", data={"terms": "SIEM=ログ分析基盤"})
    page = client.post("/search/synonyms", data={"terms": "ＳＩＥＭ=ログ監視"}).get_data(as_text=True)
    assert "「SIEM」はすでに「SIEM=ログ分析基盤」に登録されています" in page
    assert db.session.scalar(select(func.count()).select_from(SearchSynonym).where(SearchSynonym.source == "helpdesk")) == 1


def test_segment_names_do_not_repeat_when_the_random_module_is_seeded(app, make_user):
    """Forked workers share the random module's state, and tests seed it: segment names must
    come from the OS, or two writers would write the same segment files."""
    import random

    for n in range(3):
        random.seed(42)
        add_case(make_user, f"同じ乱数の事例 {n}")
    desk = make_user("helpdesk")
    result = search_cases(desk, SearchParams(q="乱数"))
    assert result.total == 3


def test_an_index_made_by_another_analysis_version_is_rebuilt_on_upgrade(app, runner, make_user):
    from app.search.index import ANALYSIS
    from app.search.sync import current_index

    add_case(make_user, "サーバールームの温度")
    index = current_index()
    assert not index.schema_outdated()
    (index.root / index.current_generation() / ANALYSIS).write_text("1", encoding="ascii")  # an older install
    assert index.schema_outdated()
    result = runner.invoke(args=["search", "reindex", "--if-outdated"])
    assert result.exit_code == 0, result.output
    assert not current_index().schema_outdated()
    assert search_cases(make_user("helpdesk"), SearchParams(q="サーバルーム")).total == 1


@pytest.mark.parametrize("typed,suggested", [
    ("アクセスポインド 設定", "アクセスポイント 設定"),
    ("fortigete", "FortiGate"),
    ("ｻｰﾊﾞｰﾙｰﾑの温度", None),      # width and long vowels need no suggestion: the query finds the case
])
def test_did_you_mean_suggests_words_of_the_readers_cases(client, make_user, login, typed, suggested):
    add_case(make_user, "アクセスポイントの設定を見直した", body="FortiGate のポリシーを整理した。")
    add_case(make_user, "サーバールームの温度が上がる", body="空調を点検した。")
    login(make_user("municipal", "庄原市"))
    page = client.get("/search", query_string={"q": typed}).get_data(as_text=True)
    if suggested:
        assert "もしかして" in page and suggested in page
    else:
        assert "もしかして" not in page


def test_did_you_mean_never_offers_a_word_only_invisible_cases_contain(app, make_user, token_for, client):
    add_case(make_user, "アクセスポイントの設定", owner="三次市", visibility="private")
    headers = token_for(make_user("municipal", "庄原市"))
    answer = client.get("/api/v1/cases", query_string={"q": "アクセスポインド"}, headers=headers).get_json()
    assert answer["total"] == 0 and answer["suggestion"] is None
    add_case(make_user, "アクセスポイントの更新", owner="呉市", visibility="all")
    answer = client.get("/api/v1/cases", query_string={"q": "アクセスポインド"}, headers=headers).get_json()
    assert answer["suggestion"] == {"q": "アクセスポイント"}
    again = client.get("/api/v1/cases", query_string={"q": answer["suggestion"]["q"]}, headers=headers).get_json()
    assert again["total"] == 1


def test_a_suggestions_nearest_words_are_those_a_stable_sort_gives():
    """The candidates of 「もしかして」 are the nearest words, ties in vocabulary order, found without
    sorting the whole vocabulary (suggest._nearest)."""
    import numpy as np

    from app.search.suggest import _nearest

    rng = np.random.default_rng(7)
    for size in (0, 1, 5, 30, 31, 32, 40, 1000):
        for _ in range(30):
            distances = rng.integers(0, 6, size).astype(np.int32)
            assert _nearest(distances, 31).tolist() == np.argsort(distances, kind="stable")[:31].tolist()


def test_a_case_page_shows_related_cases_the_reader_may_read(client, make_user, login):
    add_case(make_user, "VPN がつながらない", body="テレワーク用の VPN に接続できない。証明書を確認した。")
    add_case(make_user, "VPN 装置の証明書更新", body="VPN 装置の証明書が期限切れで接続できない。")
    add_case(make_user, "VPN 回線の帯域", owner="三次市", visibility="private", body="VPN 回線が遅く接続できない。")
    add_case(make_user, "プリンタの紙詰まり", body="複合機の給紙トレイを清掃した。")
    login(make_user("municipal", "庄原市"))
    first = db.session.scalar(select(Case).where(Case.title == "VPN がつながらない"))
    page = client.get(f"/cases/{first.id}").get_data(as_text=True)
    related = page.split("関連する事例")[1]
    assert "VPN 装置の証明書更新" in related
    assert "VPN 回線の帯域" not in page and "プリンタの紙詰まり" not in related
    assert related.count("VPN がつながらない") == 0  # not the case itself


def test_a_number_no_visible_case_contains_finds_nothing_rather_than_its_digit_pairs(make_user):
    add_case(make_user, "型番 NX-15000 の設定", owner="三次市", visibility="private")
    add_case(make_user, "型番 NX-11500 の設定")
    add_case(make_user, "型番 NX-05000 の設定")
    reader = make_user("municipal", "庄原市")
    assert search_cases(reader, SearchParams(q="NX-15000")).total == 0
    assert search_cases(make_user("helpdesk"), SearchParams(q="NX-15000")).total == 1

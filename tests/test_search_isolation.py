"""A case the reader may not see changes nothing they get back from search: not the hits, their
order, totals, scores or facets, not which words count as known (n-gram fallback), and not the
similar-cases panel."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseState, Category, Municipality
from app.search import suggest
from app.search.service import SearchParams, search_cases, similar_cases
from app.search.sync import apply_pending, queue_case
from app.services import municipalities
from tests.conftest import recorded_statements
from tests.test_search_backends import BACKENDS, backend_app


@pytest.fixture(params=BACKENDS)
def app(request, tmp_path):
    """Each test runs on both search backends (Whoosh; PostgreSQL's table on PostgreSQL)."""
    with backend_app(request.param, tmp_path, request) as app:
        yield app

VISIBLE = [
    # (owner, visibility, category, title, issue, resolution)
    ("呉市", "all", "network", "QZVKW ルータの再起動が必要になる", "QZVKW を導入した拠点で通信が止まる。",
     "ファームウェアを更新した。"),
    ("福山市", "all", "network", "プリンタに印刷できない", "複合機のプリンタドライバが古い。", "ドライバを更新した。"),
    ("福山市", "all", "network", "VPN がつながらない", "テレワーク用の VPN に接続できない。", "証明書を更新した。"),
    ("世羅町", "all", "security", "VPN 接続時にプリンタが使えない", "VPN 接続中は庁内のプリンタに印刷できない。",
     "スプリットトンネルを設定した。"),
    ("三原市", "all", "security", "プリンタの共有設定", "共有プリンタが見えない。", "共有設定を見直した。"),
    ("三原市", "all", "optimization", "VPN 装置の更改費用", "VPN 装置の更改見積が高い。", "複数社から見積を取った。"),
    ("庄原市", "private", "network", "庄原市内の VPN 回線", "庄原市の VPN 回線が遅い。", "帯域を見直した。"),
    ("竹原市", "neighbours", "network", "近隣だけに共有した VPN の事例", "VPN の設定。", "設定を変更した。"),
]

HIDDEN = [
    # Invisible to 庄原市 staff and to the observer: private elsewhere, neighbours of a non-partner.
    ("三次市", "private", "network", "QZVK アルパカ プリンタ VPN 障害", "QZVK アルパカ のプリンタと VPN が止まる。 QZVK QZVK",
     "アルパカ プリンタ VPN を再起動した。"),
    ("三次市", "private", "security", "VPN VPN VPN プリンタ", "VPN プリンタ VPN プリンタ", "VPN"),
    ("大竹市", "neighbours", "optimization", "アルパカ VPN 調達", "アルパカ 調達 VPN", "アルパカ"),
]

QUERIES = ["QZVK", "QZVKW", "プリンタ", "VPN", "VPN 接続", "プリンタ VPN", "アルパカ", "アルパカ プリンタ VPN",
           '"VPN"', "更新", "アルパコ", "QZVKX", "プリンダ"]


def _add(rows):
    network = {c.slug: c for c in db.session.scalars(select(Category))}
    by_name = {m.name: m for m in db.session.scalars(select(Municipality))}
    for owner, visibility, category, title, issue, resolution in rows:
        case = Case(title=title, issue=issue, resolution=resolution, category=network[category],
                    municipality=by_name[owner], state=CaseState.PUBLISHED.value, visibility=visibility,
                    sharing_consent=visibility)
        db.session.add(case)
        db.session.flush()
        queue_case(case)
    db.session.commit()
    apply_pending()


def _everything_returned(user):
    seen = {}
    for q in QUERIES:
        for params in (SearchParams(q=q, per_page=50), SearchParams(q=q, sort="newest", per_page=50),
                       SearchParams(q=q, category="network", per_page=50)):
            result = search_cases(user, params, log_misses=False)
            seen[(q, params.sort, params.category)] = (
                [(h.case.id, round(h.score, 6), str(h.snippet)) for h in result.hits],
                result.total, result.total_is_lower_bound, result.facets, result.words,
                result.suggestion.query if result.suggestion else None,
            )
    for text in ("アルパカ　プリンタ　VPN", "QZVK の装置", "VPN 接続 プリンタ 印刷 ドライバ"):
        seen[("similar", text)] = [(h.case.id, round(h.score, 6)) for h in similar_cases(user, text)]
    return seen


@pytest.mark.parametrize("reader", ["municipal", "observer"])
def test_cases_a_reader_may_not_see_change_nothing_they_get_back(app, make_user, reader):
    observer = municipalities.add_municipality("332020", "倉敷市", prefecture="岡山県", observer=True)
    by_name = {m.name: m for m in db.session.scalars(select(Municipality))}
    municipalities.link(by_name["竹原市"], by_name["庄原市"])
    db.session.commit()
    user = make_user("municipal", "庄原市") if reader == "municipal" else make_user("viewer", observer)
    _add(VISIBLE)
    before = _everything_returned(user)
    assert before[("QZVK", "relevance", "")][0], "the visible case is found by part of its product name"
    assert before[("similar", "アルパカ　プリンタ　VPN")], "the panel suggests visible cases"
    _add(HIDDEN)
    after = _everything_returned(user)
    for key in before:
        assert after[key] == before[key], key


def test_the_help_desk_does_see_the_statistics_change(app, make_user):
    """The comparison can fail: for a reader who sees the new cases, scores do change."""
    desk = make_user("helpdesk")
    _add(VISIBLE)
    before = _everything_returned(desk)
    _add(HIDDEN)
    after = _everything_returned(desk)
    assert after[("VPN", "relevance", "")] != before[("VPN", "relevance", "")]


def test_cases_a_reader_may_not_see_change_nothing_a_suggestion_looks_up(app, make_user, monkeypatch):
    """「もしかして」 takes its candidates from every reader's vocabulary, so words of hidden cases
    are among them. How many of them lie near the typed word must not change the work a search
    does (its time would tell): the same number of candidates, looked up in one batch, and on
    PostgreSQL the same statements."""
    user = make_user("municipal", "庄原市")
    many_words = " ".join(f"kw{chr(97 + i)}{chr(97 + j)}zz" for i in range(6) for j in range(8))
    _add(VISIBLE + [("福山市", "all", "network", "用語の多い事例", many_words, "確認した。")])
    lookups: list[int] = []
    real_probe = suggest._probe

    class CountingProbe:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def exact_counts(self, terms):
            lookups.append(len(terms))
            return self.inner.exact_counts(terms)

    monkeypatch.setattr(suggest, "_probe", lambda view: CountingProbe(real_probe(view)))

    def work() -> dict[str, tuple]:
        done = {}
        for q in ("アルパコ", "QZVKX", "プリンダ", "zzkqwv"):
            search_cases(user, SearchParams(q=q), log_misses=False)   # caches (the vocabulary) ready
            lookups.clear()
            with recorded_statements() as statements:
                result = search_cases(user, SearchParams(q=q), log_misses=False)
            done[q] = (list(lookups), len(statements), result.suggestion.query if result.suggestion else None)
        return done

    before = work()
    assert before["プリンダ"][2] == "プリンタ", "a visible word is suggested"
    assert all(looked == [suggest.CANDIDATES] for looked, _n, _s in before.values()), before
    _add(HIDDEN)
    after = work()
    assert after == before

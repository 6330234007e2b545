"""Articles (issue 12): お知らせ・手順書・注意喚起 written by the help desk directly. An article is a
case of kind ``article`` owned by the prefecture, without a question, so Markdown, attachments,
sharing (with its sensitive-data review), review dates, history, archive and search work for it
as for a case; lists and search show articles apart (a 事例 / 記事 facet, a type badge)."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from app.extensions import db
from app.models import Case, CaseRevision, CaseState, Category, Municipality, utcnow
from app.search.service import SearchParams, search_cases
from app.search.sync import apply_pending
from app.services import accounts
from app.services import cases as case_service
from app.services.attachments import Upload
from app.services.errors import Forbidden, SensitiveDataFound, ValidationFailed
from tests.test_search_backends import add, search_app  # noqa: F401  (the fixture: both backends)

ADVISORY = {"title": "VPN 装置の脆弱性について", "article_type": "advisory", "category": "security",
            "tags": "VPN、脆弱性", "body": "## 対象\n\n**すぐに** ファームウェアを更新してください。"}


@pytest.fixture
def people(app, make_user):
    return {"desk": make_user("helpdesk", username="desk"), "kure": make_user("municipal", "呉市", username="kure"),
            "admin": make_user("admin", username="boss")}


def write(desk, visibility=None, **changes):
    article = case_service.create_article(desk, {**ADVISORY, **changes})
    db.session.commit()
    if visibility:
        case_service.publish_case(desk, article, visibility)
        db.session.commit()
    apply_pending()
    return article


def revisions_of(case):
    return list(db.session.scalars(select(CaseRevision).where(CaseRevision.case_id == case.id)
                                   .order_by(CaseRevision.number)))


# --- writing -------------------------------------------------------------------------------------

def test_the_help_desk_writes_an_article_as_a_prefecture_draft_without_a_question(client, people, login):
    login(people["desk"])
    page = client.get("/cases/articles/new")
    assert page.status_code == 200 and "記事を書く" in page.get_data(as_text=True)
    response = client.post("/cases/articles/new", data={**ADVISORY, "submit": "1"})
    assert response.status_code == 302
    article = db.session.scalar(select(Case).where(Case.title == ADVISORY["title"]))
    assert (article.kind, article.article_type, article.state) == ("article", "advisory", "draft")
    assert article.municipality_id is None and article.question_id is None
    assert [t.name for t in article.tags] == ["VPN", "脆弱性"]
    assert article.issue.startswith("## 対象")
    assert [r.number for r in revisions_of(article)] == [1]
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "記事: 注意喚起" in shown and "<strong>すぐに</strong>" in shown and "元の相談" not in shown
    assert "症状・質問" not in shown and "本文" in shown


def test_save_and_publish_leads_to_the_publish_review(client, people, login):
    login(people["desk"])
    response = client.post("/cases/articles/new", data={**ADVISORY, "save_and_publish": "1"})
    article = db.session.scalar(select(Case).where(Case.title == ADVISORY["title"]))
    assert response.status_code == 302 and f"/cases/{article.id}/publish" in response.headers["Location"]
    assert article.state == "draft"


def test_only_the_help_desk_may_write_articles(client, people, login):
    for who in ("kure", "admin"):
        login(people[who])
        assert client.get("/cases/articles/new").status_code == 403
        assert client.post("/cases/articles/new", data={**ADVISORY, "submit": "1"}).status_code == 403
        with pytest.raises(Forbidden):
            case_service.create_article(people[who], ADVISORY)
    assert db.session.scalar(select(Case.id).where(Case.kind == "article")) is None


def test_a_form_with_errors_says_so_in_japanese_and_keeps_what_was_typed(client, people, login):
    login(people["desk"])
    page = client.post("/cases/articles/new", data={"title": "調達チェックリスト", "category": "",
                                                    "tags": "調達", "body": "", "submit": "1"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "記事の種類（お知らせ・手順書・注意喚起）を選んでください。" in html
    assert "分類を選択してください。" in html and "本文を入力してください。" in html
    assert 'value="調達チェックリスト"' in html and 'value="調達"' in html
    assert db.session.scalar(select(Case.id)) is None


def test_the_preview_renders_markdown_and_saves_nothing(client, people, login):
    login(people["desk"])
    page = client.post("/cases/articles/new", data={**ADVISORY, "preview": "1"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "プレビュー: 本文" in html and "<strong>すぐに</strong>" in html
    assert ADVISORY["title"] in html and db.session.scalar(select(Case.id)) is None


def test_an_unknown_article_type_is_refused(people):
    with pytest.raises(ValidationFailed) as error:
        case_service.create_article(people["desk"], {**ADVISORY, "article_type": "memo"})
    assert "article_type" in error.value.errors


def test_an_article_carries_attachments_uploaded_when_written(client, people, login):
    login(people["desk"])
    data = {**ADVISORY, "submit": "1", "files": (io.BytesIO("手順の補足".encode()), "checklist.txt")}
    assert client.post("/cases/articles/new", data=data, content_type="multipart/form-data").status_code == 302
    article = db.session.scalar(select(Case).where(Case.kind == "article"))
    assert [a.filename for a in article.attachments] == ["checklist.txt"]
    attachment_id = article.attachments[0].id
    login(people["kure"])
    with client.get(f"/attachments/{attachment_id}") as refused:
        assert refused.status_code == 404   # a draft: the help desk's only
    login(people["desk"])
    case_service.publish_case(people["desk"], db.session.get(Case, article.id), "all")
    db.session.commit()
    login(people["kure"])
    with client.get(f"/attachments/{attachment_id}") as downloaded:
        assert downloaded.status_code == 200 and downloaded.get_data() == "手順の補足".encode()


# --- sharing and permissions ---------------------------------------------------------------------

def test_publishing_an_article_goes_through_the_sensitive_data_review(people):
    article = write(people["desk"], body="管理画面 192.168.10.5 から更新してください。")
    with pytest.raises(SensitiveDataFound):
        case_service.publish_case(people["desk"], article, "all")
    db.session.rollback()
    case_service.publish_case(people["desk"], article, "all",
                              keep=[{"text": "192.168.10.5", "reason": "全市町で共通の初期値のため"}])
    db.session.commit()
    assert article.state == "published" and article.review_due is not None


def test_the_help_desk_publishes_an_article_through_the_publish_page(client, people, login):
    article = write(people["desk"])
    login(people["desk"])
    page = client.get(f"/cases/{article.id}/publish")
    assert page.status_code == 200 and "県（県ヘルプデスク）が所有する記事です" in page.get_data(as_text=True)
    response = client.post(f"/cases/{article.id}/publish", data={"visibility": "all"})
    assert response.status_code == 302
    assert db.session.get(Case, article.id).state == "published"
    login(people["kure"])
    assert client.get(f"/cases/{article.id}").status_code == 200


def test_an_article_is_read_only_as_far_as_it_is_shared(client, people, login):
    draft = write(people["desk"], title="下書きの記事")
    private = write(people["desk"], "private", title="県だけの記事")
    shared = write(people["desk"], "all", title="全市町への記事")
    neighbours = write(people["desk"], "neighbours", title="近隣までの記事")
    login(people["kure"])
    for article, status in ((draft, 404), (private, 404), (shared, 200), (neighbours, 404)):
        assert client.get(f"/cases/{article.id}").status_code == status, article.title
    case_service.archive_case(people["desk"], db.session.get(Case, shared.id))
    db.session.commit()
    assert client.get(f"/cases/{shared.id}").status_code == 404
    login(people["desk"])
    assert client.get(f"/cases/{shared.id}").status_code == 200


def test_a_municipality_cannot_edit_publish_or_change_consent_of_an_article(client, people, login):
    article = write(people["desk"], "all")
    login(people["kure"])
    assert client.get(f"/cases/{article.id}/edit").status_code == 403
    assert client.post(f"/cases/{article.id}/consent", data={"consent": "private"}).status_code == 403
    assert db.session.get(Case, article.id).sharing_consent == "all"   # not its owner: nothing changed
    assert client.get(f"/cases/{article.id}/history").status_code == 403


# --- edit, history, review -------------------------------------------------------------------------

def test_editing_an_article_edits_its_body_and_type_and_is_a_revision(client, people, login):
    article = write(people["desk"], "all")
    login(people["desk"])
    page = client.get(f"/cases/{article.id}/edit").get_data(as_text=True)
    assert "記事の編集" in page and "本文" in page and "原因" not in page
    response = client.post(f"/cases/{article.id}/edit", data={
        "title": ADVISORY["title"], "category": "security", "tags": "VPN", "article_type": "notice",
        "issue": "更新は完了しました。", "submit": "1"})
    assert response.status_code == 302
    article = db.session.get(Case, article.id)
    assert (article.article_type, article.issue) == ("notice", "更新は完了しました。")
    assert len(revisions_of(article)) == 3   # written, published, edited
    history_page = client.get(f"/cases/{article.id}/history")
    assert history_page.status_code == 200
    assert "本文" in history_page.get_data(as_text=True)   # the article's field, not a case's 症状・質問
    assert "症状・質問" not in history_page.get_data(as_text=True)


def test_an_article_body_may_not_be_emptied(client, people, login):
    article = write(people["desk"])
    login(people["desk"])
    page = client.post(f"/cases/{article.id}/edit", data={
        "title": "t", "category": "security", "tags": "", "article_type": "advisory", "issue": " ", "submit": "1"})
    assert page.status_code == 200 and "本文を入力してください。" in page.get_data(as_text=True)


def test_restoring_an_earlier_revision_of_an_article(people):
    article = write(people["desk"], "all")
    case_service.update_case(people["desk"], article, {"issue": "二つ目の本文"})
    db.session.commit()
    first = revisions_of(article)[0]
    case_service.restore_revision(people["desk"], article, first)
    db.session.commit()
    assert article.issue == ADVISORY["body"]


def test_a_past_due_article_is_in_the_review_queue(client, people, login):
    article = write(people["desk"], "all")
    article.review_due = (utcnow() - timedelta(days=3)).date()
    db.session.commit()
    login(people["desk"])
    assert ADVISORY["title"] in client.get("/cases/review").get_data(as_text=True)


# --- lists ------------------------------------------------------------------------------------------

def test_the_case_list_shows_articles_apart_with_their_type(client, people, login, make_question):
    write(people["desk"], "all")
    write(people["desk"], title="庁内向けの下書き")
    login(people["desk"])
    listing = client.get("/cases?kind=article").get_data(as_text=True)
    assert "記事: 注意喚起" in listing and "庁内向けの下書き" in listing
    assert client.get("/cases?kind=memo").status_code == 400
    login(people["kure"])
    own = client.get("/cases").get_data(as_text=True)
    assert ADVISORY["title"] not in own   # 自団体の事例: the municipality's own cases
    articles = client.get("/cases?kind=article").get_data(as_text=True)
    assert ADVISORY["title"] in articles and "庁内向けの下書き" not in articles


# --- search, on both backends ------------------------------------------------------------------------

def _article(title, visibility="all", state=CaseState.PUBLISHED.value):
    case = add(title, owner=None, visibility=visibility, state=state)
    case.kind, case.article_type = "article", "procedure"
    from app.search.sync import queue_case

    queue_case(case)
    db.session.commit()
    apply_pending()
    return case


def test_search_filters_and_counts_cases_and_articles_over_what_the_reader_may_see(search_app):  # noqa: F811
    kure = db.session.scalar(select(Municipality).where(Municipality.name == "呉市"))
    reader = accounts.create_user("reader", "table-password-1", "municipal", kure)
    desk = accounts.create_user("desk2", "table-password-1", "helpdesk")
    db.session.commit()
    add("プリンタ 事例 その一", owner="福山市", visibility="all")
    add("プリンタ 事例 その二", owner="福山市", visibility="private")
    shared = _article("プリンタ 記事 全市町", "all")
    hidden = _article("プリンタ 記事 県のみ", "private")
    result = search_cases(reader, SearchParams(q="プリンタ"), log_misses=False)
    assert result.facets["kind"] == [("case", "事例", 1), ("article", "記事", 1)]
    result = search_cases(reader, SearchParams(q="プリンタ", kind="article"), log_misses=False)
    assert [h.case.id for h in result.hits] == [shared.id] and result.total == 1
    # the kind facet keeps both values choosable while one is chosen; the others follow the filter
    assert result.facets["kind"] == [("case", "事例", 1), ("article", "記事", 1)]
    assert sum(n for _v, _l, n in result.facets["category"]) == 1
    result = search_cases(desk, SearchParams(q="プリンタ", kind="case"), log_misses=False)
    assert result.total == 2 and result.facets["kind"] == [("case", "事例", 2), ("article", "記事", 2)]
    result = search_cases(desk, SearchParams(q="プリンタ", kind="article", sort="newest"), log_misses=False)
    assert {h.case.id for h in result.hits} == {shared.id, hidden.id}


def test_the_search_page_has_a_kind_facet_and_badges(client, people, login):
    write(people["desk"], "all")
    login(people["kure"])
    page = client.get("/search?q=VPN").get_data(as_text=True)
    assert "事例 / 記事" in page and "記事: 注意喚起" in page
    page = client.get("/search?q=VPN&kind=case").get_data(as_text=True)
    assert "記事: 注意喚起" not in page
    bad = client.get("/search?q=VPN&kind=memo")
    assert bad.status_code == 200 and "種類は case（事例）または article（記事）で指定してください。" in bad.get_data(as_text=True)


def test_the_api_filters_by_kind_and_describes_articles(client, people, token_for):
    article = write(people["desk"], "all")
    headers = token_for(people["kure"])
    found = client.get("/api/v1/cases?q=VPN&kind=article", headers=headers).get_json()
    assert [r["id"] for r in found["results"]] == [article.id]
    assert found["results"][0]["kind"] == "article" and found["results"][0]["article_type"] == "advisory"
    assert {f["value"] for f in found["facets"]["kind"]} == {"article"}
    assert client.get("/api/v1/cases?q=VPN&kind=case", headers=headers).get_json()["total"] == 0
    bad = client.get("/api/v1/cases?kind=memo", headers=headers)
    assert bad.status_code == 400 and "kind" in bad.get_json()["error"]["fields"]
    data = client.get(f"/api/v1/cases/{article.id}", headers=headers).get_json()
    assert (data["kind"], data["article_type"], data["article_type_label"]) == ("article", "advisory", "注意喚起")
    assert data["question_id"] is None


# --- the upgrade ---------------------------------------------------------------------------------------

def test_existing_cases_become_kind_case_in_the_upgrade(tmp_path):
    from flask_migrate import upgrade

    from tests.test_migrations import migrated_app

    app = migrated_app(f"sqlite:///{tmp_path / 'old.db'}")
    with app.app_context():
        upgrade(revision="0011_experts")
        connection = db.engine.connect()
        connection.execute(text("INSERT INTO categories (id, slug, name, sort_order) VALUES (1, 'network', 'ネットワーク', 1)"))
        connection.execute(text(
            "INSERT INTO cases (id, title, issue, environment, cause, resolution, category_id, state, visibility, "
            "sharing_consent, anonymous, created_at, updated_at) VALUES (1, '件名', '症状', '', '', '対応', 1, "
            "'draft', 'private', 'private', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        connection.commit()
        connection.close()
        upgrade()
        row = db.session.execute(text("SELECT title, kind, article_type FROM cases")).one()
        assert tuple(row) == ("件名", "case", None)
        db.session.remove()
        db.engine.dispose()

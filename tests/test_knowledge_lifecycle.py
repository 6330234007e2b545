"""Knowledge that stays right and gets reused: history, review, reports, supersedes, reuse links,
questions about a case, and tending tags and categories."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Case, CaseReport, CaseRevision, Category, Notification, Question, SearchSynonym, Tag, case_tags
from app.services import cases as case_service
from app.services import curation, history, masking, municipalities, review
from app.services import questions as question_service
from app.services.errors import Conflict, SensitiveDataFound, ValidationFailed
from tests.conftest import municipality


@pytest.fixture
def world(app, make_user, make_question):
    kure = make_user("municipal", "呉市", username="kure")
    desk = make_user("helpdesk", username="desk")
    other = make_user("municipal", "庄原市", username="shobara")
    neighbour = make_user("municipal", "東広島市", username="higashi")
    admin = make_user("admin", username="boss")
    municipalities.link(municipality("呉市"), municipality("東広島市"))
    db.session.commit()
    return {"kure": kure, "desk": desk, "other": other, "neighbour": neighbour, "admin": admin,
            "make_question": make_question}


def drafted(world, title="VPN がつながらない", body="テレワーク用の VPN に接続できません。", consent="all",
            category="network", answer_text="証明書を更新してください。"):
    question = world["make_question"](world["kure"], title=title, body=body, sharing_consent=consent, category=category,
                                      tags="VPN")
    answer = question_service.post_answer(world["desk"], question, {"body": answer_text})
    case = question_service.resolve_question(world["desk"], question, answer.id)
    db.session.commit()
    return case


def published(world, visibility="all", **kwargs):
    case = drafted(world, **kwargs)
    case_service.publish_case(world["desk"], case, visibility)
    db.session.commit()
    return case


def revisions_of(case):
    return list(db.session.scalars(select(CaseRevision).where(CaseRevision.case_id == case.id)
                                   .order_by(CaseRevision.number)))


# --- history ------------------------------------------------------------------------------------

def test_every_change_of_a_case_is_a_numbered_revision_with_who_and_what(world):
    case = published(world)
    case_service.update_case(world["desk"], case, {"resolution": "クライアント証明書を更新してください。"})
    db.session.commit()
    case_service.change_consent(world["kure"], case, "neighbours")
    db.session.commit()
    case_service.archive_case(world["desk"], case, "誤って共有")
    db.session.commit()
    rows = revisions_of(case)
    assert [r.number for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].actions.startswith("作成") and rows[0].state == "draft"
    assert "事例の公開" in rows[1].actions and rows[1].state == "published"
    assert "事例の編集" in rows[2].actions and rows[2].changed == "対応" and rows[2].actor_id == world["desk"].id
    assert rows[3].sharing_consent == "neighbours" and rows[3].actor_id == world["kure"].id
    assert "アーカイブ" in rows[4].actions and rows[4].state == "archived"


def test_a_change_that_changes_nothing_writes_no_revision(world):
    case = published(world)
    before = len(revisions_of(case))
    case_service.update_case(world["desk"], case, {"title": case.title})
    db.session.commit()
    assert len(revisions_of(case)) == before


def test_masking_is_a_revision_named_as_such(world):
    case = drafted(world, body="VPN 装置 192.168.10.1 に接続できません。")
    (finding,) = [f for f in case_service.sensitive_findings(case) if f["field"] == "issue"]
    masking.mask_one(world["desk"], case, "issue", finding["position"], finding["text"])
    db.session.commit()
    last = revisions_of(case)[-1]
    assert "伏せ字" in last.actions and "192.168.10.1" not in last.issue


def test_side_by_side_diff_marks_changed_characters_within_changed_lines():
    rows = history.side_by_side("一行目\n証明書を更新する\n三行目", "一行目\n証明書を再発行する\n三行目\n四行目")
    kinds = [r.kind for r in rows]
    assert kinds == ["equal", "replace", "equal", "insert"]
    changed = rows[1]
    assert ("del", "更新") in changed.left and ("ins", "再発行") in changed.right
    assert ("", "証明書を") in changed.left and ("", "証明書を") in changed.right
    assert rows[3].right == [("ins", "四行目")] and rows[3].left_no is None


def test_the_help_desk_compares_two_revisions_side_by_side(client, world, login):
    case = published(world)
    case_service.update_case(world["desk"], case, {"resolution": "クライアント証明書を再発行してください。"})
    db.session.commit()
    login(world["desk"])
    page = client.get(f"/cases/{case.id}/history")
    assert page.status_code == 200 and "版3" in page.get_data(as_text=True)
    diff = client.get(f"/cases/{case.id}/history/compare?a=2&b=3")
    text = diff.get_data(as_text=True)
    assert diff.status_code == 200
    assert '<ins class="diff-ins">クライアント</ins>' in text and '<del class="diff-del">更新</del>' in text


@pytest.mark.parametrize("who,status", [("kure", 403), ("admin", 403), ("neighbour", 403), ("other", 404)])
def test_revisions_are_only_for_those_who_may_edit_the_case(client, world, login, who, status):
    case = published(world, visibility="neighbours", consent="neighbours")
    login(world[who])
    assert client.get(f"/cases/{case.id}/history").status_code == status
    assert client.get(f"/cases/{case.id}/history/compare?a=1&b=2").status_code == status
    assert "変更履歴" not in client.get(f"/cases/{case.id}").get_data(as_text=True)


def test_restoring_an_earlier_revision_makes_a_new_one(client, world, login):
    case = published(world)
    case_service.update_case(world["desk"], case, {"resolution": "別の対応", "tags": "VPN、証明書"})
    db.session.commit()
    login(world["desk"])
    response = client.post(f"/cases/{case.id}/history/2/restore", data={})
    assert response.status_code == 302
    db.session.refresh(case)
    rows = revisions_of(case)
    assert case.resolution == "証明書を更新してください。" and [t.name for t in case.tags] == ["VPN"]
    assert rows[-1].number == 4 and "版2を復元" in rows[-1].actions
    with pytest.raises(Conflict):
        case_service.restore_revision(world["desk"], case, rows[1])


def test_a_restore_that_would_bring_a_masked_detail_back_into_a_shared_case_is_checked(world):
    case = drafted(world, body="VPN 装置 192.168.10.1 に接続できません。")
    before_mask = revisions_of(case)[-1]
    (finding,) = [f for f in case_service.sensitive_findings(case) if f["field"] == "issue"]
    masking.mask_one(world["desk"], case, "issue", finding["position"], finding["text"])
    db.session.commit()
    case_service.publish_case(world["desk"], case, "all")
    db.session.commit()
    with pytest.raises(SensitiveDataFound):
        case_service.restore_revision(world["desk"], case, before_mask)
    db.session.rollback()
    assert "192.168.10.1" not in db.session.get(Case, case.id).issue


def test_withdrawing_a_post_removes_its_text_from_the_case_revisions_too(world):
    secret = "管理者パスワードは Kure-2026-secret です。"
    case = drafted(world, body=secret)
    question = db.session.get(Question, case.question_id)
    question_service.withdraw_post(world["kure"], question)
    db.session.commit()
    assert all(secret not in r.issue for r in revisions_of(case))


# --- review -------------------------------------------------------------------------------------

def test_publishing_sets_a_review_date_per_category(world):
    network = published(world)
    security = published(world, title="標的型メール", category="security")
    today = review.today()
    assert network.review_due == review.add_months(today, 12)
    assert security.review_due == review.add_months(today, 6)
    review.set_review_months(world["desk"], db.session.get(Category, network.category_id), "3")
    db.session.commit()
    other = published(world, title="ルータの更新")
    assert other.review_due == review.add_months(today, 3)


def test_past_due_cases_are_listed_for_the_help_desk_and_marked_for_readers(client, world, login):
    case = published(world)
    case.review_due = review.today() - timedelta(days=1)
    case.published_at = case.published_at.replace(year=2025, month=4, day=10)
    db.session.commit()
    assert [c.id for c in review.past_due(world["desk"])] == [case.id]
    login(world["other"])
    assert "最終確認: 2025年4月" in client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert client.get("/cases/review").status_code == 403
    login(world["desk"])
    assert f"#{case.id} {case.title}" in client.get("/cases/review").get_data(as_text=True)
    response = client.post(f"/cases/{case.id}/confirm", data={"back": "/cases/review"})
    assert response.status_code == 302
    db.session.refresh(case)
    assert case.review_due == review.add_months(review.today(), 12) and case.last_reviewed_at is not None
    assert review.past_due(world["desk"]) == []


def test_a_reader_reports_a_case_and_the_help_desk_answers_with_an_outcome(client, world, login):
    case = published(world)
    login(world["other"])
    empty = client.post(f"/cases/{case.id}/reports", data={"reason": "outdated", "comment": ""})
    assert empty.status_code == 422 and "どこが古い" in empty.get_data(as_text=True)
    response = client.post(f"/cases/{case.id}/reports", data={"reason": "outdated", "comment": "Windows 11 では手順が違います"})
    assert response.status_code == 302
    again = client.post(f"/cases/{case.id}/reports", data={"reason": "wrong", "comment": "もう一度"})
    assert again.status_code == 409 and "もう一度" in again.get_data(as_text=True)
    (row,) = review.open_reports(world["desk"])
    desk_note = db.session.scalar(select(Notification).where(Notification.user_id == world["desk"].id,
                                                             Notification.kind == "case_report"))
    assert desk_note is not None
    login(world["desk"])
    assert "Windows 11 では手順が違います" in client.get("/cases/review").get_data(as_text=True)
    client.post(f"/cases/reports/{row.id}", data={"outcome": "updated", "note": "手順を直しました"})
    from app.services import notifications
    (item,) = [r for _n, r in notifications.visible_notifications(world["other"]) if "指摘" in r.subject]
    assert "事例を修正しました" in item.text and "手順を直しました" in item.text
    assert review.open_reports(world["desk"]) == []


@pytest.mark.parametrize("who", ["viewer_of_owner", "viewer_elsewhere", "admin"])
def test_viewers_and_administrators_send_no_reports(client, world, login, make_user, who):
    """Viewers (observers too) only read, and administrators run accounts: neither form nor post."""
    case = published(world)
    user = {"viewer_of_owner": lambda: make_user("viewer", "呉市", username="kure-viewer"),
            "viewer_elsewhere": lambda: make_user("viewer", "東広島市", username="higashi-viewer"),
            "admin": lambda: world["admin"]}[who]()
    login(user)
    assert "ヘルプデスクに知らせる" not in client.get(f"/cases/{case.id}").get_data(as_text=True)
    response = client.post(f"/cases/{case.id}/reports", data={"reason": "outdated", "comment": "書き込み"})
    assert response.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(CaseReport)) == 0


def test_a_reporter_who_may_no_longer_read_the_case_learns_nothing_more(world):
    case = published(world)
    row = review.report(world["other"], case, "wrong", "誤りです")
    db.session.commit()
    case_service.change_consent(world["kure"], case, "private")
    review.answer_report(world["desk"], row, "no_change", "")
    db.session.commit()
    from app.services import notifications
    assert notifications.visible_notifications(world["other"]) == []


def test_readers_of_a_superseded_case_see_the_newer_one_first_only_if_they_may_read_it(client, world, login):
    old = published(world, title="Windows 10 の VPN 設定")
    new = published(world, title="Windows 11 の VPN 設定", consent="neighbours", visibility="neighbours")
    review.set_superseded_by(world["desk"], old, str(new.id))
    db.session.commit()
    login(world["neighbour"])
    assert f"事例 #{new.id}「Windows 11 の VPN 設定」" in client.get(f"/cases/{old.id}").get_data(as_text=True)
    login(world["other"])
    page = client.get(f"/cases/{old.id}").get_data(as_text=True)
    assert "置き換えられています" not in page and "Windows 11" not in page
    with pytest.raises(ValidationFailed):
        review.set_superseded_by(world["desk"], new, str(old.id))


# --- reuse --------------------------------------------------------------------------------------

def test_the_help_desk_answers_with_a_case_the_asker_may_read_and_the_question_is_resolved_by_it(client, world, login):
    case = published(world)
    question = world["make_question"](world["kure"], title="VPN が切れる")
    login(world["desk"])
    response = client.post(f"/questions/{question.id}/link-case", data={"link-case_id": str(case.id)})
    assert response.status_code == 302
    answer = db.session.scalar(select(question_service.Answer).where(question_service.Answer.question_id == question.id))
    assert answer.linked_case_id == case.id
    login(world["kure"])
    assert f"事例 #{case.id}「{case.title}」" in client.get(f"/questions/{question.id}").get_data(as_text=True)
    resolved = question_service.resolve_question(world["kure"], db.session.get(Question, question.id), answer.id)
    db.session.commit()
    assert resolved.id == case.id
    assert db.session.scalar(select(Case.id).where(Case.question_id == question.id)) is None
    assert question_service.questions_answered(world["kure"], case) == 1
    assert "この事例で回答した自団体の相談: 1件" in client.get(f"/cases/{case.id}").get_data(as_text=True)
    # Another municipality counts only its own threads: 呉市's question is not its business.
    assert question_service.questions_answered(world["other"], case) == 0
    login(world["other"])
    assert "この事例で回答した自団体の相談: 0件" in client.get(f"/cases/{case.id}").get_data(as_text=True)
    login(world["desk"])
    assert "この事例で回答した相談: 1件" in client.get(f"/cases/{case.id}").get_data(as_text=True)


def test_a_case_the_asker_may_not_read_cannot_be_linked_and_the_help_desk_is_told_why(client, world, login, make_question):
    neighbours_case = published(world, consent="neighbours", visibility="neighbours")
    shobara_q = make_question(world["other"], title="VPN が遅い")
    login(world["desk"])
    response = client.post(f"/questions/{shobara_q.id}/link-case", data={"link-case_id": str(neighbours_case.id)})
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "庄原市には共有されていない" in text and "近隣でも同じグループでもない" in text
    draft = drafted(world, title="下書き")
    with pytest.raises(ValidationFailed) as error:
        question_service.answer_with_case(world["desk"], shobara_q, {"case_id": draft.id})
    assert "下書き" in error.value.errors["case_id"]


def test_asking_about_a_case_refers_to_it_from_the_thread(client, world, login):
    case = published(world)
    login(world["other"])
    page = client.get(f"/cases/{case.id}")
    assert "この事例について相談する" in page.get_data(as_text=True)
    form = client.get(f"/questions/new?case={case.id}").get_data(as_text=True)
    assert f"事例 #{case.id}" in form
    response = client.post("/questions/new", data={"title": "この事例について", "body": "手順3が分かりません",
                                                   "category": "network", "sharing_consent": "private",
                                                   "kind": "question", "about_case": str(case.id)})
    assert response.status_code == 302
    question = db.session.scalar(select(Question).where(Question.title == "この事例について"))
    assert question_service.case_asked_about(question, world["other"]).id == case.id
    private = published(world, title="呉市だけ", visibility="private")
    assert client.get(f"/questions/new?case={private.id}").status_code == 404


# --- tags and categories ---------------------------------------------------------------------------

def test_merging_a_tag_moves_every_case_and_keeps_the_old_name_as_a_synonym(world):
    case = published(world)
    vpn = db.session.scalar(select(Tag).where(Tag.name == "VPN"))
    remote = Tag(name="リモートアクセス")
    db.session.add(remote)
    db.session.commit()
    curation.merge_tag(world["desk"], vpn, "リモートアクセス")
    db.session.commit()
    names = list(db.session.scalars(select(Tag.name).join(case_tags, case_tags.c.tag_id == Tag.id)
                                    .where(case_tags.c.case_id == case.id)))
    assert names == ["リモートアクセス"]
    groups = [g.terms for g in db.session.scalars(select(SearchSynonym))]
    assert any(set(g.split("=")) >= {"VPN", "リモートアクセス"} for g in groups)
    question = question_service.ask_question(world["kure"], {"title": "t", "body": "b", "category": "network",
                                                             "tags": "VPN"})
    assert [t.name for t in question.tags] == ["リモートアクセス"]
    assert "タグの統合" in revisions_of(case)[-1].actions


def test_a_retired_tag_or_category_is_no_longer_accepted(world):
    tag = Tag(name="旧タグ")
    db.session.add(tag)
    db.session.commit()
    curation.retire_tag(world["desk"], tag)
    other = db.session.scalar(select(Category).where(Category.slug == "other"))
    curation.retire_category(world["desk"], other)
    db.session.commit()
    with pytest.raises(ValidationFailed) as error:
        question_service.ask_question(world["kure"], {"title": "t", "body": "b", "category": "other", "tags": "旧タグ"})
    assert set(error.value.errors) == {"tags", "category"}


def test_merging_a_category_moves_cases_and_questions(world):
    case = published(world, category="optimization")
    optimization = db.session.get(Category, case.category_id)
    curation.merge_category(world["desk"], optimization, "other")
    db.session.commit()
    target = db.session.scalar(select(Category).where(Category.slug == "other"))
    assert db.session.get(Case, case.id).category_id == target.id
    assert db.session.get(Question, case.question_id).category_id == target.id
    assert "分類の統合" in revisions_of(case)[-1].actions


def test_the_help_desk_sees_counts_and_admins_see_unused_tags(client, world, login):
    published(world)
    db.session.add(Tag(name="だれも使わない"))
    db.session.commit()
    login(world["desk"])
    page = client.get("/cases/taxonomy").get_data(as_text=True)
    assert "VPN" in page and "未使用" in page
    login(world["admin"])
    assert client.get("/cases/taxonomy").status_code == 403
    unused = client.get("/admin/taxonomy/unused").get_data(as_text=True)
    assert "だれも使わない" in unused and "VPN" not in unused
    login(world["kure"])
    assert client.get("/admin/taxonomy/unused").status_code == 403


def test_existing_cases_survive_the_upgrade_with_a_first_revision_and_a_review_date(tmp_path):
    """0010: every case keeps its content and gets revision 1; a published case gets its review date."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from tests.test_migrations import migrated_app

    app = migrated_app(f"sqlite:///{tmp_path / 'old.db'}")
    with app.app_context():
        upgrade(revision="0009")
        connection = db.engine.connect()
        connection.execute(text("INSERT INTO categories (id, slug, name, sort_order) VALUES (1, 'security', '情報セキュリティ', 1)"))
        connection.execute(text(
            "INSERT INTO cases (id, title, issue, environment, cause, resolution, category_id, state, visibility, "
            "sharing_consent, anonymous, created_at, updated_at, published_at) VALUES (1, '件名', '症状', '', '', '対応', 1, "
            "'published', 'all', 'all', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-15 00:00:00')"))
        connection.execute(text("INSERT INTO tags (id, name) VALUES (1, 'UTM')"))
        connection.execute(text("INSERT INTO case_tags (case_id, tag_id) VALUES (1, 1)"))
        connection.commit()
        connection.close()
        upgrade()
        row = db.session.execute(text("SELECT number, title, issue, tags, state FROM case_revisions")).one()
        assert tuple(row) == (1, "件名", "症状", "UTM", "published")
        assert str(db.session.execute(text("SELECT review_due FROM cases")).scalar()) == "2026-07-15"
        db.session.remove()
        db.engine.dispose()

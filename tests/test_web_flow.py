"""The page workflow through the test client, as each role: ask, answer, comment, resolve,
curate and publish a case, close without resolution, and every refusal on the way."""
from __future__ import annotations

import re
import warnings
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Answer, Case, CaseState, Comment, Question, QuestionStatus, Tag, utcnow
from app.services import questions as question_service
from tests.conftest import municipality

HOSTILE_BODY = "危険な貼り付け\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))\n"


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def text_of(response) -> str:
    return response.get_data(as_text=True)


def ask_form(**overrides) -> dict[str, str]:
    data = {
        "title": "テレワーク VPN が切断される",
        "category": "network",
        "tags": "VPN、テレワーク",
        "body": "在宅勤務中に **VPN** が 10 分ごとに切断されます。\n\n- 端末: Windows 11\n- 回線: 自宅光回線",
        "sharing_consent": "neighbours",
        "submit": "相談を送信",
    }
    data.update(overrides)
    return data


def case_form(**overrides) -> dict[str, str]:
    data = {
        "title": "VPN 切断の対処（アイドルタイムアウト）",
        "category": "security",
        "tags": "VPN、UTM",
        "issue": "在宅勤務で VPN が一定時間ごとに切断される。",
        "environment": "UTM 製品のリモートアクセス VPN、Windows 11 端末",
        "cause": "UTM のアイドルタイムアウトが 10 分に設定されていた。",
        "resolution": "アイドルタイムアウトを 60 分に延長した。",
        "submit": "保存",
    }
    data.update(overrides)
    return data


def positions(page: str, *needles: str) -> list[int]:
    found = [page.find(n) for n in needles]
    assert all(p >= 0 for p in found), dict(zip(needles, found))
    return found


@pytest.fixture
def kure(make_user):
    return make_user("municipal", "呉市", username="kure-staff")


@pytest.fixture
def helpdesk(make_user):
    return make_user("helpdesk", None, username="desk")


@pytest.fixture
def answered(kure, helpdesk, make_question):
    """A 呉市 question with one help-desk answer (made through the services)."""
    question = make_question(kure, title="庁内 LAN が遅い", body="昼休み明けに庁内 LAN が遅くなります。")
    answer = question_service.post_answer(helpdesk, question, {"body": "スイッチのループを確認してください。"})
    db.session.commit()
    return question, answer


@pytest.fixture
def draft_case(answered, kure):
    """The draft case created when the asker resolved the question."""
    question, answer = answered
    case = question_service.resolve_question(kure, question, answer.id)
    db.session.commit()
    return case


# --- the whole workflow -----------------------------------------------------------------------

def test_question_travels_from_ask_to_published_case_through_the_pages(client, login, kure, helpdesk):
    # The municipal user logs in and sees their municipality's questions page.
    login(kure)
    page = text_of(client.get("/questions"))
    assert "自団体の相談（呉市）" in page
    assert "まだ相談はありません。" in page

    # Asks a question.
    response = client.post("/questions/new", data=ask_form())
    assert response.status_code == 302
    question = db.session.scalar(select(Question))
    assert response.headers["Location"] == f"/questions/{question.id}"
    assert question.title == "テレワーク VPN が切断される"
    assert question.category.slug == "network"
    assert sorted(t.name for t in question.tags) == ["VPN", "テレワーク"]
    assert question.municipality.name == "呉市"
    assert question.asker_id == kure.id
    assert question.status == QuestionStatus.NEW.value
    assert question.sharing_consent == "neighbours"
    thread = text_of(client.get(f"/questions/{question.id}"))
    assert "相談を受け付けました。" in thread
    assert "<strong>VPN</strong>" in thread
    assert "受付" in thread and "県の番" in thread
    assert "テレワーク VPN が切断される" in text_of(client.get("/questions"))

    # The help desk finds it in the queue and answers it.
    login(helpdesk)
    assert "テレワーク VPN が切断される" in text_of(client.get("/helpdesk/queue"))
    response = client.post(f"/questions/{question.id}/reply", data={"reply-body": "UTM の **アイドルタイムアウト** を確認してください。", "reply-kind": "answer", "reply-submit": "x"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"/questions/{question.id}#answer-")
    db.session.refresh(question)
    assert question.status == QuestionStatus.IN_PROGRESS.value
    answer = db.session.scalar(select(Answer).where(Answer.question_id == question.id))
    assert answer.author_id == helpdesk.id
    assert "<strong>アイドルタイムアウト</strong>" in text_of(client.get(f"/questions/{question.id}"))

    # The asker comments, then resolves with the answer: a draft case is created.
    login(kure)
    response = client.post(f"/questions/{question.id}/comments", data={"comment-body": "タイムアウトを 60 分にしたら直りました。", "comment-submit": "x"})
    assert response.status_code == 302
    comment = db.session.scalar(select(Comment).where(Comment.question_id == question.id))
    assert comment.author_id == kure.id
    response = client.post(f"/questions/{question.id}/resolve", data={"answer_id": str(answer.id)})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/questions/{question.id}"  # the asker cannot edit cases
    db.session.refresh(question)
    assert question.status == QuestionStatus.RESOLVED.value
    assert question.resolved_answer_id == answer.id
    assert question.resolved_at is not None
    case = db.session.scalar(select(Case).where(Case.question_id == question.id))
    assert case is not None
    assert case.state == CaseState.DRAFT.value
    assert case.municipality.name == "呉市"
    assert case.title == question.title
    assert case.issue == question.body
    assert "アイドルタイムアウト" in case.resolution
    assert "タイムアウトを 60 分にしたら直りました。" in case.resolution  # the follow-up comment
    thread = text_of(client.get(f"/questions/{question.id}"))
    assert "解決済み" in thread
    assert f"/cases/{case.id}" in thread

    # The help desk edits the case with every field and publishes it.
    login(helpdesk)
    assert client.get(f"/cases/{case.id}/edit").status_code == 200
    response = client.post(f"/cases/{case.id}/edit", data=case_form())
    assert response.status_code == 302
    assert response.headers["Location"] == f"/cases/{case.id}#case"
    db.session.refresh(case)
    assert case.title == "VPN 切断の対処（アイドルタイムアウト）"
    assert case.category.slug == "security"
    assert [t.name for t in case.tags] == ["UTM", "VPN"]
    assert case.issue == "在宅勤務で VPN が一定時間ごとに切断される。"
    assert case.environment == "UTM 製品のリモートアクセス VPN、Windows 11 端末"
    assert case.cause == "UTM のアイドルタイムアウトが 10 分に設定されていた。"
    assert case.resolution == "アイドルタイムアウトを 60 分に延長した。"
    assert case.updated_by_id == helpdesk.id
    assert case.state == CaseState.DRAFT.value  # saving does not publish
    response = client.post(f"/cases/{case.id}/publish")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/cases/{case.id}"
    db.session.refresh(case)
    assert case.state == CaseState.PUBLISHED.value
    assert case.published_at is not None

    # The case page shows the KCS sections in order, with their text.
    page = text_of(client.get(f"/cases/{case.id}"))
    a, b, c, d = positions(page, "<h2>症状・質問</h2>", "<h2>環境</h2>", "<h2>原因</h2>", "<h2>対応</h2>")
    assert a < b < c < d
    assert "UTM のアイドルタイムアウトが 10 分に設定されていた。" in page
    assert "事例を公開しました。" in page

    # The asking municipality reads the published case.
    login(kure)
    response = client.get(f"/cases/{case.id}")
    assert response.status_code == 200
    assert "アイドルタイムアウトを 60 分に延長した。" in text_of(response)


# --- asking -----------------------------------------------------------------------------------

def test_municipal_questions_page_lists_only_own_municipality(client, login, kure, make_user, make_question):
    fukuyama = make_user("municipal", "福山市")
    make_question(kure, title="呉市のプリンタ相談")
    make_question(fukuyama, title="福山市のメール相談")
    login(kure)
    page = text_of(client.get("/questions"))
    assert "自団体の相談（呉市）" in page
    assert "呉市のプリンタ相談" in page
    assert "福山市のメール相談" not in page


def test_preview_renders_markdown_saves_nothing_and_keeps_typed_text(client, login, kure):
    login(kure)
    data = ask_form(preview="プレビュー")
    del data["submit"]
    response = client.post("/questions/new", data=data)
    assert response.status_code == 200
    page = text_of(response)
    assert 'aria-label="プレビュー"' in page
    assert "<strong>VPN</strong>" in page
    assert "<li>端末: Windows 11</li>" in page
    # Nothing was saved.
    assert count(Question) == 0
    assert count(Tag) == 0
    # What was typed is still in the form.
    assert 'value="テレワーク VPN が切断される"' in page
    assert 'value="VPN、テレワーク"' in page
    assert "在宅勤務中に **VPN** が 10 分ごとに切断されます。" in page  # raw text in the textarea
    assert '<option selected value="network">' in page
    assert re.search(r'<input checked[^>]*value="neighbours"', page)


INVALID_QUESTIONS = [
    ({"title": ""}, "件名を入力してください。"),
    ({"title": "   "}, "件名を入力してください。"),
    ({"title": "件" * 201}, "件名は200文字以内で入力してください。"),
    ({"body": "あ" * 100_001}, "本文は100,000文字以内で入力してください（現在 100,001 文字）。"),
    ({"body": ""}, "本文を入力してください。"),
    ({"category": "no-such-category"}, "分類「no-such-category」はありません。"),
    ({"category": ""}, "分類を選択してください。"),
    ({"sharing_consent": "everyone"}, "共有の同意は private・neighbours・all のいずれかです。"),
    ({"tags": "、".join(f"タグ{i}" for i in range(11))}, "タグは10個までです。"),
]


def test_invalid_question_shows_japanese_error_keeps_input_and_creates_nothing(client, login, kure):
    login(kure)
    for overrides, message in INVALID_QUESTIONS:
        data = ask_form(**overrides)
        response = client.post("/questions/new", data=data)
        assert response.status_code in (200, 422), overrides
        page = text_of(response)
        assert message in page, overrides
        assert "入力内容に誤りがあります。" in page
        assert count(Question) == 0, overrides
        assert count(Tag) == 0, overrides
        # Everything typed is still there to correct.
        if data["title"].strip():
            assert f'value="{data["title"]}"' in page, overrides
        assert f'value="{data["tags"]}"' in page, overrides
        assert data["body"] in page, overrides


def test_tags_are_normalised_and_deduplicated_and_consent_defaults_to_private(client, login, kure):
    login(kure)
    data = ask_form(tags="ＶＰＮ、VPN, テレワーク ，UTM、", title="タグの正規化")
    del data["sharing_consent"]
    assert client.post("/questions/new", data=data).status_code == 302
    question = db.session.scalar(select(Question))
    assert [t.name for t in question.tags] == sorted(["VPN", "テレワーク", "UTM"])
    assert count(Tag) == 3
    assert question.sharing_consent == "private"
    assert "<dt>事例の共有</dt><dd>共有しない（自団体と県のみ）</dd>" in text_of(client.get(f"/questions/{question.id}"))


def test_questions_page_filters_by_status_and_rejects_unknown_status(client, login, kure, helpdesk, make_question):
    make_question(kure, title="まだ受付中の相談")
    answered = make_question(kure, title="回答がついた相談")
    question_service.post_answer(helpdesk, answered, {"body": "回答です。"})
    db.session.commit()
    login(kure)
    page = text_of(client.get("/questions?status=in_progress"))
    assert "回答がついた相談" in page
    assert "まだ受付中の相談" not in page
    assert client.get("/questions?status=bogus").status_code == 400


def test_body_of_exactly_100000_chars_is_accepted(client, login, kure):
    login(kure)
    response = client.post("/questions/new", data=ask_form(body="い" * 100_000))
    assert response.status_code == 302
    assert len(db.session.scalar(select(Question)).body) == 100_000


def test_only_municipal_staff_may_ask(client, login, helpdesk, make_user):
    for user in [make_user("viewer", "呉市"), helpdesk, make_user("admin")]:
        login(user)
        assert client.get("/questions/new").status_code == 403, user.role
        assert client.post("/questions/new", data=ask_form()).status_code == 403, user.role
    assert count(Question) == 0


# --- the help desk queue ----------------------------------------------------------------------

def test_helpdesk_queue_lists_open_and_answered_oldest_first_and_filters_by_category_and_municipality(
        client, login, kure, helpdesk, make_user, make_question):
    fukuyama = make_user("municipal", "福山市")
    newer = make_question(kure, title="新しいネットワーク相談", category="network")
    older = make_question(kure, title="古いネットワーク相談", category="network")
    security = make_question(fukuyama, title="福山のセキュリティ相談", category="security")
    done = make_question(kure, title="解決済みの相談", category="network")
    closed = make_question(kure, title="終了した相談", category="network")
    now = utcnow()
    # Created order differs from id order, so the queue must sort by time, not id.
    newer.created_at = now - timedelta(hours=1)
    older.created_at = now - timedelta(days=3)
    security.created_at = now - timedelta(days=2)
    answer = question_service.post_answer(helpdesk, done, {"body": "再起動してください。"})
    question_service.resolve_question(kure, done, answer.id)
    question_service.close_question(kure, closed)
    question_service.post_answer(helpdesk, newer, {"body": "確認します。"})  # answered stays queued
    db.session.commit()

    login(helpdesk)
    page = text_of(client.get("/helpdesk/queue"))
    first, second, third = positions(page, "古いネットワーク相談", "福山のセキュリティ相談", "新しいネットワーク相談")
    assert first < second < third
    assert "解決済みの相談" not in page
    assert "終了した相談" not in page

    page = text_of(client.get("/helpdesk/queue?category=network"))
    assert "古いネットワーク相談" in page and "新しいネットワーク相談" in page
    assert "福山のセキュリティ相談" not in page

    page = text_of(client.get(f"/helpdesk/queue?municipality={municipality('福山市').id}"))
    assert "福山のセキュリティ相談" in page
    assert "古いネットワーク相談" not in page and "新しいネットワーク相談" not in page

    page = text_of(client.get(f"/helpdesk/queue?category=network&municipality={municipality('福山市').id}"))
    assert "条件に合う相談はありません。" in page
    assert client.get("/helpdesk/queue?municipality=abc").status_code == 400


def test_municipal_user_cannot_open_the_helpdesk_queue(client, login, kure):
    login(kure)
    assert client.get("/helpdesk/queue").status_code == 403


# --- answers and comments ---------------------------------------------------------------------

def test_answer_preview_shows_markdown_and_saves_nothing(client, login, kure, helpdesk, make_question):
    question = make_question(kure)
    login(helpdesk)
    response = client.post(f"/questions/{question.id}/reply",
                           data={"reply-body": "**再起動** を試してください。", "reply-kind": "answer", "reply-preview": "プレビュー"})
    assert response.status_code == 200
    page = text_of(response)
    assert "<strong>再起動</strong>" in page
    assert "**再起動** を試してください。" in page  # kept in the textarea
    assert count(Answer) == 0
    db.session.refresh(question)
    assert question.status == QuestionStatus.NEW.value


def test_empty_answer_is_rejected_with_japanese_error(client, login, kure, helpdesk, make_question):
    question = make_question(kure)
    login(helpdesk)
    response = client.post(f"/questions/{question.id}/reply", data={"reply-body": "  ", "reply-kind": "answer", "reply-submit": "x"})
    assert response.status_code == 422
    assert "回答を入力してください。" in text_of(response)
    assert count(Answer) == 0


def test_municipal_user_cannot_answer_even_own_question(client, login, kure, make_question):
    question = make_question(kure)
    login(kure)
    response = client.post(f"/questions/{question.id}/reply", data={"reply-body": "自己回答", "reply-kind": "answer", "reply-submit": "x"})
    assert response.status_code == 403
    assert count(Answer) == 0
    db.session.refresh(question)
    assert question.status == QuestionStatus.NEW.value
    assert "返信する</h2>" not in text_of(client.get(f"/questions/{question.id}"))


def test_viewer_reads_own_municipality_thread_but_cannot_comment_or_close(client, login, kure, make_user,
                                                                          make_question):
    question = make_question(kure, title="閲覧者も読める相談")
    viewer = make_user("viewer", "呉市")
    login(viewer)
    page = client.get(f"/questions/{question.id}")
    assert page.status_code == 200
    assert "閲覧者も読める相談" in text_of(page)
    assert "コメントする</h2>" not in text_of(page)
    assert "未解決のまま終了する</button>" not in text_of(page)
    response = client.post(f"/questions/{question.id}/comments", data={"comment-body": "閲覧者のコメント", "comment-submit": "x"})
    assert response.status_code == 403
    assert count(Comment) == 0
    assert client.post(f"/questions/{question.id}/close").status_code == 403
    db.session.refresh(question)
    assert question.status == QuestionStatus.NEW.value


def test_admin_reads_any_thread_but_cannot_answer(client, login, kure, make_user, make_question):
    question = make_question(kure, title="管理者が読む相談")
    login(make_user("admin"))
    response = client.get(f"/questions/{question.id}")
    assert response.status_code == 200
    assert "管理者が読む相談" in text_of(response)
    response = client.post(f"/questions/{question.id}/reply", data={"reply-body": "管理者の回答", "reply-kind": "answer", "reply-submit": "x"})
    assert response.status_code == 403
    assert count(Answer) == 0


# --- resolving --------------------------------------------------------------------------------

def test_helpdesk_resolving_is_sent_to_the_case_editor(client, login, answered, helpdesk):
    question, answer = answered
    login(helpdesk)
    response = client.post(f"/questions/{question.id}/resolve", data={"answer_id": str(answer.id)})
    assert response.status_code == 302
    case = db.session.scalar(select(Case).where(Case.question_id == question.id))
    assert response.headers["Location"] == f"/cases/{case.id}/edit"
    assert case.created_by_id == helpdesk.id


def test_resolving_with_a_missing_or_foreign_answer_shows_error_and_creates_nothing(client, login, answered, kure,
                                                                                    helpdesk, make_question):
    question, _ = answered
    other = make_question(kure, title="別の相談")
    foreign = question_service.post_answer(helpdesk, other, {"body": "別の回答"})
    db.session.commit()
    login(kure)
    for data, message in [
        ({"answer_id": str(foreign.id)}, "この相談の回答ではありません。"),
        ({}, "解決した回答を選んでください。"),
        ({"answer_id": "abc"}, "解決した回答を選んでください。"),
    ]:
        response = client.post(f"/questions/{question.id}/resolve", data=data, follow_redirects=True)
        assert message in text_of(response), data
        assert count(Case) == 0, data
        db.session.refresh(question)
        assert question.status == QuestionStatus.IN_PROGRESS.value
        assert question.resolved_answer_id is None


def test_resolving_twice_keeps_a_single_case(client, login, draft_case, kure):
    question = draft_case.question
    login(kure)
    response = client.post(f"/questions/{question.id}/resolve",
                           data={"answer_id": str(question.resolved_answer_id)}, follow_redirects=True)
    assert "すでに解決済みまたは終了しています。" in text_of(response)
    assert count(Case) == 1


# --- closing ----------------------------------------------------------------------------------

def test_asker_closes_question_without_resolution_and_no_case_is_made(client, login, kure, helpdesk, make_question):
    question = make_question(kure, title="結局わからなかった相談")
    login(kure)
    response = client.post(f"/questions/{question.id}/close")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/questions/{question.id}"
    db.session.refresh(question)
    assert question.status == QuestionStatus.CLOSED.value
    assert question.closed_at is not None
    assert question.resolved_answer_id is None
    assert count(Case) == 0
    page = text_of(client.get(f"/questions/{question.id}"))
    assert "相談を未解決のまま終了しました。" in page
    assert "終了" in page
    assert "未解決のまま終了する</button>" not in page
    assert "コメントする</h2>" not in page

    # A closed thread takes no more comments, answers or resolutions.
    assert client.post(f"/questions/{question.id}/comments", data={"comment-body": "追記", "comment-submit": "x"}).status_code == 403
    assert client.post(f"/questions/{question.id}/close", follow_redirects=True).status_code == 200
    login(helpdesk)
    assert client.post(f"/questions/{question.id}/reply", data={"reply-body": "遅い回答", "reply-kind": "answer", "reply-submit": "x"}).status_code == 403
    assert count(Comment) == 0 and count(Answer) == 0
    db.session.refresh(question)
    assert question.status == QuestionStatus.CLOSED.value


def test_closing_a_resolved_question_is_refused_and_it_stays_resolved(client, login, draft_case, kure):
    question = draft_case.question
    login(kure)
    response = client.post(f"/questions/{question.id}/close", follow_redirects=True)
    assert "この相談はすでに解決済みまたは終了しています。" in text_of(response)
    db.session.refresh(question)
    assert question.status == QuestionStatus.RESOLVED.value
    assert question.closed_at is None


# --- cases ------------------------------------------------------------------------------------

def test_municipal_user_reads_own_draft_case_but_cannot_edit_or_publish(client, login, draft_case, kure):
    login(kure)
    response = client.get(f"/cases/{draft_case.id}")
    assert response.status_code == 200
    page = text_of(response)
    assert "下書き" in page
    assert "スイッチのループを確認してください。" in page
    assert f"/cases/{draft_case.id}/edit" not in page
    assert client.get(f"/cases/{draft_case.id}/edit").status_code == 403
    response = client.post(f"/cases/{draft_case.id}/edit", data=case_form(title="改ざん"))
    assert response.status_code == 403
    response = client.post(f"/cases/{draft_case.id}/publish")
    assert response.status_code == 403
    db.session.refresh(draft_case)
    assert draft_case.title == "庁内 LAN が遅い"
    assert draft_case.state == CaseState.DRAFT.value
    assert draft_case.published_at is None


def test_case_editor_is_prefilled_from_the_draft(client, login, kure, helpdesk, make_question):
    question = make_question(kure, title="プリンタに印刷できない", category="optimization", tags="プリンタ、ドライバ")
    answer = question_service.post_answer(helpdesk, question, {"body": "ドライバを更新してください。"})
    case = question_service.resolve_question(kure, question, answer.id)
    db.session.commit()
    login(helpdesk)
    page = text_of(client.get(f"/cases/{case.id}/edit"))
    assert 'value="プリンタに印刷できない"' in page
    assert '<option selected value="optimization">' in page
    assert 'value="ドライバ、プリンタ"' in page
    assert "ドライバを更新してください。" in page
    assert "テレワーク用の VPN に接続できません。" in page  # the issue comes from the question body


def test_case_edit_with_empty_resolution_shows_japanese_error_and_changes_nothing(client, login, draft_case, helpdesk):
    login(helpdesk)
    response = client.post(f"/cases/{draft_case.id}/edit", data=case_form(resolution=""))
    assert response.status_code in (200, 422)
    page = text_of(response)
    assert "対応を入力してください。" in page
    assert 'value="VPN 切断の対処（アイドルタイムアウト）"' in page  # typed title kept
    db.session.refresh(draft_case)
    assert draft_case.title == "庁内 LAN が遅い"
    assert draft_case.resolution.startswith("スイッチのループを確認してください。")


def test_case_edit_preview_renders_every_section_and_saves_nothing(client, login, draft_case, helpdesk):
    login(helpdesk)
    data = case_form(cause="**ループ** が原因", preview="プレビュー")
    del data["submit"]
    response = client.post(f"/cases/{draft_case.id}/edit", data=data)
    assert response.status_code == 200
    page = text_of(response)
    assert "プレビュー: 原因" in page
    assert "<strong>ループ</strong>" in page
    db.session.refresh(draft_case)
    assert draft_case.cause == ""
    assert draft_case.title == "庁内 LAN が遅い"


def test_publishing_twice_reports_it_is_already_published(client, login, draft_case, helpdesk):
    login(helpdesk)
    assert client.post(f"/cases/{draft_case.id}/publish").status_code == 302
    db.session.refresh(draft_case)
    first_published = draft_case.published_at
    response = client.post(f"/cases/{draft_case.id}/publish", follow_redirects=True)
    assert "この事例はすでに公開されています。" in text_of(response)
    db.session.refresh(draft_case)
    assert draft_case.state == CaseState.PUBLISHED.value
    assert draft_case.published_at == first_published


def test_empty_case_sections_are_shown_as_not_filled_in(client, login, draft_case, helpdesk):
    login(helpdesk)
    page = text_of(client.get(f"/cases/{draft_case.id}"))
    for label in ("症状・質問", "環境", "原因", "対応"):
        assert f"<h2>{label}</h2>" in page
    assert page.count("（未記入）") == 2  # environment and cause are empty in a fresh draft


# --- another municipality ---------------------------------------------------------------------

def test_other_municipality_gets_404_for_thread_case_and_every_action(client, login, draft_case, make_user):
    question = draft_case.question
    login(make_user("municipal", "福山市"))
    assert client.get(f"/questions/{question.id}").status_code == 404
    assert client.get(f"/cases/{draft_case.id}").status_code == 404
    assert client.get(f"/cases/{draft_case.id}/edit").status_code == 404
    assert client.post(f"/questions/{question.id}/comments", data={"comment-body": "覗き見", "comment-submit": "x"}).status_code == 404
    assert client.post(f"/questions/{question.id}/close").status_code == 404
    assert client.post(f"/questions/{question.id}/resolve", data={"answer_id": "1"}).status_code == 404
    assert client.post(f"/cases/{draft_case.id}/publish").status_code == 404
    assert "庁内 LAN が遅い" not in text_of(client.get("/questions"))
    assert "庁内 LAN が遅い" not in text_of(client.get("/cases"))
    assert count(Comment) == 0
    db.session.refresh(question)
    assert question.status == QuestionStatus.RESOLVED.value
    # Not existing at all looks the same as existing elsewhere.
    assert client.get("/questions/999999").status_code == 404
    assert client.get("/cases/999999").status_code == 404


def test_other_municipality_viewer_gets_404_for_published_case(client, login, draft_case, helpdesk, make_user):
    login(helpdesk)
    assert client.post(f"/cases/{draft_case.id}/publish").status_code == 302
    login(make_user("viewer", "福山市"))
    assert client.get(f"/cases/{draft_case.id}").status_code == 404
    assert client.get(f"/questions/{draft_case.question_id}").status_code == 404


# --- hostile text -----------------------------------------------------------------------------

def test_hostile_question_text_is_stored_as_typed_and_never_runs(client, login, kure, helpdesk):
    login(kure)
    response = client.post("/questions/new", data=ask_form(title="<script>alert(1)</script>件名", body=HOSTILE_BODY,
                                                           tags="<script>alert(2)</script>、VPN"))
    assert response.status_code == 302
    question = db.session.scalar(select(Question))
    db.session.expire_all()
    stored = db.session.execute(select(Question.title, Question.body).where(Question.id == question.id)).one()
    assert stored.body == HOSTILE_BODY
    assert stored.title == "<script>alert(1)</script>件名"
    assert "<script>alert(2)</script>" in [t.name for t in question.tags]

    page = text_of(client.get(f"/questions/{question.id}"))
    assert "<script>alert" not in page
    assert "javascript:" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text, as typed

    # The same text in an answer, a comment and the case made from them.
    login(helpdesk)
    client.post(f"/questions/{question.id}/reply", data={"reply-body": HOSTILE_BODY, "reply-kind": "answer", "reply-submit": "x"})
    answer = db.session.scalar(select(Answer))
    assert answer.body == HOSTILE_BODY
    client.post(f"/questions/{question.id}/comments", data={"comment-body": HOSTILE_BODY, "comment-submit": "x"})
    assert db.session.scalar(select(Comment)).body == HOSTILE_BODY
    page = text_of(client.get(f"/questions/{question.id}"))
    assert "<script>alert" not in page
    assert "javascript:" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3

    client.post(f"/questions/{question.id}/resolve", data={"answer_id": str(answer.id)})
    case = db.session.scalar(select(Case))
    client.post(f"/cases/{case.id}/edit", data=case_form(environment=HOSTILE_BODY, cause=HOSTILE_BODY))
    db.session.refresh(case)
    assert case.environment == HOSTILE_BODY
    page = text_of(client.get(f"/cases/{case.id}"))
    assert "<script>alert" not in page
    assert "javascript:" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_hostile_preview_shows_no_script_and_no_javascript_link(client, login, kure):
    login(kure)
    data = ask_form(body=HOSTILE_BODY, preview="プレビュー")
    del data["submit"]
    page = text_of(client.post("/questions/new", data=data))
    preview = page[page.index('aria-label="プレビュー"'):page.index("</section>", page.index('aria-label="プレビュー"'))]
    assert "<script>alert" not in page
    assert "javascript:" not in preview
    assert 'href="javascript' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview
    assert count(Question) == 0


# --- WTForms choices ------------------------------------------------------------------------

def test_ask_page_builds_its_form_without_wtforms_deprecation_warning(client, login, kure):
    login(kure)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert client.get("/questions/new").status_code == 200
        assert client.post("/questions/new", data=ask_form()).status_code == 302
    assert count(Question) == 1

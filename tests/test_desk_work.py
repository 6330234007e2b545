"""The help desk's daily work: owners, statuses that say whose move it is, priority and kind,
response times, internal notes, one timeline, edits and withdrawals, duplicates and merges, canned
replies, print view."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Answer, AuditEvent, Case, Comment, InternalNote, PostRevision, Question, QuestionStatus
from app.services import questions as question_service
from app.services.errors import Conflict, ValidationFailed


@pytest.fixture
def people(make_user):
    return {
        "kure": make_user("municipal", "呉市", username="kure-staff"),
        "kure_viewer": make_user("viewer", "呉市", username="kure-viewer"),
        "fukuyama": make_user("municipal", "福山市", username="fukuyama-staff"),
        "desk": make_user("helpdesk", username="desk-a"),
        "desk2": make_user("helpdesk", username="desk-b"),
        "admin": make_user("admin", username="root"),
    }


def page(client, url) -> str:
    return client.get(url).get_data(as_text=True)


def reply(client, question, body, kind="answer", await_reply=False):
    data = {"reply-body": body, "reply-kind": kind, "reply-submit": "x"}
    if await_reply:
        data["reply-await_reply"] = "y"
    return client.post(f"/questions/{question.id}/reply", data=data)


# --- status says whose move it is ---------------------------------------------------------------

def test_status_follows_whose_move_it_is_and_waiting_time_is_not_counted(people, make_question):
    q = make_question(people["kure"])
    assert q.status == "new" and q.status_enum.whose_move == "helpdesk"
    question_service.assign(people["desk"], q, people["desk"].id)
    assert (q.status, q.owner_id) == ("in_progress", people["desk"].id)
    question_service.post_answer(people["desk"], q, {"body": "ログを送ってください。", "await_reply": True})
    assert q.status == "waiting" and q.status_enum.whose_move == "municipality"
    assert q.first_response_at is not None
    q.waiting_since -= timedelta(hours=5)  # the municipality took five hours to write back
    q.created_at -= timedelta(hours=6)
    question_service.post_comment(people["kure"], q, {"body": "送ります。"})
    assert q.status == "in_progress" and q.waiting_since is None
    assert 5 * 3600 - 5 <= q.waiting_seconds <= 5 * 3600 + 5
    answer = question_service.post_answer(people["desk"], q, {"body": "設定を直しました。"})
    question_service.resolve_question(people["kure"], q, answer.id)
    db.session.commit()
    assert q.status == "resolved"
    assert 3600 - 60 <= q.resolution_seconds <= 3600 + 60  # six hours minus the five spent waiting


def test_a_help_desk_comment_can_ask_and_a_municipal_comment_on_a_new_question_keeps_it_new(people, make_question):
    q = make_question(people["kure"])
    question_service.post_comment(people["kure"], q, {"body": "補足です。"})
    assert q.status == "new"
    question_service.post_comment(people["desk"], q, {"body": "機種を教えてください。", "await_reply": True})
    assert q.status == "waiting" and q.owner_id == people["desk"].id


def test_urgent_needs_a_reason_on_the_page_and_in_the_api(client, login, people, token_for):
    login(people["kure"])
    response = client.post("/questions/new", data={"title": "庁内LANが止まった", "body": "全庁で接続できません",
                                                   "category": "network", "kind": "incident", "urgent": "y"})
    assert response.status_code == 200 and "至急の理由を書いてください" in response.get_data(as_text=True)
    assert 'value="庁内LANが止まった"' in response.get_data(as_text=True)  # nothing typed is lost
    response = client.post("/questions/new", data={"title": "庁内LANが止まった", "body": "全庁で接続できません",
                                                   "category": "network", "kind": "incident", "urgent": "y",
                                                   "urgent_reason": "窓口業務が止まっている"})
    assert response.status_code == 302
    q = db.session.scalar(select(Question))
    assert (q.kind, q.priority, q.urgent_reason) == ("incident", "urgent", "窓口業務が止まっている")
    headers = token_for(people["kure"])
    bad = client.post("/api/v1/questions", headers=headers, json={
        "title": "t", "body": "b", "category": "network", "priority": "urgent"})
    assert bad.status_code == 422 and "urgent_reason" in bad.get_json()["error"]["fields"]


# --- the queue ----------------------------------------------------------------------------------

def test_the_queue_never_mixes_our_move_with_theirs_and_puts_incidents_first(client, login, people, make_question):
    old = make_question(people["kure"], title="古い通常の相談")
    old.created_at -= timedelta(days=10)
    urgent = make_question(people["kure"], title="至急の相談", priority="urgent", urgent_reason="止まっている")
    incident = make_question(people["fukuyama"], title="ランサムウェアの疑い", kind="incident")
    waiting = make_question(people["kure"], title="返事待ちの相談")
    question_service.post_answer(people["desk"], waiting, {"body": "教えてください。", "await_reply": True})
    mine = make_question(people["kure"], title="自分が担当の相談")
    question_service.assign(people["desk2"], mine, people["desk2"].id)
    db.session.commit()
    login(people["desk2"])
    ours = page(client, "/helpdesk/queue")
    titles = re.findall(r'<a href="/questions/\d+">([^<]+)</a>', ours)
    assert titles[:3] == ["ランサムウェアの疑い", "至急の相談", "古い通常の相談"]
    assert "返事待ちの相談" not in titles and "県の番" in ours and "市町の番" not in ours.split("<tbody>")[1]
    theirs = re.findall(r'<a href="/questions/\d+">([^<]+)</a>', page(client, "/helpdesk/queue?move=municipality"))
    assert theirs == ["返事待ちの相談"]
    assert re.findall(r'<a href="/questions/\d+">([^<]+)</a>', page(client, "/helpdesk/queue?view=mine")) == ["自分が担当の相談"]
    unassigned = re.findall(r'<a href="/questions/\d+">([^<]+)</a>', page(client, "/helpdesk/queue?view=unassigned"))
    assert "自分が担当の相談" not in unassigned and "至急の相談" in unassigned
    assert re.findall(r'<a href="/questions/\d+">([^<]+)</a>', page(client, "/helpdesk/queue?days=7")) == ["古い通常の相談"]
    assert re.findall(r'<a href="/questions/\d+">([^<]+)</a>', page(client, "/helpdesk/queue?priority=urgent")) == ["至急の相談"]
    assert re.findall(r'<a href="/questions/\d+">([^<]+)</a>', page(client, "/helpdesk/queue?kind=incident")) == ["ランサムウェアの疑い"]
    assert client.get("/helpdesk/queue?move=sideways").status_code == 400
    assert client.get("/helpdesk/queue?move=municipality&status=new").status_code == 400


def test_two_help_desk_members_taking_the_same_question_one_wins(client, people, make_question):
    q = make_question(people["kure"])
    question_service.assign(people["desk"], q, people["desk"].id, expected_owner_id=None)
    db.session.commit()
    with pytest.raises(Conflict):
        question_service.assign(people["desk2"], q, people["desk2"].id, expected_owner_id=None)
    db.session.rollback()
    assert db.session.get(Question, q.id).owner_id == people["desk"].id


def test_the_owner_must_be_on_the_help_desk(people, make_question):
    q = make_question(people["kure"])
    with pytest.raises(ValidationFailed):
        question_service.assign(people["desk"], q, people["kure"].id)


# --- internal notes -----------------------------------------------------------------------------

def test_internal_notes_never_reach_the_municipality(client, login, people, make_question, token_for):
    q = make_question(people["kure"])
    login(people["desk"])
    reply(client, q, "この市町は前回も同じ設定ミス。secret-note-text", kind="note")
    note = db.session.scalar(select(InternalNote))
    assert note is not None and q.status == "new"  # a note is not an answer
    assert "secret-note-text" in page(client, f"/questions/{q.id}")
    assert "secret-note-text" in page(client, f"/questions/{q.id}/print")
    for reader in ("kure", "kure_viewer"):
        login(people[reader])
        assert "secret-note-text" not in page(client, f"/questions/{q.id}")
        assert "secret-note-text" not in page(client, f"/questions/{q.id}/print")
        assert client.get(f"/questions/{q.id}/posts/note/{note.id}/edit").status_code == 404
        body = client.get(f"/api/v1/questions/{q.id}", headers=token_for(people[reader])).get_json()
        assert "internal_notes" not in body and "secret-note-text" not in str(body)
    desk_view = client.get(f"/api/v1/questions/{q.id}", headers=token_for(people["desk"])).get_json()
    assert [n["body"] for n in desk_view["internal_notes"]] == [note.body]
    admin_view = client.get(f"/api/v1/questions/{q.id}", headers=token_for(people["admin"])).get_json()
    assert len(admin_view["internal_notes"]) == 1
    assert client.post(f"/api/v1/questions/{q.id}/notes", headers=token_for(people["kure"]),
                       json={"body": "x"}).status_code == 403


# --- one conversation ---------------------------------------------------------------------------

def test_the_timeline_is_in_time_order_and_the_resolving_answer_is_shown_first(client, login, people, make_question):
    q = make_question(people["kure"])
    first = question_service.post_answer(people["desk"], q, {"body": "最初の回答A"})
    question_service.post_comment(people["kure"], q, {"body": "市町のコメントB"})
    second = question_service.post_answer(people["desk"], q, {"body": "二つめの回答C"})
    first.created_at -= timedelta(minutes=10)
    question_service.resolve_question(people["kure"], q, second.id)
    db.session.commit()
    login(people["kure"])
    html = page(client, f"/questions/{q.id}")
    resolved, timeline = html.split('id="timeline"')
    assert "二つめの回答C" in resolved
    assert timeline.index("最初の回答A") < timeline.index("市町のコメントB") < timeline.index("二つめの回答C")
    assert timeline.count('class="post answer') == 2 and "県ヘルプデスク" in timeline


def test_a_thread_page_has_unique_ids_and_every_field_a_label(client, login, people, make_question):
    q = make_question(people["kure"])
    question_service.post_answer(people["desk"], q, {"body": "回答"})
    db.session.commit()
    for user in ("desk", "kure"):
        login(people[user])
        html = page(client, f"/questions/{q.id}")
        ids = re.findall(r'\sid="([^"]+)"', html)
        assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
        for field_id in re.findall(r'<(?:textarea|select|input)(?![^>]*type="(?:hidden|submit|radio|checkbox)")[^>]*\sid="([^"]+)"', html):
            assert f'for="{field_id}"' in html, field_id


# --- edits and withdrawals ----------------------------------------------------------------------

def test_authors_edit_their_posts_and_the_help_desk_reads_earlier_versions(client, login, people, make_question):
    q = make_question(people["kure"], body="最初の本文")
    comment = question_service.post_comment(people["kure"], q, {"body": "コメント初版"})
    db.session.commit()
    login(people["kure"])
    response = client.post(f"/questions/{q.id}/posts/comment/{comment.id}/edit",
                           data={"body": "コメント改訂版", "submit": "保存する"})
    assert response.status_code == 302
    html = page(client, f"/questions/{q.id}")
    assert "コメント改訂版" in html and "コメント初版" not in html and "編集済み" in html
    assert client.get(f"/questions/{q.id}/posts/comment/{comment.id}/revisions").status_code == 403
    login(people["desk"])
    assert "コメント初版" in page(client, f"/questions/{q.id}/posts/comment/{comment.id}/revisions")
    # Nobody edits someone else's post.
    assert client.post(f"/questions/{q.id}/posts/comment/{comment.id}/edit",
                       data={"body": "乗っ取り", "submit": "x"}).status_code == 403
    login(people["fukuyama"])
    assert client.get(f"/questions/{q.id}/posts/comment/{comment.id}/edit").status_code == 404


def test_a_withdrawn_post_is_gone_everywhere_even_from_the_drafted_case(client, login, people, make_question, token_for):
    q = make_question(people["kure"], body="VPN 装置のパスワードは Kure#Pass2024 です。つながりません。")
    question_service.edit_post(people["kure"], q, {"body": q.body + "（追記）"})
    answer = question_service.post_answer(people["desk"], q, {"body": "証明書を更新してください。"})
    case = question_service.resolve_question(people["desk"], q, answer.id)
    db.session.commit()
    assert "Kure#Pass2024" in case.issue
    login(people["kure"])
    response = client.post(f"/questions/{q.id}/posts/question/{q.id}/withdraw")
    assert response.status_code == 302
    db.session.expire_all()
    for viewer in ("kure", "desk"):
        login(people[viewer])
        assert "Kure#Pass2024" not in page(client, f"/questions/{q.id}")
        body = client.get(f"/api/v1/questions/{q.id}", headers=token_for(people[viewer])).get_json()
        assert body["withdrawn"] is True and "Kure#Pass2024" not in str(body)
    assert "取り下げられました（kure-staff" in page(client, f"/questions/{q.id}").replace(" ", "")
    assert db.session.scalar(select(PostRevision)) is None
    case = db.session.get(Case, case.id)
    assert "Kure#Pass2024" not in case.issue and "［取り下げられた投稿］" in case.issue
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "post.withdraw")) is not None


def test_the_help_desk_withdraws_a_municipal_post_but_another_municipality_cannot(client, login, people, make_question):
    q = make_question(people["kure"])
    comment = question_service.post_comment(people["kure"], q, {"body": "pw: Secret#123"})
    db.session.commit()
    login(people["kure_viewer"])
    assert client.post(f"/questions/{q.id}/posts/comment/{comment.id}/withdraw").status_code == 403
    login(people["desk"])
    client.post(f"/questions/{q.id}/posts/comment/{comment.id}/withdraw")
    assert db.session.get(Comment, comment.id).body == ""


# --- duplicates and merges ----------------------------------------------------------------------

def test_a_duplicate_is_closed_and_both_threads_link_each_other_for_who_may_see_them(client, login, people, make_question):
    original = make_question(people["fukuyama"], title="福山市の元の相談")
    copy = make_question(people["kure"], title="呉市の同じ相談")
    login(people["desk"])
    response = client.post(f"/questions/{copy.id}/duplicate", data={"duplicate-target": str(original.id)})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Question, copy.id).status == "closed"
    assert f"相談 #{original.id}" in page(client, f"/questions/{copy.id}")
    assert "呉市の同じ相談" in page(client, f"/questions/{original.id}")
    login(people["fukuyama"])  # the other municipality's thread stays theirs
    assert "呉市の同じ相談" not in page(client, f"/questions/{original.id}")
    login(people["kure"])
    assert "福山市の元の相談" not in page(client, f"/questions/{copy.id}")


def test_merging_moves_every_post_in_time_order_and_only_within_a_municipality(client, login, people, make_question):
    target = make_question(people["kure"], title="統合先")
    source = make_question(people["kure"], title="統合元", body="統合元の本文")
    question_service.post_answer(people["desk"], source, {"body": "統合元への回答"})
    question_service.post_note(people["desk"], source, {"body": "統合元のメモ"})
    other = make_question(people["fukuyama"], title="他市")
    db.session.commit()
    with pytest.raises(ValidationFailed):
        question_service.merge_into(people["desk"], source, other.id)
    db.session.rollback()
    login(people["desk"])
    response = client.post(f"/questions/{source.id}/merge", data={"merge-target": str(target.id)})
    assert response.headers["Location"].endswith(f"/questions/{target.id}")
    db.session.expire_all()
    assert db.session.get(Question, source.id).merged_into_id == target.id
    assert db.session.get(Question, source.id).status == "closed"
    html = page(client, f"/questions/{target.id}")
    assert "統合元への回答" in html and "統合元のメモ" in html and "統合元の本文" in html
    assert {a.question_id for a in db.session.scalars(select(Answer))} == {target.id}


@pytest.mark.parametrize("withdrawn", ["merged_question", "its_comment_in_the_target"])
def test_withdrawing_a_merged_question_or_its_copy_removes_the_text_from_both_threads(
        client, login, people, make_question, token_for, withdrawn):
    """Merging copies the question's text into the target thread as a comment: a password pasted
    there must go from both, whichever of the two its author withdraws."""
    source = make_question(people["kure"], title="VPN 接続できない", body="管理者パスワード Zx9!secretPW を入れても接続できません")
    target = make_question(people["kure"], title="VPN がつながらない（同じ件）", body="同じ件です")
    login(people["desk"])
    assert client.post(f"/questions/{source.id}/merge", data={"merge-target": str(target.id)}).status_code == 302
    (copy,) = db.session.scalars(select(Comment).where(Comment.question_id == target.id)).all()
    login(people["kure"])
    if withdrawn == "merged_question":
        response = client.post(f"/questions/{source.id}/posts/question/{source.id}/withdraw")
    else:
        response = client.post(f"/questions/{target.id}/posts/comment/{copy.id}/withdraw")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Question, source.id).body == "" and db.session.get(Comment, copy.id).body == ""
    for thread in (source.id, target.id):
        assert "Zx9!secretPW" not in page(client, f"/questions/{thread}")
        api = client.get(f"/api/v1/questions/{thread}", headers=token_for(people["kure"])).get_data(as_text=True)
        assert "Zx9!secretPW" not in api
    assert "同じ件です" in page(client, f"/questions/{target.id}")   # the target's own question stays


def test_a_comment_that_only_looks_like_a_merged_copy_withdraws_nothing_else(client, login, people, make_question):
    other = make_question(people["kure"], title="別の相談", body="別の本文")
    thread = make_question(people["kure"], title="スレッド", body="本文")
    comment = question_service.post_comment(people["kure"], thread, {"body": f"（統合された相談 #{other.id}「別の相談」）\n\n別の本文"})
    db.session.commit()
    login(people["kure"])
    assert client.post(f"/questions/{thread.id}/posts/comment/{comment.id}/withdraw").status_code == 302
    db.session.expire_all()
    assert db.session.get(Question, other.id).body == "別の本文"


# --- canned replies and the print view ------------------------------------------------------------

def test_canned_replies_are_kept_and_inserted_into_the_reply_box(client, login, people, make_question):
    q = make_question(people["kure"])
    login(people["desk"])
    client.post("/helpdesk/canned", data={"title": "再起動のお願い", "body": "機器を再起動してください。"})
    from app.models import CannedReply

    canned = db.session.scalar(select(CannedReply))
    assert canned.title == "再起動のお願い"
    response = client.post(f"/questions/{q.id}/reply", data={
        "reply-body": "お世話になっております。", "reply-kind": "answer", "reply-canned": str(canned.id), "reply-insert": "x"})
    html = response.get_data(as_text=True)
    assert "お世話になっております。\n\n機器を再起動してください。" in html
    assert db.session.scalar(select(Answer)) is None  # inserting saves nothing
    login(people["kure"])
    assert client.get("/helpdesk/canned").status_code == 403


def test_the_print_view_has_no_menu_or_buttons_but_the_date_and_the_address(client, login, people, make_question):
    q = make_question(people["kure"], title="印刷する相談")
    question_service.post_answer(people["desk"], q, {"body": "印刷される回答"})
    db.session.commit()
    login(people["kure"])
    html = page(client, f"/questions/{q.id}/print")
    assert "印刷する相談" in html and "印刷される回答" in html and "印刷日時" in html
    assert f"/questions/{q.id}" in html
    assert "<nav" not in html and "<button" not in html and "<form" not in html

"""Notifications in the app and by e-mail through a real SMTP server on loopback (aiosmtpd):
who receives what, how each person chose to receive it, the policy asked at send time, retries,
digests, unfollow links, the Atom feed and requests to widen a consent."""
from __future__ import annotations

import email
import socket
from email import policy as email_policy
from email.header import decode_header, make_header
from xml.etree import ElementTree as ET

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from app.extensions import db
from app.models import Case, ConsentRequest, MailOutbox, Notification, Question, Watch
from app.services import accounts, notifications
from app.services import cases as case_service
from app.services import questions as question_service
from tests.conftest import municipality, recorded_statements


class Sink:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email_policy.default)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(app):
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(MAIL_BACKEND="smtp", MAIL_HOST="127.0.0.1", MAIL_PORT=controller.port, MAIL_SECURITY="none",
                      PUBLIC_URL="https://helpdesk.example.lg.jp")
    yield sink
    controller.stop()


def subject(message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def body(message) -> str:
    return message.get_content()


@pytest.fixture
def people(make_user):
    def user(role, place, name, mail=True):
        u = make_user(role, place, username=name)
        if mail:
            u.email = f"{name}@example.lg.jp"
        return u
    people = {
        "kure": user("municipal", "呉市", "kure-a"),
        "kure2": user("municipal", "呉市", "kure-b"),
        "fukuyama": user("municipal", "福山市", "fuku-a"),
        "desk": user("helpdesk", None, "desk-a"),
        "desk2": user("helpdesk", None, "desk-b"),
        "nomail": user("helpdesk", None, "desk-c", mail=False),
    }
    db.session.commit()
    return people


def deliver():
    return notifications.deliver_pending()


def test_a_new_question_reaches_the_help_desk_by_mail_in_japanese_with_a_link(smtp, people, make_question):
    question = make_question(people["kure"], title="VPN がつながらない")
    assert deliver()["sent"] == 2
    to = sorted(m["X-Envelope-To"] for m in smtp.messages)
    assert to == ["desk-a@example.lg.jp", "desk-b@example.lg.jp"]
    message = smtp.messages[0]
    assert subject(message) == "【相談窓口】新しい相談: VPN がつながらない"
    assert message.get_content_charset() == "utf-8"
    assert f"https://helpdesk.example.lg.jp/questions/{question.id}" in body(message)
    assert "フォローをやめる: https://helpdesk.example.lg.jp/unfollow/" in body(message)
    assert message["List-Unsubscribe"].startswith("<https://helpdesk.example.lg.jp/unfollow/")
    # The one without an address gets it in the app only.
    assert db.session.scalar(select(Notification).where(Notification.user_id == people["nomail"].id)) is not None


def test_a_title_with_line_breaks_is_one_line_and_its_mail_still_goes(smtp, people, client, token_for):
    """Through the API a title can carry line breaks: it is stored as one line, so the mail's
    subject is one header (no second header, and no mail that the library refuses to build)."""
    created = client.post("/api/v1/questions", headers=token_for(people["kure"]), json={
        "title": "至急: 基幹系が停止\r\nBcc: x@example.com\t", "body": "窓口業務が止まっています", "category": "network"})
    assert created.status_code == 201
    question = db.session.get(Question, created.get_json()["id"])
    assert question.title == "至急: 基幹系が停止 Bcc: x@example.com"
    assert deliver() == {"sent": 2, "dropped": 0, "failed": 0}
    assert {subject(m) for m in smtp.messages} == {"【相談窓口】新しい相談: 至急: 基幹系が停止 Bcc: x@example.com"}
    assert all(m["Bcc"] is None for m in smtp.messages)


def test_a_subject_never_carries_a_line_break(app):
    """A title stored before titles were made one line still gives a mail with one Subject."""
    from app.mail import build_message

    message = build_message("a@example.lg.jp", "【相談窓口】VPN が\r\nつながらない\u2028です", "本文")
    assert message["Subject"] == "【相談窓口】VPN が つながらない です"
    assert b"\r\nBcc" not in bytes(message)


def test_answers_reach_the_asker_and_watchers_but_internal_notes_reach_nobody(smtp, people, make_question):
    question = make_question(people["kure"])
    notifications.follow(people["kure2"], "question", question.id)
    deliver()
    smtp.messages.clear()
    question_service.post_note(people["desk"], question, {"body": "内部メモ: 前回も同じ設定ミス"})
    db.session.commit()
    assert deliver()["sent"] == 0 and smtp.messages == []
    question_service.post_answer(people["desk"], question, {"body": "証明書を更新してください。", "await_reply": True})
    db.session.commit()
    deliver()
    assert sorted(m["X-Envelope-To"] for m in smtp.messages) == ["kure-a@example.lg.jp", "kure-b@example.lg.jp"]
    assert all("回答がありました" in subject(m) for m in smtp.messages)
    assert not any("内部メモ" in body(m) or "前回も同じ" in body(m) for m in smtp.messages)


def test_the_policy_is_asked_when_the_mail_is_sent(smtp, people, make_question):
    question = make_question(people["kure"])
    deliver()
    question_service.post_answer(people["desk"], question, {"body": "回答"})
    db.session.commit()
    # April rotation before the mail goes out: the asker now works in 福山市.
    accounts.assign(people["kure"], "municipal", municipality("福山市"))
    db.session.commit()
    smtp.messages.clear()
    counts = deliver()
    assert not any(m["X-Envelope-To"] == "kure-a@example.lg.jp" and "回答がありました" in subject(m) for m in smtp.messages)
    assert counts["dropped"] >= 1
    dropped = db.session.scalar(select(MailOutbox).where(MailOutbox.dropped != ""))
    assert "読めない" in dropped.dropped


def test_an_anonymous_case_reaches_category_followers_without_its_owner(smtp, people, make_question):
    question = make_question(people["kure"], title="匿名で共有する相談", sharing_consent="all")
    answer = question_service.post_answer(people["desk"], question, {"body": "回答"})
    case = question_service.resolve_question(people["desk"], question, answer.id)
    notifications.follow(people["fukuyama"], "category", "network")
    notifications.set_channels(people["fukuyama"], {"case_published": "email"})
    db.session.commit()
    deliver()
    smtp.messages.clear()
    case_service.publish_case(people["desk"], case, "all", anonymous=True)
    db.session.commit()
    deliver()
    (message,) = [m for m in smtp.messages if m["X-Envelope-To"] == "fuku-a@example.lg.jp"]
    assert "新しい事例" in subject(message) and "市町名非公開" in body(message) and "呉市" not in body(message)


def test_each_person_chooses_app_only_mail_at_once_or_a_morning_digest(smtp, people, make_question, runner):
    notifications.set_channels(people["desk"], {"new_question": "app"})
    notifications.set_channels(people["desk2"], {"new_question": "digest"})
    db.session.commit()
    make_question(people["kure"], title="一件目")
    make_question(people["kure"], title="二件目")
    assert deliver()["sent"] == 0
    assert db.session.scalar(select(Notification).where(Notification.user_id == people["desk"].id)) is not None
    result = runner.invoke(args=["notify", "digest"])
    assert result.exit_code == 0, result.output
    (digest,) = smtp.messages
    assert digest["X-Envelope-To"] == "desk-b@example.lg.jp"
    assert "まとめ（2件）" in subject(digest) and "一件目" in body(digest) and "二件目" in body(digest)
    assert runner.invoke(args=["notify", "digest"]).exit_code == 0 and len(smtp.messages) == 1  # not twice


def test_a_request_never_waits_on_a_mail_server_that_is_down_and_the_mail_is_retried(app, people, make_question, client,
                                                                                      login):
    app.config.update(MAIL_BACKEND="smtp", MAIL_HOST="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2)
    login(people["kure"])
    response = client.post("/questions/new", data={"title": "止まっていても受け付ける", "body": "本文", "category": "network"})
    assert response.status_code == 302
    counts = deliver()
    assert counts["failed"] == 2 and counts["sent"] == 0
    row = db.session.scalar(select(MailOutbox))
    assert row.sent_at is None and row.attempts == 1 and "ConnectionRefused" in row.last_error
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=app.config["MAIL_PORT"])
    controller.start()
    try:
        db.session.execute(MailOutbox.__table__.update().values(next_attempt_at=row.created_at))  # the retry is due
        db.session.commit()
        assert deliver()["sent"] == 2 and len(sink.messages) == 2
    finally:
        controller.stop()


def test_an_unfollow_link_stops_the_mails_and_cannot_be_forged(smtp, people, make_question, client):
    question = make_question(people["kure"])
    notifications.follow(people["kure2"], "question", question.id)
    db.session.commit()
    token = notifications.unfollow_token(people["kure2"].id, "question", question.id)
    assert client.get(f"/unfollow/{token}").status_code == 200  # a page with one button, nothing changed yet
    assert db.session.scalar(select(Watch).where(Watch.user_id == people["kure2"].id)) is not None
    assert client.post(f"/unfollow/{token}").status_code == 200
    assert db.session.scalar(select(Watch).where(Watch.user_id == people["kure2"].id)) is None
    assert client.post(f"/unfollow/{token[:-2]}xx").status_code == 404


def test_the_bell_counts_unread_notifications_and_marks_them_read(client, login, people, make_question):
    make_question(people["kure"], title="ベルの相談")
    login(people["desk"])
    page = client.get("/notifications").get_data(as_text=True)
    assert "新しい相談: ベルの相談" in page and "未読" in page
    assert notifications.unread_count(people["desk"]) == 1
    client.post("/notifications/read")
    assert notifications.unread_count(people["desk"]) == 0


def test_the_feed_holds_only_what_its_owner_may_read(client, people, make_user):
    from tests.test_search import add_case

    add_case(make_user, "全市町に共有した事例", owner="呉市", visibility="all")
    add_case(make_user, "三次市だけの事例", owner="三次市", visibility="private")
    anonymous = add_case(make_user, "匿名の事例", owner="呉市", visibility="all")
    anonymous.anonymous = True
    token = accounts.renew_feed_token(people["fukuyama"])
    db.session.commit()
    response = client.get(f"/feeds/{token}.atom")
    assert response.mimetype == "application/atom+xml"
    root = ET.fromstring(response.data)
    atom = "{http://www.w3.org/2005/Atom}"
    entries = {e.find(f"{atom}title").text: e.find(f"{atom}author/{atom}name").text for e in root.findall(f"{atom}entry")}
    assert entries == {"全市町に共有した事例": "呉市", "匿名の事例": "市町名非公開"}
    renewed = accounts.renew_feed_token(people["fukuyama"])
    db.session.commit()
    assert client.get(f"/feeds/{token}.atom").status_code == 404
    assert client.get(f"/feeds/{renewed}.atom").status_code == 200


@pytest.mark.parametrize("ending", ["password_change", "password_reset", "disable_then_enable", "token_revoke"])
def test_the_feed_address_ends_where_sessions_and_api_tokens_end(client, people, make_user, ending):
    """The address is a credential: a password change or reset, a disable (even once enabled
    again) and revoking the API tokens stop it, as they stop sessions and tokens."""
    from tests.conftest import PASSWORD
    from tests.test_search import add_case

    add_case(make_user, "全市町に共有した事例", owner="呉市", visibility="all")
    user = people["fukuyama"]
    token = accounts.renew_feed_token(user)
    db.session.commit()
    assert client.get(f"/feeds/{token}.atom").status_code == 200
    if ending == "password_change":
        accounts.change_password(user, PASSWORD, "a-brand-new-pass-123", "a-brand-new-pass-123")
    elif ending == "password_reset":
        accounts.reset_password(user, "admin-set-pass-456")
    elif ending == "disable_then_enable":
        accounts.disable_user(user)
        db.session.commit()
        accounts.enable_user(user)
    else:
        accounts.revoke_tokens(user)
    db.session.commit()
    assert client.get(f"/feeds/{token}.atom").status_code == 404
    renewed = accounts.renew_feed_token(user)
    db.session.commit()
    assert client.get(f"/feeds/{renewed}.atom").status_code == 200


def test_the_feed_stays_well_formed_with_control_characters_and_filters_by_category(client, people, make_user):
    from tests.test_search import add_case

    case = add_case(make_user, "ログ\x1b[31m 付きの事例", owner="呉市", visibility="all")
    case.issue = "エラー\x07\x0b <script>alert(1)</script> が出る"   # (NUL never reaches the database: app.params)
    token = accounts.renew_feed_token(people["fukuyama"])
    db.session.commit()
    root = ET.fromstring(client.get(f"/feeds/{token}.atom").data)   # parses: no raw control characters
    atom = "{http://www.w3.org/2005/Atom}"
    (entry,) = root.findall(f"{atom}entry")
    assert entry.find(f"{atom}summary").text == "エラー <script>alert(1)</script> が出る"   # text, escaped by XML
    assert ET.fromstring(client.get(f"/feeds/{token}.atom?category=security").data).findall(f"{atom}entry") == []
    assert client.get(f"/feeds/{token}.atom?category=nope").status_code == 404


def test_the_help_desk_asks_to_widen_a_consent_and_the_owner_answers(smtp, people, make_question, client, login):
    question = make_question(people["kure"], sharing_consent="private")
    answer = question_service.post_answer(people["desk"], question, {"body": "回答"})
    case = question_service.resolve_question(people["desk"], question, answer.id)
    db.session.commit()
    deliver()
    smtp.messages.clear()
    request = case_service.request_wider_consent(people["desk"], case, "neighbours", "近隣の市町にも役立つため")
    db.session.commit()
    deliver()
    assert sorted(m["X-Envelope-To"] for m in smtp.messages) == ["kure-a@example.lg.jp", "kure-b@example.lg.jp"]
    assert "近隣の市町にも役立つため" in body(smtp.messages[0])
    with pytest.raises(Exception):
        case_service.answer_consent_request(people["fukuyama"], request, accept=True)
    db.session.rollback()
    login(people["kure"])
    response = client.post(f"/cases/{case.id}/consent-requests/{request.id}", data={"decision": "accept"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).sharing_consent == "neighbours"
    assert db.session.get(ConsentRequest, request.id).decision == "accepted"
    assert db.session.scalar(select(Notification).where(Notification.user_id == people["desk"].id,
                                                        Notification.request_id == request.id)) is not None


def test_a_thread_is_new_to_a_reader_until_they_open_it_and_internal_notes_only_count_for_the_desk(people, make_question):
    from app.services import seen
    kure, desk, desk2 = people["kure"], people["desk"], people["desk2"]
    question = make_question(kure, title="新着の確認")
    assert seen.mark_thread_seen(kure, question) is None          # the asker lands on the thread
    db.session.commit()
    assert seen.threads_with_news(kure, [question.id]) == set()    # nothing but their own question
    assert seen.threads_with_news(desk, [question.id]) == {question.id}
    before = seen.mark_thread_seen(desk, question)
    db.session.commit()
    assert before is None and seen.threads_with_news(desk, [question.id]) == set()
    question_service.post_note(desk2, question, {"body": "内部メモ"})
    db.session.commit()
    assert seen.threads_with_news(kure, [question.id]) == set()    # an internal note is not news to the town
    assert seen.threads_with_news(desk, [question.id]) == {question.id}
    answer = question_service.post_answer(desk, question, {"body": "回答です"})
    db.session.commit()
    assert seen.threads_with_news(kure, [question.id]) == {question.id}
    assert seen.threads_with_news(desk, [question.id]) == {question.id}   # desk2's note, not desk's answer
    seen_before = seen.mark_thread_seen(kure, question)
    db.session.commit()
    assert seen.is_new(answer, seen_before, kure) and not seen.is_new(answer, seen_before, desk)
    assert seen.threads_with_news(kure, [question.id]) == set()


def test_opening_a_thread_twice_at_once_keeps_one_seen_row(people, make_question, monkeypatch):
    """The second tab's lookup ran before the first tab's insert: its insert collides and is dropped."""
    from app.models import QuestionSeen
    from app.services import seen
    question = make_question(people["kure"])
    seen.mark_thread_seen(people["desk"], question)
    db.session.commit()
    real_scalar = db.session.scalar
    calls = []

    def stale_lookup(statement, *args, **kwargs):
        if not calls:
            calls.append(statement)
            return None            # what the second tab saw before the first one committed
        return real_scalar(statement, *args, **kwargs)

    monkeypatch.setattr(db.session, "scalar", stale_lookup)
    assert seen.mark_thread_seen(people["desk"], question) is None
    monkeypatch.undo()
    db.session.commit()
    rows = db.session.scalars(select(QuestionSeen).where(QuestionSeen.question_id == question.id)).all()
    assert [r.user_id for r in rows] == [people["desk"].id]


@pytest.mark.parametrize("back", ["https://evil.example/", "//evil.example/", "/\\evil.example/", "/\\/evil",
                                  "javascript:alert(1)", "/ok\r\nSet-Cookie: x=1"])
def test_following_never_redirects_off_the_site(people, client, login, back):
    login(people["kure"])
    response = client.post("/notifications/follow", data={"target_type": "category", "target_key": "network",
                                                          "back": back})
    assert response.status_code == 302
    assert response.headers["Location"] in ("/notifications/settings", "http://localhost/notifications/settings")


def test_the_bell_on_every_page_reads_a_fixed_number_of_statements_however_many_are_unread(people, make_question):
    """Each notification's question or case is loaded with the others, not one statement each."""
    def statements_of_the_bell() -> tuple[int, int]:
        db.session.expire_all()
        with recorded_statements() as seen:
            count = notifications.unread_count(people["desk"])
        return count, len(seen)

    for n in range(2):
        make_question(people["kure"], title=f"少ない相談 {n}")
    few = statements_of_the_bell()
    for n in range(12):
        make_question(people["fukuyama" if n % 2 else "kure"], title=f"多い相談 {n}")
    many = statements_of_the_bell()
    assert (few[0], many[0]) == (2, 14)
    assert many[1] == few[1]


def test_the_bell_counts_up_to_its_cap_and_says_so(client, login, people, make_question):
    from app.services.notifications import BELL_CAP

    for n in range(BELL_CAP + 3):
        make_question(people["kure"], title=f"相談 {n}")
    assert notifications.unread_count(people["desk"]) == BELL_CAP
    login(people["desk"])
    page = client.get("/notifications").get_data(as_text=True)
    assert f'>{BELL_CAP}+</span>' in page and f"未読{BELL_CAP}件以上" in page

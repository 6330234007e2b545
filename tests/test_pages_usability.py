"""What a person meets on the pages: forms that land where the errors or the result are, Japanese
words instead of codes (audit log, roles, formatting help), the login form's empty fields, the case's
print view, the skip link and errors tied to their fields."""
from __future__ import annotations

import re

import html5lib
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Municipality, Role
from app.services import accounts
from app.services import cases as case_service
from app.services import questions as question_service
from tests.conftest import PASSWORD, municipality

FOCUSABLE = ("a", "button", "input", "select", "textarea", "summary")


def _doc(html: str):
    return html5lib.parse(html, namespaceHTMLElements=False)


def _text(element) -> str:
    return re.sub(r"\s+", " ", "".join(element.itertext())).strip()


def _focusable(document):
    """Elements a Tab reaches, in document order (roughly as a browser decides)."""
    for element in document.iter():
        if not isinstance(element.tag, str) or element.tag not in FOCUSABLE:
            continue
        if element.tag == "a" and element.get("href") is None:
            continue
        if element.tag == "input" and element.get("type") == "hidden":
            continue
        if element.get("disabled") is not None or element.get("hidden") is not None or element.get("tabindex") == "-1":
            continue
        yield element


@pytest.fixture
def people(make_user):
    return {
        "kure": make_user("municipal", "呉市", username="kure-staff"),
        "desk": make_user("helpdesk", None, username="desk"),
        "admin": make_user("admin", None, username="root"),
        "stranger": make_user("municipal", "三次市", username="miyoshi-staff"),
        "viewer": make_user("viewer", "東広島市", username="higashi-ro"),
    }


@pytest.fixture
def case(people, make_question):
    question = make_question(people["kure"], title="ファイルサーバに接続できない",
                             body="庁内のファイルサーバに接続できない", sharing_consent="all")
    answer = question_service.post_answer(people["desk"], question, {"body": "DNS を確認してください。"})
    db.session.flush()
    draft = question_service.resolve_question(people["desk"], question, answer.id)
    db.session.commit()
    return draft


def _pages(people, case, make_question):
    """(user, path) of the pages with forms and the main pages."""
    question = case.question
    answer = question.answers[0]
    reply = question_service.save_canned_reply(people["desk"], None, "挨拶", "お問い合わせありがとうございます。")
    db.session.commit()
    return [
        (None, "/login"),
        ("kure", "/questions"), ("kure", "/questions/new"), ("kure", f"/questions/{question.id}"),
        ("kure", "/cases"), ("kure", f"/cases/{case.id}"), ("kure", "/search"), ("kure", "/search?q=DNS"),
        ("kure", "/account/password"),
        ("desk", "/helpdesk/queue"), ("desk", f"/cases/{case.id}/edit"), ("desk", f"/cases/{case.id}/publish"),
        ("desk", "/helpdesk/canned"), ("desk", f"/helpdesk/canned/{reply.id}"),
        ("desk", f"/questions/{question.id}/posts/answer/{answer.id}/edit"),
        ("desk", "/cases/sensitive-names"), ("desk", "/search/synonyms"), ("desk", "/search/misses"),
        ("admin", "/admin/users"), ("admin", f"/admin/users/{people['kure'].id}"), ("admin", "/admin/municipalities"),
        ("admin", "/admin/groups"), ("admin", "/admin/categories"), ("admin", "/admin/audit"),
    ]


def _visit(client, login, people, pages):
    current = object()
    for who, path in pages:
        if who != current:
            client.post("/logout")
            if who:
                login(people[who])
            current = who
        response = client.get(path)
        assert response.status_code == 200, path
        yield who, path, response.get_data(as_text=True)


# --- 8. skip link, focus order -------------------------------------------------------------------------

def test_the_skip_link_is_the_first_thing_a_tab_reaches_on_every_page(client, login, people, case, make_question):
    for who, path, html in _visit(client, login, people, _pages(people, case, make_question)):
        document = _doc(html)
        first = next(_focusable(document))
        assert first.tag == "a" and _text(first) == "本文へ移動" and first.get("href") == "#main", (path, first.attrib)
        main = document.find(".//main")
        assert main.get("id") == "main", path


def test_the_print_views_have_the_skip_link_too(client, login, people, case):
    login(people["kure"])
    for path in (f"/cases/{case.id}/print", f"/questions/{case.question_id}/print"):
        document = _doc(client.get(path).get_data(as_text=True))
        assert _text(next(_focusable(document))) == "本文へ移動", path


# --- 1. where a form lands ---------------------------------------------------------------------------

# Pages of the attachments work (not changed here): they still post to "#preview", which matches the
# preview *button* (id="preview") when no preview is shown.
LANDING_ELSEWHERE = {"/questions/new", "/cases/{case}/edit"}


def test_no_form_lands_on_a_button_or_on_nothing(client, login, people, case, make_question):
    problems = []
    for who, path, html in _visit(client, login, people, _pages(people, case, make_question)):
        document = _doc(html)
        ids = {e.get("id"): e for e in document.iter() if isinstance(e.tag, str) and e.get("id")}
        for form in document.iter("form"):
            targets = [form.get("action") or ""] + [b.get("formaction") or "" for b in form.iter("button")]
            for target in targets:
                if "#" not in target:
                    continue
                fragment = target.split("#", 1)[1]
                element = ids.get(fragment)
                if element is None or element.tag in ("button", "input", "select", "textarea"):
                    problems.append((path.replace(str(case.id), "{case}"), target, element.tag if element is not None else None))
    mine = [p for p in problems if p[0] not in LANDING_ELSEWHERE]
    assert mine == [], mine


def test_an_error_far_down_the_page_is_summarised_at_the_top_with_a_link_to_the_field(client, login, people):
    login(people["admin"])
    response = client.post("/admin/users", data={"username": "", "password": "short", "role": "municipal"})
    document = _doc(response.get_data(as_text=True))
    summary = document.find(".//*[@id='error-summary']")
    assert summary is not None
    main = document.find(".//main")
    order = [e for e in main.iter() if isinstance(e.tag, str)]
    table = main.find(".//table")
    assert order.index(summary) < order.index(table)  # above the list of accounts, under the heading
    links = {a.get("href") for a in summary.iter("a")}
    assert "#password" in links and "#username" in links
    assert document.find(".//input[@id='password']") is not None


# --- 8. errors tied to their fields ---------------------------------------------------------------------

def _error_pages(client, login, people, case):
    login(people["admin"])
    yield "users", client.post("/admin/users", data={"username": "", "password": "x", "role": "municipal"})
    yield "user", client.post(f"/admin/users/{people['kure'].id}", data={
        "password-password": "x", "password-submit": "パスワードを再設定"})
    yield "categories", client.post("/admin/categories", data={"slug": "", "name": ""})
    client.post("/logout")
    login(people["desk"])
    yield "synonyms", client.post("/search/synonyms", data={"terms": "x"})
    yield "names", client.post("/cases/sensitive-names", data={"name": "x"})
    yield "canned", client.post("/helpdesk/canned", data={"title": "", "body": ""})
    answer = case.question.answers[0]
    yield "edit post", client.post(f"/questions/{case.question_id}/posts/answer/{answer.id}/edit", data={"body": ""})
    yield "publish", client.post(f"/cases/{case.id}/publish", data={"visibility": "all", "keep_text_0": "x", "keep_0": "1"})
    client.post("/logout")
    login(people["kure"])
    yield "password", client.post("/account/password", data={
        "current_password": "wrong", "new_password": "x", "confirm_password": "y"})
    client.post("/logout")
    yield "login", client.post("/login", data={"username": "", "password": ""})


def test_every_field_error_is_tied_to_its_field(client, login, people, case):
    seen = 0
    for name, response in _error_pages(client, login, people, case):
        document = _doc(response.get_data(as_text=True))
        errors = [e for e in document.iter() if isinstance(e.tag, str) and "error" in (e.get("class") or "").split()]
        invalid = [e for e in document.iter() if isinstance(e.tag, str) and e.get("aria-invalid") == "true"]
        if name != "publish":
            assert errors and invalid, name
        described = {ref for e in invalid for ref in (e.get("aria-describedby") or "").split()}
        for error in errors:
            assert error.get("id") in described, (name, _text(error))
        ids = {e.get("id") for e in document.iter() if isinstance(e.tag, str)}
        for control in invalid:
            refs = (control.get("aria-describedby") or "").split()
            assert refs and all(ref in ids for ref in refs), (name, control.attrib)
        seen += 1
    assert seen == 10


def test_a_finding_left_open_is_marked_on_its_row(client, login, people, case):
    case.issue = "接続先 192.168.10.5 に届かない"
    db.session.commit()
    login(people["desk"])
    response = client.post(f"/cases/{case.id}/publish", data={"visibility": "all", "keep_text_0": "192.168.10.5"})
    assert response.status_code == 409
    document = _doc(response.get_data(as_text=True))
    reason = document.find(".//input[@name='keep_reason_0']")
    assert reason.get("aria-invalid") == "true"
    error = document.find(f".//*[@id='{reason.get('aria-describedby')}']")
    assert "伏せるか、理由を書いて残してください" in _text(error)


# --- 5. Japanese words, not codes --------------------------------------------------------------------------

def test_the_audit_log_shows_labels_not_codes_and_the_stored_summaries_are_unchanged(client, login, people, case):
    desk = people["desk"]
    accounts.assign(people["viewer"], "municipal", municipality("庄原市"), actor=people["admin"])
    case_service.update_case(desk, case, {"issue": "庁内のファイルサーバに接続できない（更新）", "tags": "DNS"})
    case_service.publish_case(desk, case, "private")
    case_service.change_visibility(desk, case, "all", False, [])
    case_service.change_consent(people["kure"], case, "neighbours")
    db.session.commit()
    stored = [(e.action, e.summary) for e in db.session.scalars(select(AuditEvent))]
    assert ("case.visibility", f"#{case.id} private → all") in stored
    assert any(a == "case.consent" and "all → neighbours" in s for a, s in stored)
    assert ("user.create", "kure-staff: municipal（呉市）") in stored

    login(people["admin"])
    document = _doc(client.get("/admin/audit").get_data(as_text=True))
    table = _text(document.find(".//table"))
    for code in ("private", "neighbours", " all", "municipal", "helpdesk", "viewer", "issue", "tags", "→ all"):
        assert code not in table, code
    for label in ("公開範囲「自団体と県のみ」 → 「全市町」", "共有への同意「全市町」→「近隣・グループの市町」",
                  "症状・質問、タグ", "kure-staff: 市町職員（呉市）", "閲覧者（東広島市）→ 市町職員（庄原市）",
                  "desk: 県ヘルプデスク"):
        assert label in table, label


def test_role_choices_and_account_lists_use_the_role_names(client, login, people):
    login(people["admin"])
    html = client.get("/admin/users").get_data(as_text=True)
    document = _doc(html)
    options = [_text(o) for o in document.find(".//select[@name='role']").iter("option")]
    assert options == [r.label for r in Role]
    assert not re.search(r"（(municipal|helpdesk|viewer|admin)）", html)
    # A service message written for the command line keeps no code on the page.
    observer = db.session.scalar(select(Municipality).where(Municipality.is_observer.is_(True)))
    response = client.post("/admin/users", data={"username": "kasaoka-staff", "password": PASSWORD + "-x",
                                                  "role": "municipal", "municipality": str(observer.id)})
    page = response.get_data(as_text=True)
    assert "閲覧者として登録してください" in page and "（viewer）" not in page


def test_formatted_text_fields_offer_help_in_japanese_not_markdown(client, login, people, case):
    login(people["desk"])
    reply = question_service.save_canned_reply(people["desk"], None, "挨拶", "本文")
    db.session.commit()
    answer = case.question.answers[0]
    for path in ("/helpdesk/canned", f"/helpdesk/canned/{reply.id}",
                 f"/questions/{case.question_id}/posts/answer/{answer.id}/edit"):
        document = _doc(client.get(path).get_data(as_text=True))
        main = _text(document.find(".//main"))
        assert "Markdown" not in main, path
        help_box = next(d for d in document.iter("details") if "format-help" in (d.get("class") or ""))
        words = _text(help_box)
        assert "書式のヘルプ" in words and "**重要**" in words and "箇条書き" in words and "```" in words, path


def test_pages_show_no_visibility_or_role_codes(client, login, people, case, make_question):
    for who, path, html in _visit(client, login, people, _pages(people, case, make_question)):
        if path in ("/questions/new", f"/questions/{case.question_id}", f"/cases/{case.id}/edit"):
            continue  # the attachments work's pages
        shown = _text(_doc(html).find(".//main"))
        assert not re.search(r"（(private|neighbours|all|municipal|helpdesk|viewer|admin)）", shown), path
        assert "Markdown" not in shown, path


# --- 7. print view of a case ---------------------------------------------------------------------------------

def test_the_case_print_view_has_no_menu_or_buttons_and_gives_the_date_and_address(client, login, people, case):
    login(people["kure"])
    response = client.get(f"/cases/{case.id}/print")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    document = _doc(html)
    assert document.find(".//nav") is None and document.find(".//form") is None and document.find(".//button") is None
    assert 'href="/static/print.css"' in html
    assert f"http://localhost/cases/{case.id}" in html and "印刷日時" in html
    assert "ファイルサーバに接続できない" in html and "呉市" in html
    assert document.find(".//script") is None


def test_the_case_print_view_is_for_readers_only_and_keeps_anonymity(client, login, people, case):
    login(people["stranger"])
    assert client.get(f"/cases/{case.id}/print").status_code == 404  # a draft of another municipality
    desk = people["desk"]
    case.issue = "庁内のファイルサーバに接続できない"
    case_service.publish_case(desk, case, "all", True)
    db.session.commit()
    login(people["stranger"])
    html = client.get(f"/cases/{case.id}/print").get_data(as_text=True)
    assert "市町名非公開" in html and "呉市" not in html and "全市町" not in html
    case_service.archive_case(desk, case)
    db.session.commit()
    assert client.get(f"/cases/{case.id}/print").status_code == 404
    client.post("/logout")
    assert client.get(f"/cases/{case.id}/print").status_code == 302  # to the login page

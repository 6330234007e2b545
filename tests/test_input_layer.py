"""One input layer: ids no database can hold are 404, paging numbers out of range or in other
digits are 400 with a Japanese message (JSON for the API), NUL characters never reach the
database, and JSON with lone surrogates is refused."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Question

HUGE = "193976865273507381248"


@pytest.mark.parametrize("method,path", [
    ("GET", f"/api/v1/cases/{HUGE}"),
    ("GET", f"/api/v1/questions/{HUGE}"),
    ("PATCH", f"/api/v1/cases/{HUGE}"),
    ("POST", f"/api/v1/cases/{HUGE}/archive"),
    ("POST", f"/api/v1/cases/{HUGE}/helpful"),
    ("POST", f"/api/v1/cases/{HUGE}/consent"),
    ("POST", f"/api/v1/cases/{HUGE}/publish"),
    ("POST", f"/api/v1/questions/{HUGE}/comments"),
    ("POST", f"/api/v1/questions/{HUGE}/answers"),
    ("POST", "/api/v1/questions/9223372036854775808/resolve"),
])
def test_ids_beyond_64_bits_are_not_found_in_the_api(client, make_user, token_for, method, path):
    headers = token_for(make_user("helpdesk"))
    response = client.open(path, method=method, headers=headers, json={})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", [f"/cases/{HUGE}", f"/questions/{HUGE}", f"/cases/{HUGE}/edit"])
def test_ids_beyond_64_bits_are_not_found_in_pages(client, make_user, login, path):
    login(make_user("helpdesk"))
    response = client.get(path)
    assert response.status_code == 404
    assert "ページが見つかりません" in response.get_data(as_text=True)


@pytest.mark.parametrize("query", ["page=99999999999999999999", "page=²", "per_page=²", "page=0", "page=１", "per_page=101"])
@pytest.mark.parametrize("path", ["/api/v1/questions", "/api/v1/cases"])
def test_paging_out_of_range_is_a_json_400(client, make_user, token_for, path, query):
    response = client.get(f"{path}?{query}", headers=token_for(make_user("municipal")))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_parameter"
    assert "整数で指定してください" in error["message"]


@pytest.mark.parametrize("path", ["/questions?page=99999999999999999999", "/cases?page=²", "/helpdesk/queue?page=²",
                                  "/helpdesk/queue?municipality=99999999999999999999999", "/admin/audit?page=²"])
def test_paging_out_of_range_is_a_japanese_400_page(client, make_user, login, path):
    login(make_user("admin") if path.startswith("/admin") else make_user("helpdesk"))
    response = client.get(path)
    assert response.status_code == 400
    assert "整数で指定してください" in response.get_data(as_text=True)


@pytest.mark.parametrize("path,message", [
    ("/helpdesk/queue?days=99999999", "経過日数"), ("/helpdesk/queue?days=2147483647", "経過日数"),
    ("/helpdesk/queue?days=²", "経過日数"),
])
def test_a_huge_age_in_the_queue_is_a_japanese_400(client, make_user, login, path, message):
    login(make_user("helpdesk"))
    response = client.get(path)
    assert response.status_code == 400 and message in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/reports", "/reports/questions.csv", "/reports/cases.csv"])
@pytest.mark.parametrize("period", ["from=9999-12-30&to=9999-12-31", "from=0001-01-01&to=0001-12-31"])
def test_a_report_period_at_the_calendars_ends_is_refused_in_japanese(client, make_user, login, path, period):
    login(make_user("municipal", "呉市"))
    response = client.get(f"{path}?{period}")
    text = response.get_data(as_text=True)
    if path == "/reports":   # the page says why and shows the default period
        assert response.status_code == 200 and "期間は1900年から2999年の間で指定してください" in text
    else:
        assert response.status_code == 400 and "期間は1900年から2999年の間で指定してください" in text


def test_digits_that_are_not_ascii_in_form_numbers_change_nothing(client, make_user, make_question, login):
    """「²」 passes ``str.isdigit`` and fails ``int``: a hidden number or a canned reply's id."""
    from app.models import CannedReply

    desk = make_user("helpdesk", username="desk")
    question = make_question(make_user("municipal", "呉市"))
    db.session.add(CannedReply(title="定型", body="定型文です", updated_by_id=desk.id))
    db.session.commit()
    login(desk)
    assigned = client.post(f"/questions/{question.id}/assign", data={"assign-owner": str(desk.id), "assign-expected": "²"})
    assert assigned.status_code == 302
    assert db.session.get(Question, question.id).owner_id == desk.id   # "²" is no expected owner: as if left out
    inserted = client.post(f"/questions/{question.id}/reply", data={"reply-body": "本文", "reply-canned": "²",
                                                                     "reply-insert": "1"})
    assert inserted.status_code == 200 and "定型文です" not in inserted.get_data(as_text=True)


def test_the_search_page_reports_a_bad_page_and_still_searches(client, make_user, login):
    login(make_user("municipal"))
    response = client.get("/search?q=VPN&page=²")
    assert response.status_code == 200
    assert "ページは1〜10,000の整数で指定してください" in response.get_data(as_text=True)


def test_json_with_a_lone_surrogate_is_refused_and_stores_nothing(client, make_user, token_for):
    response = client.post("/api/v1/questions", headers=token_for(make_user("municipal")),
                           data='{"title": "a\\ud800b", "body": "本文", "category": "network"}',
                           content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_encoding"
    assert db.session.query(Question).count() == 0


def test_nul_characters_never_reach_the_database(client, make_user, token_for, login):
    asker = make_user("municipal")
    response = client.post("/api/v1/questions", headers=token_for(asker),
                           json={"title": "VPN\x00障害", "body": "ログ\x00です", "category": "network", "tags": ["a\x00b"]})
    assert response.status_code == 201
    question = db.session.get(Question, response.get_json()["id"])
    assert (question.title, question.body, [t.name for t in question.tags]) == ("VPN障害", "ログです", ["ab"])
    login(asker)
    response = client.post("/questions/new", data={"title": "画面\x00から", "body": "本\x00文", "category": "network"})
    assert response.status_code == 302
    assert db.session.query(Question).filter(Question.title == "画面から", Question.body == "本文").count() == 1

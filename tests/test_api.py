"""API v1: the whole flow as each role, and every kind of refusal and bad input."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Case, Question


def post(client, url, headers, payload):
    return client.post(url, headers=headers, json=payload)


@pytest.fixture
def world(make_user, token_for):
    kure = make_user("municipal", "呉市", username="kure")
    fukuyama = make_user("municipal", "福山市", username="fukuyama")
    helpdesk = make_user("helpdesk", username="desk")
    viewer = make_user("viewer", "呉市", username="kure-viewer")
    return {
        "kure": token_for(kure),
        "fukuyama": token_for(fukuyama),
        "helpdesk": token_for(helpdesk),
        "viewer": token_for(viewer),
    }


def ask(client, headers, **fields):
    payload = {"title": "VPN がつながらない", "body": "**至急** 接続できません", "category": "network",
               "tags": ["VPN", "テレワーク"], "sharing_consent": "neighbours"}
    payload.update(fields)
    return post(client, "/api/v1/questions", headers, payload)


def test_full_flow_ask_answer_comment_resolve_edit_publish(client, world):
    created = ask(client, world["kure"])
    assert created.status_code == 201
    question = created.get_json()
    assert question["status"] == "new" and question["whose_move"] == "helpdesk"
    assert question["sharing_consent"] == "neighbours"
    assert question["tags"] == ["VPN", "テレワーク"]
    assert "<strong>至急</strong>" in question["body_html"]
    qid = question["id"]

    answer = post(client, f"/api/v1/questions/{qid}/answers", world["helpdesk"], {"body": "証明書を更新してください。"})
    assert answer.status_code == 201
    answer_id = answer.get_json()["id"]
    answered = client.get(f"/api/v1/questions/{qid}", headers=world["kure"]).get_json()
    assert answered["status"] == "in_progress" and answered["owner"]["role"] == "helpdesk"
    assert answered["first_response_seconds"] is not None

    comment = post(client, f"/api/v1/questions/{qid}/comments", world["kure"], {"body": "更新したら直りました。"})
    assert comment.status_code == 201
    desk_comment = post(client, f"/api/v1/questions/{qid}/comments", world["helpdesk"], {"body": "了解です。"})
    assert desk_comment.status_code == 201

    thread = client.get(f"/api/v1/questions/{qid}", headers=world["kure"]).get_json()
    assert [a["id"] for a in thread["answers"]] == [answer_id]
    assert thread["answers"][0]["body_html"] == "<p>証明書を更新してください。</p>"
    assert len(thread["comments"]) == 2

    resolved = post(client, f"/api/v1/questions/{qid}/resolve", world["kure"], {"answer_id": answer_id})
    assert resolved.status_code == 201
    case = resolved.get_json()
    assert case["state"] == "draft"
    assert case["title"] == "VPN がつながらない"
    assert case["issue"] == "**至急** 接続できません"
    assert "証明書を更新してください。" in case["resolution"]
    assert "更新したら直りました。" in case["resolution"]
    assert case["category"] == "network" and case["tags"] == ["VPN", "テレワーク"]
    assert case["published_at"] is None
    for field in ("issue", "environment", "cause", "resolution"):
        assert f"{field}_html" in case
    assert client.get(f"/api/v1/questions/{qid}", headers=world["kure"]).get_json()["status"] == "resolved"

    # the owning municipality reads its draft but cannot edit or publish it
    cid = case["id"]
    assert client.get(f"/api/v1/cases/{cid}", headers=world["kure"]).status_code == 200
    assert client.patch(f"/api/v1/cases/{cid}", headers=world["kure"], json={"cause": "x"}).status_code == 403
    assert post(client, f"/api/v1/cases/{cid}/publish", world["kure"], {}).status_code == 403

    patched = client.patch(f"/api/v1/cases/{cid}", headers=world["helpdesk"], json={
        "environment": "Windows 11、VPN 装置 A社製", "cause": "サーバ証明書の期限切れ", "tags": "VPN、証明書",
    })
    assert patched.status_code == 200
    body = patched.get_json()
    assert body["cause"] == "サーバ証明書の期限切れ"
    assert body["tags"] == ["VPN", "証明書"]
    assert body["title"] == "VPN がつながらない"  # untouched fields stay

    published = post(client, f"/api/v1/cases/{cid}/publish", world["helpdesk"], {})
    assert published.status_code == 200
    assert published.get_json()["state"] == "published"
    assert published.get_json()["published_at"]
    again = post(client, f"/api/v1/cases/{cid}/publish", world["helpdesk"], {})
    assert again.status_code == 409


def test_category_may_be_given_by_japanese_name(client, world):
    response = ask(client, world["kure"], category="情報セキュリティ")
    assert response.status_code == 201
    assert response.get_json()["category"] == "security"


def test_sharing_consent_defaults_to_private(client, world):
    payload = {"title": "t", "body": "b", "category": "network"}
    response = post(client, "/api/v1/questions", world["kure"], payload)
    assert response.get_json()["sharing_consent"] == "private"


@pytest.mark.parametrize("who", ["fukuyama"])
def test_other_municipality_gets_404_for_thread_case_and_actions(client, world, who):
    qid = ask(client, world["kure"]).get_json()["id"]
    aid = post(client, f"/api/v1/questions/{qid}/answers", world["helpdesk"], {"body": "a"}).get_json()["id"]
    cid = post(client, f"/api/v1/questions/{qid}/resolve", world["helpdesk"], {"answer_id": aid}).get_json()["id"]
    headers = world[who]
    assert client.get(f"/api/v1/questions/{qid}", headers=headers).status_code == 404
    assert post(client, f"/api/v1/questions/{qid}/comments", headers, {"body": "x"}).status_code == 404
    assert client.get(f"/api/v1/cases/{cid}", headers=headers).status_code == 404
    assert client.patch(f"/api/v1/cases/{cid}", headers=headers, json={"cause": "x"}).status_code == 404
    listed = client.get("/api/v1/questions", headers=headers).get_json()
    assert listed == {"total": 0, "page": 1, "per_page": 20, "results": []}


def test_municipal_user_cannot_answer(client, world):
    qid = ask(client, world["kure"]).get_json()["id"]
    response = post(client, f"/api/v1/questions/{qid}/answers", world["kure"], {"body": "自分で回答"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert db.session.get(Question, qid).answers == []


def test_viewer_cannot_ask_or_comment_but_reads_own_municipality(client, world):
    assert ask(client, world["viewer"]).status_code == 403
    qid = ask(client, world["kure"]).get_json()["id"]
    assert client.get(f"/api/v1/questions/{qid}", headers=world["viewer"]).status_code == 200
    assert post(client, f"/api/v1/questions/{qid}/comments", world["viewer"], {"body": "x"}).status_code == 403


def test_resolve_needs_an_answer_of_that_question(client, world):
    first = ask(client, world["kure"]).get_json()["id"]
    second = ask(client, world["kure"], title="別件").get_json()["id"]
    other_answer = post(client, f"/api/v1/questions/{second}/answers", world["helpdesk"], {"body": "a"}).get_json()["id"]
    response = post(client, f"/api/v1/questions/{first}/resolve", world["kure"], {"answer_id": other_answer})
    assert response.status_code == 422
    assert "answer_id" in response.get_json()["error"]["fields"]
    assert db.session.get(Question, first).status == "new"
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0


def test_resolving_twice_is_a_conflict(client, world):
    qid = ask(client, world["kure"]).get_json()["id"]
    aid = post(client, f"/api/v1/questions/{qid}/answers", world["helpdesk"], {"body": "a"}).get_json()["id"]
    assert post(client, f"/api/v1/questions/{qid}/resolve", world["kure"], {"answer_id": aid}).status_code == 201
    assert post(client, f"/api/v1/questions/{qid}/resolve", world["kure"], {"answer_id": aid}).status_code == 409
    assert db.session.scalar(select(func.count()).select_from(Case)) == 1


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
])
def test_missing_or_bad_token_is_401_json(client, headers):
    response = client.get("/api/v1/questions", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("payload,field", [
    ({"title": "", "body": "b", "category": "network"}, "title"),
    ({"title": "   ", "body": "b", "category": "network"}, "title"),
    ({"title": "t", "body": "", "category": "network"}, "body"),
    ({"title": "t", "body": "x" * 100_001, "category": "network"}, "body"),
    ({"title": "t" * 201, "body": "b", "category": "network"}, "title"),
    ({"title": "t", "body": "b", "category": "printers"}, "category"),
    ({"title": "t", "body": "b"}, "category"),
    ({"title": "t", "body": "b", "category": "network", "tags": [1, 2]}, "tags"),
    ({"title": "t", "body": "b", "category": "network", "sharing_consent": "everyone"}, "sharing_consent"),
    ({"title": 5, "body": "b", "category": "network"}, "title"),
])
def test_invalid_question_is_422_with_field_and_changes_nothing(client, world, payload, field):
    response = post(client, "/api/v1/questions", world["kure"], payload)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed"
    assert field in error["fields"]
    assert db.session.scalar(select(func.count()).select_from(Question)) == 0


def test_malformed_json_is_400(client, world):
    response = client.post("/api/v1/questions", headers={**world["kure"], "Content-Type": "application/json"},
                           data="{not json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"


def test_json_that_is_not_an_object_is_400(client, world):
    response = client.post("/api/v1/questions", headers=world["kure"], json=["a"])
    assert response.status_code == 400


def test_invalid_utf8_is_400(client, world):
    response = client.post("/api/v1/questions", headers={**world["kure"], "Content-Type": "application/json"},
                           data=b'{"title": "\xff\xfe"}')
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_encoding"


def test_wrong_content_type_is_415(client, world):
    response = client.post("/api/v1/questions", headers=world["kure"],
                           data="title=a&body=b", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    assert db.session.scalar(select(func.count()).select_from(Question)) == 0


def test_request_over_the_limit_is_413_json(app, client, world):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    payload = json.dumps({"title": "t", "body": "x" * 2000, "category": "network"})
    response = client.post("/api/v1/questions", headers={**world["kure"], "Content-Type": "application/json"},
                           data=payload)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_unknown_api_path_is_json_404(client, world):
    response = client.get("/api/v1/nothing", headers=world["kure"])
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_patch_rejects_unknown_fields_and_bad_values(client, world):
    qid = ask(client, world["kure"]).get_json()["id"]
    aid = post(client, f"/api/v1/questions/{qid}/answers", world["helpdesk"], {"body": "a"}).get_json()["id"]
    cid = post(client, f"/api/v1/questions/{qid}/resolve", world["helpdesk"], {"answer_id": aid}).get_json()["id"]
    unknown = client.patch(f"/api/v1/cases/{cid}", headers=world["helpdesk"], json={"state": "published"})
    assert unknown.status_code == 422
    empty = client.patch(f"/api/v1/cases/{cid}", headers=world["helpdesk"], json={"resolution": "", "cause": "c"})
    assert empty.status_code == 422
    assert db.session.get(Case, cid).cause == ""  # nothing half-written
    assert db.session.get(Case, cid).state == "draft"


def test_list_questions_paginates_and_filters_by_status(client, world):
    ids = [ask(client, world["kure"], title=f"質問{i}").get_json()["id"] for i in range(5)]
    post(client, f"/api/v1/questions/{ids[0]}/answers", world["helpdesk"], {"body": "a"})
    page = client.get("/api/v1/questions?per_page=2&page=2", headers=world["kure"]).get_json()
    assert page["total"] == 5 and page["page"] == 2 and len(page["results"]) == 2
    answered = client.get("/api/v1/questions?status=in_progress", headers=world["kure"]).get_json()
    assert [q["id"] for q in answered["results"]] == [ids[0]]
    assert client.get("/api/v1/questions?status=bogus", headers=world["kure"]).status_code == 400
    assert client.get("/api/v1/questions?per_page=0", headers=world["kure"]).status_code == 400
    assert client.get("/api/v1/questions?page=x", headers=world["kure"]).status_code == 400
    all_for_desk = client.get("/api/v1/questions", headers=world["helpdesk"]).get_json()
    assert all_for_desk["total"] == 5


def test_api_sets_no_cookie(client, world):
    response = client.get("/api/v1/questions", headers=world["kure"])
    assert "Set-Cookie" not in response.headers

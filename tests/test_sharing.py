"""Sharing cases between municipalities: consent, visibility, the sensitive-data check,
anonymity, archiving and 参考になった, through the API and the pages."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Case
from tests.conftest import municipality

LEAKY = "庁内のファイルサーバ fs01.city.local（192.168.10.5）に接続できない"


@pytest.fixture
def world(client, make_user, make_question, token_for):
    kure = make_user("municipal", "呉市", username="kure")
    desk = make_user("helpdesk", username="desk")
    other = make_user("municipal", "庄原市", username="shobara")
    neighbour = make_user("municipal", "東広島市", username="higashi")
    from app.services import municipalities

    municipalities.link(municipality("呉市"), municipality("東広島市"))
    db.session.commit()
    question = make_question(kure, title="ファイルサーバに接続できない", body=LEAKY, sharing_consent="neighbours")
    headers = {name: token_for(user) for name, user in
               (("kure", kure), ("desk", desk), ("other", other), ("neighbour", neighbour))}
    answer = client.post(f"/api/v1/questions/{question.id}/answers", headers=headers["desk"],
                         json={"body": "DNS の A レコードを確認してください。"}).get_json()
    case = client.post(f"/api/v1/questions/{question.id}/resolve", headers=headers["desk"],
                       json={"answer_id": answer["id"]}).get_json()
    return {"headers": headers, "case_id": case["id"]}


def publish(client, world, **payload):
    return client.post(f"/api/v1/cases/{world['case_id']}/publish", headers=world["headers"]["desk"], json=payload)


def test_the_draft_carries_the_consent_given_when_asking(client, world):
    case = client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["kure"]).get_json()
    assert case["sharing_consent"] == "neighbours" and case["visibility"] == "private"


def test_publishing_wider_than_the_consent_is_refused(client, world):
    response = publish(client, world, visibility="all")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "consent_required"
    assert db.session.get(Case, world["case_id"]).state == "draft"


def test_sensitive_details_block_sharing_until_masked_or_kept(client, world):
    response = publish(client, world, visibility="neighbours")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "sensitive_data"
    found = {(f["field"], f["kind"], f["text"]) for f in error["findings"]}
    assert ("issue", "hostname", "fs01.city.local") in found and ("issue", "ipv4", "192.168.10.5") in found
    assert db.session.get(Case, world["case_id"]).state == "draft"

    # mask the host name by PATCH, keep the address with a reason
    masked = LEAKY.replace("fs01.city.local", "[ホスト名]")
    client.patch(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"], json={"issue": masked})
    no_reason = publish(client, world, visibility="neighbours", keep=[{"text": "192.168.10.5", "reason": ""}])
    assert no_reason.status_code == 422
    done = publish(client, world, visibility="neighbours", keep=[{"text": "192.168.10.5", "reason": "例示用のアドレス"}])
    assert done.status_code == 200 and done.get_json()["visibility"] == "neighbours"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.publish"))
    assert "例示用のアドレス" in event.summary


def test_private_publishing_needs_no_check(client, world):
    assert publish(client, world).status_code == 200


def published_to_neighbours(client, world, anonymous=False):
    client.patch(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"],
                 json={"issue": "ファイルサーバに接続できない"})
    response = publish(client, world, visibility="neighbours", anonymous=anonymous)
    assert response.status_code == 200, response.get_json()


def test_neighbours_read_a_neighbours_case_others_do_not(client, world):
    published_to_neighbours(client, world)
    assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["neighbour"]).status_code == 200
    assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["other"]).status_code == 404
    found = client.get("/api/v1/cases?q=ファイルサーバ", headers=world["headers"]["neighbour"]).get_json()
    assert found["total"] == 1
    assert client.get("/api/v1/cases?q=ファイルサーバ", headers=world["headers"]["other"]).get_json()["total"] == 0


def test_narrowing_the_consent_narrows_the_published_case_at_once(client, world):
    published_to_neighbours(client, world)
    assert client.post(f"/api/v1/cases/{world['case_id']}/consent", headers=world["headers"]["neighbour"],
                       json={"visibility": "private"}).status_code == 403
    response = client.post(f"/api/v1/cases/{world['case_id']}/consent", headers=world["headers"]["kure"],
                           json={"visibility": "private"})
    assert response.status_code == 200 and response.get_json()["visibility"] == "private"
    assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["neighbour"]).status_code == 404
    assert client.get("/api/v1/cases?q=ファイルサーバ", headers=world["headers"]["neighbour"]).get_json()["total"] == 0
    case = db.session.get(Case, world["case_id"])
    assert case.consent_changed_by.username == "kure"
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.consent")) is not None


def test_anonymous_hides_the_owner_outside_it_and_the_help_desk(client, world):
    published_to_neighbours(client, world, anonymous=True)
    seen_by_neighbour = client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["neighbour"]).get_json()
    assert seen_by_neighbour["municipality"] is None and seen_by_neighbour["anonymous"] is True
    assert seen_by_neighbour["question_id"] is None
    assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["kure"]).get_json()["municipality"]["name"] == "呉市"
    assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"]).get_json()["municipality"]["name"] == "呉市"
    search = client.get("/api/v1/cases?q=ファイルサーバ", headers=world["headers"]["neighbour"]).get_json()
    assert search["results"][0]["municipality"] is None
    assert [f["label"] for f in search["facets"]["municipality"]] == ["市町名非公開"]
    by_name = client.get("/api/v1/cases?q=ファイルサーバ&municipality=呉市", headers=world["headers"]["neighbour"]).get_json()
    assert by_name["total"] == 0  # filtering by the owner's name does not reveal it


def test_anonymous_owner_is_hidden_on_pages_too(client, world, login):
    published_to_neighbours(client, world, anonymous=True)
    from app.models import User

    login(db.session.scalar(select(User).where(User.username == "higashi")))
    page = client.get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert "市町名非公開" in page and "呉市" not in page.split("<main")[1]
    results = client.get("/search?q=ファイルサーバ").get_data(as_text=True)
    assert "市町名非公開" in results and "呉市" not in results.split("<main")[1]


def test_archiving_removes_the_case_from_readers_and_search(client, world):
    published_to_neighbours(client, world)
    assert client.post(f"/api/v1/cases/{world['case_id']}/archive", headers=world["headers"]["kure"]).status_code == 403
    response = client.post(f"/api/v1/cases/{world['case_id']}/archive", headers=world["headers"]["desk"])
    assert response.status_code == 200 and response.get_json()["state"] == "archived"
    for reader in ("neighbour", "kure"):
        assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"][reader]).status_code == 404
    assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"]).status_code == 200
    assert client.get("/api/v1/cases?q=ファイルサーバ", headers=world["headers"]["desk"]).get_json()["total"] == 0


def test_readers_mark_a_case_helpful_once(client, world):
    published_to_neighbours(client, world)
    url = f"/api/v1/cases/{world['case_id']}/helpful"
    assert client.post(url, headers=world["headers"]["neighbour"]).get_json()["helpful_count"] == 1
    assert client.post(url, headers=world["headers"]["neighbour"]).get_json()["helpful_count"] == 1
    assert client.post(url, headers=world["headers"]["kure"]).status_code == 403  # the owner's own
    assert client.post(url, headers=world["headers"]["other"]).status_code == 404


def test_readers_of_other_municipalities_cannot_comment_or_see_the_thread(client, world):
    published_to_neighbours(client, world)
    question_id = db.session.get(Case, world["case_id"]).question_id
    assert client.get(f"/api/v1/questions/{question_id}", headers=world["headers"]["neighbour"]).status_code == 404
    assert client.post(f"/api/v1/questions/{question_id}/comments", headers=world["headers"]["neighbour"],
                       json={"body": "x"}).status_code == 404


def test_publish_page_shows_findings_masks_with_one_click_and_publishes(client, world, login):
    from app.models import User

    login(db.session.scalar(select(User).where(User.username == "desk")))
    page = client.get(f"/cases/{world['case_id']}/publish").get_data(as_text=True)
    assert "fs01.city.local" in page and "192.168.10.5" in page and "伏せる" in page
    refused = client.post(f"/cases/{world['case_id']}/publish", data={"visibility": "neighbours"})
    assert refused.status_code == 409 and "個別の情報が 2 件" in refused.get_data(as_text=True)
    client.post(f"/cases/{world['case_id']}/mask", data={
        "field": "issue", "position": LEAKY.index("fs01"), "text": "fs01.city.local", "mode": "publish"})
    assert "[ホスト名]" in db.session.get(Case, world["case_id"]).issue
    response = client.post(f"/cases/{world['case_id']}/publish", data={
        "visibility": "neighbours", "keep_0": "1", "keep_text_0": "192.168.10.5", "keep_reason_0": "例示"})
    assert response.status_code == 302
    case = db.session.get(Case, world["case_id"])
    assert case.state == "published" and case.visibility == "neighbours"


def test_owner_staff_change_consent_on_the_case_page(client, world, login):
    from app.models import User

    login(db.session.scalar(select(User).where(User.username == "kure")))
    assert "共有への同意" in client.get(f"/cases/{world['case_id']}").get_data(as_text=True)
    client.post(f"/cases/{world['case_id']}/consent", data={"consent": "all"})
    assert db.session.get(Case, world["case_id"]).sharing_consent == "all"


def test_the_help_desk_lists_names_to_check(client, world, login):
    from app.models import User

    login(db.session.scalar(select(User).where(User.username == "desk")))
    client.post("/cases/sensitive-names", data={"name": "山田太郎"})
    client.patch(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"],
                 json={"issue": "担当の山田太郎さんから連絡"})
    response = publish(client, world, visibility="neighbours")
    assert [f["kind"] for f in response.get_json()["error"]["findings"]] == ["person"]


def test_an_anonymous_case_is_exported_without_its_owner(client, world, runner, tmp_path):
    published_to_neighbours(client, world, anonymous=True)
    out = tmp_path / "cases.csv"
    assert runner.invoke(args=["cases", "export", str(out)]).exit_code == 0
    text = out.read_text(encoding="utf-8-sig")
    assert "ファイルサーバに接続できない" in text and "呉市" not in text
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.export")) is not None


def test_an_edit_may_not_add_details_to_a_case_shared_beyond_its_owner(client, world):
    published_to_neighbours(client, world)
    leak = client.patch(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"],
                        json={"environment": "UTM 203.0.113.77、password: Abc99999"})
    assert leak.status_code == 409 and leak.get_json()["error"]["code"] == "sensitive_data"
    assert db.session.get(Case, world["case_id"]).environment == ""
    tags = client.patch(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"],
                        json={"tags": ["srv01.kure.local"]})
    assert tags.status_code == 409
    fine = client.patch(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"],
                        json={"environment": "UTM [IPアドレス]"})
    assert fine.status_code == 200
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.edit")) is not None


def test_publishing_anonymously_flags_the_owner_name_in_the_text(client, world):
    client.patch(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"],
                 json={"issue": "呉市役所本庁舎のファイルサーバ"})
    response = publish(client, world, visibility="neighbours", anonymous=True)
    assert response.status_code == 409
    assert [f["kind"] for f in response.get_json()["error"]["findings"]] == ["owner"]
    assert publish(client, world, visibility="neighbours").status_code == 200  # not anonymous: fine


@pytest.mark.parametrize("payload", [{}, {"visibility": None}, {"visibility": []}, {"visibility": 5}])
def test_consent_needs_a_visibility_string(client, world, payload):
    response = client.post(f"/api/v1/cases/{world['case_id']}/consent", headers=world["headers"]["kure"], json=payload)
    assert response.status_code == 422
    assert db.session.get(Case, world["case_id"]).sharing_consent == "neighbours"


def test_signed_in_pages_and_the_api_are_not_cached(client, world, login):
    from app.models import User

    assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["kure"]).headers["Cache-Control"] == "no-store"
    login(db.session.scalar(select(User).where(User.username == "kure")))
    assert client.get(f"/cases/{world['case_id']}").headers["Cache-Control"] == "no-store"


def test_archiving_records_a_reason_and_a_case_can_be_brought_back(client, world, login):
    from app.models import User

    published_to_neighbours(client, world)
    login(db.session.scalar(select(User).where(User.username == "desk")))
    client.post(f"/cases/{world['case_id']}/archive", data={"reason": "IPアドレスを含んだまま共有"})
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.archive"))
    assert "IPアドレスを含んだまま共有" in event.summary
    client.post(f"/cases/{world['case_id']}/restore")
    assert db.session.get(Case, world["case_id"]).state == "draft"
    assert client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["neighbour"]).status_code == 404

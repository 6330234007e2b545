"""Smaller leaks and integrity faults: what a thread says about its case, what an anonymous case
says about its route, romanised owner names, formulas in CSV, drafts in URLs, one-click masking in
the audit log, and admin forms that act on the object they show."""
from __future__ import annotations

import csv
import io

import html5lib
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Case, MunicipalityGroup, User
from app.services.spreadsheet import excel_cell, original_text
from tests.conftest import municipality
from tests.test_sharing import published_to_neighbours, publish, world  # noqa: F401  (fixture)


def _user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


def test_a_thread_does_not_name_a_case_its_reader_may_not_open(client, world):  # noqa: F811
    case = db.session.get(Case, world["case_id"])
    question_id = case.question_id
    thread = client.get(f"/api/v1/questions/{question_id}", headers=world["headers"]["kure"]).get_json()
    assert thread["case_id"] == world["case_id"]  # the draft is the municipality's own
    client.post(f"/api/v1/cases/{world['case_id']}/archive", headers=world["headers"]["desk"])
    thread = client.get(f"/api/v1/questions/{question_id}", headers=world["headers"]["kure"]).get_json()
    assert thread["case_id"] is None
    assert client.get(f"/api/v1/questions/{question_id}", headers=world["headers"]["desk"]).get_json()["case_id"] == world["case_id"]


def test_an_anonymous_case_does_not_say_by_which_route_it_was_shared(client, world, login):  # noqa: F811
    published_to_neighbours(client, world, anonymous=True)
    seen = client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["neighbour"]).get_json()
    assert seen["visibility"] is None and seen["sharing_consent"] is None and seen["municipality"] is None
    hit = client.get("/api/v1/cases?q=ファイルサーバ", headers=world["headers"]["neighbour"]).get_json()["results"][0]
    assert hit["visibility"] is None
    own = client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["kure"]).get_json()
    assert own["visibility"] == "neighbours" and own["sharing_consent"] == "neighbours"
    login(_user("higashi"))
    page = client.get(f"/cases/{world['case_id']}").get_data(as_text=True)
    assert "公開範囲" not in page and "近隣・グループ" not in page
    login(_user("kure"))
    assert "公開範囲: 近隣・グループの市町" in client.get(f"/cases/{world['case_id']}").get_data(as_text=True)


def test_a_named_case_still_says_how_far_it_is_shared(client, world):  # noqa: F811
    published_to_neighbours(client, world)
    seen = client.get(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["neighbour"]).get_json()
    assert seen["visibility"] == "neighbours" and seen["municipality"]["name"] == "呉市"


@pytest.mark.parametrize("text,found", [
    ("VPN 装置 vpn.city.kure.lg.jp の証明書が切れた", "kure"),
    ("サーバ KURE-FS01 の容量が不足", "KURE"),
    ("メールは taro@city.kure.lg.jp から送った", None),  # the whole address is masked as an e-mail
])
def test_publishing_anonymously_flags_the_romanised_owner_name(client, world, text, found):  # noqa: F811
    client.patch(f"/api/v1/cases/{world['case_id']}", headers=world["headers"]["desk"], json={"issue": text})
    response = publish(client, world, visibility="neighbours", anonymous=True)
    assert response.status_code == 409
    findings = {(f["kind"], f["text"]) for f in response.get_json()["error"]["findings"]}
    if found:
        assert ("owner", found) in findings
    else:
        assert findings and all(kind != "owner" for kind, _ in findings)


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+81 82 000", "-2+3", "@SUM(A1)", "\tタブ", "\r改行",
                                  "'=already quoted", "''=two", "普通の文章", "'先頭の引用符", ""])
def test_csv_cells_are_neutralised_and_read_back_as_typed(text):
    cell = excel_cell(text)
    assert not cell.lstrip("'").startswith(("=", "+", "-", "@", "\t", "\r")) or cell.startswith("'")
    assert original_text(cell) == text


def test_cases_export_neutralises_formulas_and_import_gives_the_text_back(app, runner, make_user, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"title": "=cmd|\' /C calc\'!A0", "issue": "@SUM(1+1)", "resolution": "-1 を入力",'
                      ' "category": "network", "tags": ["+タグ"], "visibility": "all"}\n', encoding="utf-8")
    assert runner.invoke(args=["cases", "import", str(source)]).exit_code == 0
    out = tmp_path / "out.csv"
    assert runner.invoke(args=["cases", "export", str(out)]).exit_code == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    row = next(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert row["title"] == "'=cmd|' /C calc'!A0" and row["issue"] == "'@SUM(1+1)" and row["resolution"] == "'-1 を入力"
    assert row["tags"] == "'+タグ"
    from app.models import case_tags

    db.session.execute(case_tags.delete())
    db.session.execute(Case.__table__.delete())
    db.session.commit()
    assert runner.invoke(args=["cases", "import", str(out)]).exit_code == 0
    case = db.session.scalar(select(Case))
    assert (case.title, case.issue, case.resolution, [t.name for t in case.tags]) == (
        "=cmd|' /C calc'!A0", "@SUM(1+1)", "-1 を入力", ["+タグ"])


def test_one_click_masking_is_audited_without_the_masked_text(client, world, login):  # noqa: F811
    login(_user("desk"))
    case = db.session.get(Case, world["case_id"])
    position = case.issue.index("192.168.10.5")
    response = client.post(f"/cases/{world['case_id']}/mask", data={
        "field": "issue", "position": str(position), "text": "192.168.10.5", "mode": "publish"})
    assert response.status_code == 200 and "[IPアドレス] に置き換えました" in response.get_data(as_text=True)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.mask"))
    assert event is not None and "症状・質問" in event.summary and "IPv4アドレス" in event.summary
    assert "192.168.10.5" not in event.summary


def _forms(html: str):
    """Each form of the page as the browser builds it: (action, button texts, text around it)."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    forms = []
    for form in document.iter("form"):
        buttons = ["".join(b.itertext()).strip() for b in form.iter("button")]
        forms.append((form.get("action"), buttons))
    return document, forms


def test_each_group_members_button_removes_the_member_it_names(client, make_user, login):
    login(make_user("admin"))
    group = db.session.scalar(select(MunicipalityGroup).where(MunicipalityGroup.name == "備後圏域"))
    members = [m.name for m in group.members]
    assert {"笠岡市", "井原市"} <= set(members)
    document, forms = _forms(client.get("/admin/groups").get_data(as_text=True))
    # The browser's tree: no member's form is torn out of its list item.
    for item in document.iter("li"):
        text = "".join(item.itertext())
        if "を外す" in text:
            (form,) = list(item.iter("form"))
            name = "".join(item.find(".//span").itertext()).strip()
            assert "".join(form.find(".//button").itertext()).strip() == f"{name}を外す"
    target = next(action for action, buttons in forms if buttons == ["井原市を外す"])
    client.post(target)
    db.session.expire_all()
    remaining = [m.name for m in db.session.get(MunicipalityGroup, group.id).members]
    assert "井原市" not in remaining and "笠岡市" in remaining
    assert len(remaining) == len(members) - 1


def test_each_neighbour_button_unlinks_the_pair_it_names(client, make_user, login):
    from app.services import municipalities

    municipalities.link(municipality("呉市"), municipality("東広島市"))
    municipalities.link(municipality("呉市"), municipality("江田島市"))
    db.session.commit()
    login(make_user("admin"))
    _document, forms = _forms(client.get("/admin/municipalities").get_data(as_text=True))
    target = next(action for action, buttons in forms if buttons == ["江田島市との近隣を解除"])
    client.post(target)
    from app.models.municipality import neighbour_ids

    partners = neighbour_ids(municipality("呉市").id)
    assert partners == {municipality("東広島市").id}

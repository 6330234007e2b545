"""The review before sharing (公開 / 公開範囲の変更): who would read each choice, choices the consent
does not allow, and masking that keeps what was typed — one finding, all at once, and undo."""
from __future__ import annotations

import re

import html5lib
import pytest
from sqlalchemy import select

from app import policy
from app.extensions import db
from app.models import AuditEvent, Case, Municipality, User
from app.services import municipalities as municipality_service
from tests.conftest import municipality
from tests.test_sharing import LEAKY, published_to_neighbours, world  # noqa: F401  (fixture)

HOST, ADDRESS = "fs01.city.local", "192.168.10.5"


def _user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


def _doc(response):
    return html5lib.parse(response.get_data(as_text=True), namespaceHTMLElements=False)


def _text(element) -> str:
    return re.sub(r"\s+", " ", "".join(element.itertext())).strip()


def _choice(document, value: str):
    radio = document.find(f".//input[@name='visibility'][@value='{value}']")
    assert radio is not None, value
    box = next(div for div in document.iter("div") if "share-choice" in (div.get("class") or "")
               and div.find(f".//input[@value='{value}']") is not None)
    return radio, _text(box)


@pytest.fixture
def desk(client, world, login):  # noqa: F811
    login(_user("desk"))
    return world


def test_each_choice_names_who_would_read_it_from_the_same_rule_as_the_pages(client, desk):
    document = _doc(client.get(f"/cases/{desk['case_id']}/publish"))
    _, private = _choice(document, "private")
    assert "呉市と県ヘルプデスクだけ" in private
    radio, neighbours = _choice(document, "neighbours")
    assert radio.get("disabled") is None
    assert "東広島市" in neighbours and "ほかに1団体" in neighbours and "共有されません" not in neighbours
    # The list is the policy's: the municipalities whose members may read the case once published there.
    case = db.session.get(Case, desk["case_id"])
    readers = {m.name for m in policy.readers_if_published(case, "neighbours")}
    assert readers == {"呉市", "東広島市"}
    everyone = {m.name for m in policy.readers_if_published(case, "all")}
    all_municipalities = {m.name for m in db.session.scalars(select(Municipality))}
    assert everyone == all_municipalities  # members and observers
    assert any(m.is_observer for m in db.session.scalars(select(Municipality).where(Municipality.name.in_(everyone))))


def test_readers_agree_with_what_each_municipality_may_then_open(client, desk, make_user):
    """Publish for real, then ask the policy for a user of every municipality: the same set."""
    case = db.session.get(Case, desk["case_id"])
    promised = {m.id for m in policy.readers_if_published(case, "neighbours")}
    published_to_neighbours(client, desk)
    case = db.session.get(Case, desk["case_id"])
    for m in db.session.scalars(select(Municipality)):
        reader = make_user("viewer", m, username=f"reader-{m.code}")
        assert policy.can_view_case(reader, case) == (m.id in promised), m.name


def test_a_choice_wider_than_the_consent_is_disabled_with_the_reason(client, desk):
    document = _doc(client.get(f"/cases/{desk['case_id']}/publish?visibility=all"))
    radio, text = _choice(document, "all")
    assert radio.get("disabled") is not None and radio.get("checked") is None
    assert "選べません" in text and "呉市の同意が「近隣・グループの市町まで」" in text
    why = document.find(".//*[@id='visibility-all-why']")
    assert why is not None and "visibility-all-why" in radio.get("aria-describedby")
    # ?visibility=all beyond the consent starts at the widest allowed choice instead.
    assert document.find(".//input[@name='visibility'][@value='neighbours']").get("checked") is not None
    # And the server still refuses it, whatever is posted.
    refused = client.post(f"/cases/{desk['case_id']}/publish", data={"visibility": "all"})
    assert refused.status_code == 409 and "同意" in refused.get_data(as_text=True)


def test_a_choice_that_reaches_no_other_municipality_says_so(client, desk):
    municipality_service.unlink(municipality("呉市"), municipality("東広島市"))
    db.session.commit()
    _, neighbours = _choice(_doc(client.get(f"/cases/{desk['case_id']}/publish")), "neighbours")
    assert "この範囲でも、他の市町には共有されません" in neighbours
    assert "近隣の市町も同じグループの市町もありません" in neighbours


def test_group_mates_read_a_neighbours_case_and_are_listed(client, desk):
    from app.models import MunicipalityGroup

    group = db.session.scalar(select(MunicipalityGroup).order_by(MunicipalityGroup.id))
    municipality_service.add_to_group(group, municipality("呉市"))
    db.session.commit()
    _, neighbours = _choice(_doc(client.get(f"/cases/{desk['case_id']}/publish")), "neighbours")
    for mate in group.members:
        assert mate.name in neighbours


def test_the_page_says_no_code_names(client, desk):
    page = client.get(f"/cases/{desk['case_id']}/publish").get_data(as_text=True)
    document = html5lib.parse(page, namespaceHTMLElements=False)
    shown = _text(document.find(".//main"))
    for code in ("private", "neighbours", "（all）", "Markdown"):
        assert code not in shown, code


# --- masking keeps what was typed -------------------------------------------------------------------

def _review_form(**extra):
    """The review as a person leaves it: neighbours chosen, the address kept with a reason."""
    data = {"mode": "publish", "visibility": "neighbours", "anonymous": "y",
            "keep_text_0": HOST, "finding_0": f"issue:{LEAKY.index(HOST)}",
            "keep_text_1": ADDRESS, "finding_1": f"issue:{LEAKY.index(ADDRESS)}",
            "keep_1": "1", "keep_reason_1": "説明用の例示アドレス"}
    data.update(extra)
    return data


def test_masking_one_finding_keeps_the_choice_ticks_and_reasons(client, desk):
    response = client.post(f"/cases/{desk['case_id']}/mask", data=_review_form(mask="0"))
    assert response.status_code == 200
    case = db.session.get(Case, desk["case_id"])
    assert HOST not in case.issue and "[ホスト名]" in case.issue and ADDRESS in case.issue
    document = _doc(response)
    assert document.find(".//input[@name='visibility'][@value='neighbours']").get("checked") is not None
    assert document.find(".//input[@name='anonymous']").get("checked") is not None
    kept = [i for i in document.iter("input") if i.get("name", "").startswith("keep_text_") and i.get("value") == ADDRESS]
    index = kept[0].get("name")[10:]
    assert document.find(f".//input[@name='keep_{index}']").get("checked") is not None
    assert document.find(f".//input[@name='keep_reason_{index}']").get("value") == "説明用の例示アドレス"
    notice = next(d for d in document.iter("div") if "mask-notice" in (d.get("class") or ""))
    assert "[ホスト名] に置き換えました" in _text(notice)
    undo = notice.find(".//button[@name='undo']")
    assert undo is not None and undo.get("formaction").endswith("/unmask#findings")


def test_every_mask_button_lands_on_the_findings(client, desk):
    document = _doc(client.get(f"/cases/{desk['case_id']}/publish"))
    form = document.find(".//form[@id='share-form']")
    buttons = [b for b in form.iter("button") if b.get("name") in ("mask", "mask_all")]
    assert buttons and all(b.get("formaction").endswith("#findings") for b in buttons)
    assert document.find(".//*[@id='findings']").tag == "section"
    # Enter in a reason field submits nothing: the form's first submit button is disabled.
    first = next(b for b in form.iter("button") if b.get("type", "submit") == "submit")
    assert first.get("disabled") is not None


def test_mask_all_masks_every_open_finding_in_one_post_and_audits_each(client, desk):
    response = client.post(f"/cases/{desk['case_id']}/mask-all", data=_review_form(mask_all="1"))
    assert response.status_code == 200
    case = db.session.get(Case, desk["case_id"])
    assert HOST not in case.issue and ADDRESS in case.issue  # the kept one stays
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "case.mask")).all()
    assert len(events) == 1 and "ホスト名" in events[0].summary and "すべて伏せる" in events[0].summary
    assert all(HOST not in e.summary and ADDRESS not in e.summary for e in events)
    # Nothing kept: both go, each audited.
    client.post(f"/cases/{desk['case_id']}/unmask", data={
        **_review_form(), "undo": _undo_token(response)})
    client.post(f"/cases/{desk['case_id']}/mask-all", data={"mode": "publish", "visibility": "neighbours"})
    case = db.session.get(Case, desk["case_id"])
    assert HOST not in case.issue and ADDRESS not in case.issue
    assert db.session.query(AuditEvent).filter(AuditEvent.action == "case.mask").count() == 3


def _undo_token(response) -> str:
    button = _doc(response).find(".//button[@name='undo']")
    assert button is not None
    return button.get("value")


def test_undo_restores_the_last_mask_and_is_audited_without_the_text(client, desk):
    masked = client.post(f"/cases/{desk['case_id']}/mask", data=_review_form(mask="0"))
    token = _undo_token(masked)
    assert HOST not in token  # not readable in the page as is (signed, encoded)
    undone = client.post(f"/cases/{desk['case_id']}/unmask", data={**_review_form(), "undo": token})
    assert undone.status_code == 200 and "元に戻しました" in undone.get_data(as_text=True)
    assert db.session.get(Case, desk["case_id"]).issue == LEAKY
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.unmask"))
    assert event is not None and "ホスト名" in event.summary and HOST not in event.summary
    # What was typed survives the undo too.
    document = _doc(undone)
    assert document.find(".//input[@name='visibility'][@value='neighbours']").get("checked") is not None
    # The same undo twice: the field is no longer as the mask left it.
    again = client.post(f"/cases/{desk['case_id']}/unmask", data={**_review_form(), "undo": token})
    assert again.status_code == 409 and "変更されている" in again.get_data(as_text=True)


def test_undo_refuses_when_the_field_changed_since(client, desk):
    masked = client.post(f"/cases/{desk['case_id']}/mask", data=_review_form(mask="0"))
    case = db.session.get(Case, desk["case_id"])
    case.issue = case.issue + "（追記）"
    db.session.commit()
    response = client.post(f"/cases/{desk['case_id']}/unmask", data={**_review_form(), "undo": _undo_token(masked)})
    assert response.status_code == 409 and "変更されているため、元に戻せません" in response.get_data(as_text=True)
    assert HOST not in db.session.get(Case, desk["case_id"]).issue
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.unmask")) is None


def test_undo_refuses_a_forged_or_foreign_record(client, desk):
    masked = client.post(f"/cases/{desk['case_id']}/mask", data=_review_form(mask="0"))
    token = _undo_token(masked)
    forged = client.post(f"/cases/{desk['case_id']}/unmask", data={**_review_form(), "undo": token[:-3] + "abc"})
    assert forged.status_code == 422
    assert HOST not in db.session.get(Case, desk["case_id"]).issue


def test_no_undo_into_a_case_shared_beyond_its_owner(client, desk):
    masked = client.post(f"/cases/{desk['case_id']}/mask", data=_review_form(mask="0"))
    token = _undo_token(masked)
    case = db.session.get(Case, desk["case_id"])
    case.state, case.visibility = "published", "neighbours"  # shared meanwhile (by another desk member)
    db.session.commit()
    response = client.post(f"/cases/{desk['case_id']}/unmask", data={**_review_form(mode="visibility"), "undo": token})
    assert response.status_code == 409 and "共有中の事例には、伏せた情報を戻せません" in response.get_data(as_text=True)
    assert HOST not in db.session.get(Case, desk["case_id"]).issue
    # And a mask made on a shared case offers no undo at all.
    again = client.post(f"/cases/{desk['case_id']}/mask", data=_review_form(
        mode="visibility", mask="1", keep_1="", keep_reason_1="",
        finding_1=f"issue:{db.session.get(Case, desk['case_id']).issue.index(ADDRESS)}"))
    assert again.status_code == 200 and "[IPアドレス] に置き換えました" in again.get_data(as_text=True)
    assert _doc(again).find(".//button[@name='undo']") is None


def test_a_reason_typed_without_a_tick_comes_back_as_typed(client, desk):
    response = client.post(f"/cases/{desk['case_id']}/mask", data=_review_form(mask="0", keep_1=""))
    document = _doc(response)
    kept = [i for i in document.iter("input") if i.get("name", "").startswith("keep_text_") and i.get("value") == ADDRESS]
    index = kept[0].get("name")[10:]
    assert document.find(f".//input[@name='keep_{index}']").get("checked") is None
    assert document.find(f".//input[@name='keep_reason_{index}']").get("value") == "説明用の例示アドレス"


@pytest.mark.parametrize("path", ["mask", "mask-all", "unmask"])
def test_only_the_help_desk_masks_and_nobody_else_sees_the_review(client, world, login, path):  # noqa: F811
    login(_user("kure"))  # the owner's staff: may read the draft, not edit it
    response = client.post(f"/cases/{world['case_id']}/{path}", data={**_review_form(mask="0"), "undo": "forged"})
    assert response.status_code == 403
    assert HOST in db.session.get(Case, world["case_id"]).issue
    assert "個別の情報のチェック" not in response.get_data(as_text=True)

"""The review before sharing in a browser: who each choice reaches, choices the consent does not allow,
and 伏せる / すべて伏せる / 元に戻す keeping everything typed and landing on the findings."""
from __future__ import annotations

import re
import uuid

from tests.browser.helpers import Page, expect, login, shot

LEAKY = "庁内のファイルサーバ fs01.city.local（192.168.10.5）に接続できない。連絡先 taro@city.kure.lg.jp"
HOST, ADDRESS, MAIL = "fs01.city.local", "192.168.10.5", "taro@city.kure.lg.jp"


def _finding(page: Page, text: str):
    return page.locator("li.finding").filter(has=page.locator("code", has_text=re.compile(f"^{re.escape(text)}$")))


def _wait_until_scrolled(page: Page) -> None:
    # (page.wait_for_function would evaluate a string in the page, which its CSP forbids.)
    for _ in range(50):
        if page.evaluate("window.scrollY") > 0:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the page did not scroll to the findings")


def test_the_choices_say_who_reads_them_and_the_consent_disables_the_wider_one(page, live_server):
    # 呉市 consents to neighbours; in the demo it has no neighbour and no group.
    case_id = live_server.draft_case(f"公開範囲の確認（{uuid.uuid4().hex[:6]}）", LEAKY, consent="neighbours")
    login(page, "helpdesk1")
    page.goto(f"/cases/{case_id}/publish")
    choices = page.get_by_role("group", name="公開範囲（だれが読めるか）")
    private = choices.get_by_role("radio", name="自団体と県のみ")
    neighbours = choices.get_by_role("radio", name="近隣・グループの市町")
    everyone = choices.get_by_role("radio", name="全市町")
    expect(private).to_be_checked()
    expect(neighbours).to_be_enabled()
    expect(everyone).to_be_disabled()
    expect(page.locator("#visibility-all-why")).to_contain_text("呉市の同意が「近隣・グループの市町まで」のため")
    expect(page.locator("#visibility-neighbours-who")).to_contain_text("この範囲でも、他の市町には共有されません")
    expect(page.locator("#visibility-all-who")).to_contain_text("オブザーバー団体")
    # The reason is read out with the radio button.
    assert "visibility-all-why" in everyone.get_attribute("aria-describedby")
    shot(page, "choices")
    page.get_by_text("24団体の一覧").click()
    expect(page.locator(".reader-list").first).to_contain_text("福山市")
    shot(page, "all-readers")


def test_mask_mask_all_and_undo_keep_what_was_typed_and_land_on_the_findings(page, live_server):
    title = f"伏せ字の確認（{uuid.uuid4().hex[:6]}）"
    case_id = live_server.draft_case(title, LEAKY, consent="neighbours")
    login(page, "helpdesk1")
    page.goto(f"/cases/{case_id}/publish")
    expect(page.get_by_role("heading", name="個別の情報のチェック（3件）")).to_be_visible()

    # What a person enters before masking: a visibility, anonymity, one finding kept with a reason.
    page.get_by_role("radio", name="近隣・グループの市町").check()
    page.get_by_label("市町名を伏せる（匿名）").check()
    page.get_by_label(f"{ADDRESS}を残す理由").fill("説明用の例示アドレス")
    page.get_by_role("checkbox", name=f"{ADDRESS}を残す").check()
    shot(page, "typed")

    _finding(page, HOST).get_by_role("button", name=f"{HOST}（ホスト名・内部ドメイン名）を伏せる").click()
    notice = page.locator(".mask-notice")
    expect(notice).to_contain_text("[ホスト名] に置き換えました")
    assert page.url.endswith("#findings")
    _wait_until_scrolled(page)  # the page opened at the findings, not at its top
    expect(notice).to_be_in_viewport()
    expect(page.get_by_role("radio", name="近隣・グループの市町")).to_be_checked()
    expect(page.get_by_label("市町名を伏せる（匿名）")).to_be_checked()
    expect(page.get_by_label(f"{ADDRESS}を残す理由")).to_have_value("説明用の例示アドレス")
    expect(page.get_by_role("checkbox", name=f"{ADDRESS}を残す")).to_be_checked()
    expect(_finding(page, HOST)).to_have_count(0)
    shot(page, "masked-one")
    assert HOST not in live_server.case_text(case_id)["issue"]

    notice.get_by_role("button", name="元に戻す").click()
    expect(page.locator(".mask-notice")).to_contain_text("伏せ字を元に戻しました（1件）")
    expect(_finding(page, HOST)).to_have_count(1)
    expect(page.get_by_label(f"{ADDRESS}を残す理由")).to_have_value("説明用の例示アドレス")
    expect(page.get_by_role("radio", name="近隣・グループの市町")).to_be_checked()
    assert live_server.case_text(case_id)["issue"] == LEAKY
    shot(page, "undone")

    page.get_by_role("button", name=re.compile("^すべて伏せる")).click()
    expect(page.locator(".mask-notice")).to_contain_text("2件を伏せ字にしました")
    expect(page.locator(".mask-notice")).to_be_in_viewport()
    expect(_finding(page, HOST)).to_have_count(0)
    expect(_finding(page, MAIL)).to_have_count(0)
    expect(_finding(page, ADDRESS)).to_have_count(1)  # kept, so not masked
    expect(page.get_by_label(f"{ADDRESS}を残す理由")).to_have_value("説明用の例示アドレス")
    expect(page.get_by_label("市町名を伏せる（匿名）")).to_be_checked()
    shot(page, "masked-all")

    # Enter in a reason field neither publishes nor masks.
    page.get_by_label(f"{ADDRESS}を残す理由").press("Enter")
    page.wait_for_timeout(300)
    assert live_server.case_text(case_id)["state"] == "draft"

    page.get_by_role("button", name="この内容で公開する").click()
    expect(page.get_by_role("status")).to_contain_text("事例を公開しました")
    assert live_server.case_text(case_id)["visibility"] == "neighbours"
    issue = live_server.case_text(case_id)["issue"]
    assert ADDRESS in issue and HOST not in issue and MAIL not in issue
    shot(page, "published")


def test_a_refused_publish_marks_the_open_findings_at_the_top_and_on_their_rows(page, live_server, guards):
    case_id = live_server.draft_case(f"未対応の指摘（{uuid.uuid4().hex[:6]}）", LEAKY, consent="neighbours")
    # The refusal is a 409 page, which Chromium also logs as a console error: expected, for this URL only.
    guards.allow_console_error(r"status of 409", url=rf"/cases/{case_id}/publish$")
    login(page, "helpdesk1")
    page.goto(f"/cases/{case_id}/publish")
    page.get_by_role("radio", name="近隣・グループの市町").check()
    page.get_by_role("button", name="この内容で公開する").click()
    alert = page.locator("#share-error")
    expect(alert).to_contain_text("個別の情報が 3 件あります")
    expect(alert).to_be_in_viewport()
    assert page.evaluate("window.scrollY") == 0
    reason = page.get_by_label(f"{HOST}を残す理由")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{reason.get_attribute('aria-describedby')}")).to_have_text("伏せるか、理由を書いて残してください。")
    expect(page.get_by_role("radio", name="近隣・グループの市町")).to_be_checked()
    shot(page, "refused")

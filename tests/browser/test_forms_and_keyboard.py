"""Keyboard and forms in a browser: the skip link, a visible focus on every control, the warning
before leaving unsaved text, where a form lands after an error or a preview, the login form's empty
fields and the case's print view."""
from __future__ import annotations

import uuid

import pytest

from tests.browser.helpers import Page, expect, login, main_nav, shot

SHARED_WITH_ALL = "テレワーク用VPNが約30分で切断される"


def _focused(page: Page) -> dict:
    return page.evaluate(
        """() => {
          const e = document.activeElement;
          const style = getComputedStyle(e);
          const r = e.getBoundingClientRect();
          return {tag: e.tagName.toLowerCase(), text: (e.textContent || e.value || e.name || '').trim().slice(0, 40),
                  name: e.getAttribute('name') || '', inMain: !!e.closest('main'), outline: style.outlineStyle,
                  width: parseFloat(style.outlineWidth) || 0, top: r.top, bottom: r.bottom,
                  visible: r.width > 0 && r.height > 0};
        }""")


@pytest.mark.parametrize("width", (1280, 390))
def test_the_skip_link_is_the_first_tab_stop_and_moves_to_the_content(new_page, width):
    page = new_page(width, 844)
    login(page, "helpdesk1")
    for path in ("/helpdesk/queue", "/search?q=VPN", "/cases"):
        page.goto(path)
        page.keyboard.press("Tab")
        first = _focused(page)
        assert first["text"] == "本文へ移動", (path, first)
        assert first["visible"] and first["top"] >= 0 and first["outline"] != "none", first
        shot(page, f"{width}-skip-link-{path.strip('/').replace('/', '-').split('?')[0]}")
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        after = _focused(page)
        assert after["inMain"], (path, after)  # past the menu, into the page's own content


def _walk_focus(page: Page, limit: int = 250) -> list[dict]:
    """Tab through the page once (until focus comes back to the skip link)."""
    seen = []
    page.locator("body").focus()
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = _focused(page)
        if seen and (focused["text"] == "本文へ移動" or focused["tag"] == "body"):
            break
        seen.append(focused)
    return seen


def test_every_control_shows_where_the_focus_is(page, live_server):
    case_id = live_server.draft_case(f"フォーカスの確認（{uuid.uuid4().hex[:6]}）",
                                     "ファイルサーバ fs01.city.local に接続できない", consent="all")
    login(page, "helpdesk1")
    pages = {
        "publish": f"/cases/{case_id}/publish",
        "thread": f"/questions/{live_server.question_of_case(case_id)}",
        "search": "/search?q=VPN",
        "canned": "/helpdesk/canned",
        "queue": "/helpdesk/queue",
    }
    total = 0
    for name, path in pages.items():
        page.goto(path)
        stops = _walk_focus(page)
        assert len(stops) > 5, (name, stops)
        hidden = [s for s in stops if s["outline"] == "none" or s["width"] < 2]
        assert hidden == [], f"{name}: focus not visible on {hidden[:5]}"
        total += len(stops)
        # One screenshot with a control of the page's own content focused.
        page.locator("body").focus()
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # skip link
        page.keyboard.press("Tab")
        shot(page, f"focus-{name}")
    assert total > 100


def test_leaving_a_form_with_unsaved_text_asks_first_but_sending_it_does_not(page):
    dialogs = []

    def answer(dialog):
        dialogs.append(dialog.type)
        if len(dialogs) == 1:
            dialog.dismiss()  # stay on the page
        else:
            dialog.accept()

    login(page, "helpdesk1")
    page.on("dialog", answer)
    page.goto("/helpdesk/canned")
    # Nothing typed: leaving asks nothing.
    main_nav(page).get_by_role("link", name="事例検索").click()
    expect(page.get_by_role("heading", name="事例検索", level=1)).to_be_visible()
    assert dialogs == []

    page.goto("/helpdesk/canned")
    body = page.get_by_label("本文")
    body.click()
    page.keyboard.type("確認のため、端末の機種を教えてください。")
    shot(page, "typed")
    main_nav(page).get_by_role("link", name="事例検索").click(no_wait_after=True)
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    expect(page).to_have_url(page.url)  # still here
    expect(page.get_by_role("heading", name="定型文", level=1)).to_be_visible()
    expect(body).to_have_value("確認のため、端末の機種を教えてください。")

    # Sending the form is not leaving it.
    page.get_by_label("名前（一覧に表示）").fill(f"機種の確認（{uuid.uuid4().hex[:6]}）")
    page.get_by_role("button", name="保存する").click()
    expect(page.get_by_role("status")).to_be_visible()
    assert dialogs == ["beforeunload"]
    shot(page, "sent")


def test_an_error_far_down_a_page_is_shown_at_the_top(page):
    login(page, "admin")
    page.goto("/admin/users")
    form = page.locator("form").filter(has=page.get_by_role("button", name="アカウントを作成"))
    form.scroll_into_view_if_needed()
    form.get_by_label("ユーザー名").fill("kure-new")
    form.get_by_label("初期パスワード").fill("short")
    form.get_by_role("button", name="アカウントを作成").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_in_viewport()
    assert page.evaluate("window.scrollY") == 0
    shot(page, "error-summary")
    summary.get_by_role("link", name=page.locator("#error-summary a").first.inner_text()).click()
    expect(page.locator("#password")).to_be_in_viewport()
    shot(page, "error-field")


def test_a_preview_is_where_the_page_opens(page, live_server):
    case_id = live_server.draft_case(f"プレビューの確認（{uuid.uuid4().hex[:6]}）", "VPN がつながらない", consent="private")
    question_id = live_server.question_of_case(case_id)
    answer_id = live_server.answer_of_question(question_id)
    login(page, "helpdesk1")
    page.goto(f"/questions/{question_id}/posts/answer/{answer_id}/edit")
    page.get_by_label("本文").fill("**再起動**してください。\n\n- 手順1\n- 手順2")
    page.get_by_role("button", name="プレビュー").click()
    preview = page.get_by_role("region", name="プレビュー")
    expect(preview.locator("strong")).to_have_text("再起動")
    expect(preview).to_be_in_viewport()
    shot(page, "preview")
    page.get_by_text("書式のヘルプ").click()
    expect(page.locator(".format-help dl")).to_be_visible()
    shot(page, "format-help")
    # Leaving now asks nothing: the page was just sent, and the text is what the preview shows.


def test_empty_login_fields_ask_for_both(page):
    page.goto("/login")
    page.get_by_role("button", name="ログイン").click()
    username = page.get_by_label("ユーザー名")
    expect(username).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#username-error")).to_have_text("ユーザー名とパスワードを入力してください。")
    expect(page.get_by_text("正しくない")).to_have_count(0)
    shot(page, "empty-login")
    page.get_by_label("ユーザー名").fill("kure1")
    page.get_by_role("button", name="ログイン").click()
    expect(page.locator("#password-error")).to_have_text("ユーザー名とパスワードを入力してください。")
    shot(page, "empty-password")


def test_the_print_view_of_a_case(page, live_server):
    case_id = live_server.case_id(SHARED_WITH_ALL)
    login(page, "fukuyama1")
    page.goto(f"/cases/{case_id}/print")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"事例 #{case_id}：{SHARED_WITH_ALL}")
    expect(page.locator(".print-head")).to_contain_text("印刷日時")
    expect(page.locator(".print-head")).to_contain_text(f"/cases/{case_id}")
    expect(page.get_by_role("navigation")).to_have_count(0)
    expect(page.get_by_role("button")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("アイドルタイムアウト")
    shot(page, "print-screen")
    page.emulate_media(media="print")
    shot(page, "print-media")

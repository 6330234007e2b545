"""Phone layout (390x844) and keyboard access."""
from __future__ import annotations

import pytest

from tests.browser.helpers import Page, expect, login, main_nav, shot

PHONE = (390, 844)


def _horizontal_overflow(page: Page) -> dict:
    return page.evaluate(
        """() => ({scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
                   widest: [...document.querySelectorAll('body *')]
                     .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                     .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))})"""
    )


def _assert_no_horizontal_scroll(page: Page) -> None:
    found = _horizontal_overflow(page)
    assert found["innerWidth"] == PHONE[0], found  # the phone viewport is really in force
    assert found["scrollWidth"] <= found["innerWidth"], (
        f"the page scrolls sideways on a phone: scrollWidth {found['scrollWidth']} > innerWidth "
        f"{found['innerWidth']}; wider than the screen: {found['widest']}"
    )


@pytest.mark.viewport(*PHONE)
def test_phone_layout_of_the_search_page(page):
    login(page, "fukuyama1")
    page.goto("/search")
    expect(page.get_by_role("heading", name="事例検索", level=1)).to_be_visible()
    shot(page, "phone-search")
    page.get_by_role("searchbox", name="検索語").fill("ファイルサーバーの容量が足りない")
    page.get_by_role("search").get_by_role("button", name="検索").click()
    expect(page.locator("article.hit").first).to_be_visible()
    shot(page, "phone-search-results")
    _assert_no_horizontal_scroll(page)


@pytest.mark.viewport(*PHONE)
def test_phone_layout_of_the_queue(page):
    login(page, "helpdesk1")
    expect(page.get_by_role("heading", name="対応待ちの相談")).to_be_visible()
    expect(page.get_by_role("table")).to_be_visible()
    shot(page, "phone-queue")
    _assert_no_horizontal_scroll(page)


def test_tab_from_page_load_reaches_the_main_navigation(page):
    login(page, "kure1")
    page.goto("/questions")
    expect(page.get_by_role("heading", level=1)).to_contain_text("自団体の相談")
    nav = main_nav(page)
    focused = []
    for _ in range(5):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement ? document.activeElement.textContent.trim() : ''"))
        if page.evaluate("!!document.activeElement.closest('nav.main-nav')"):
            break
    else:
        pytest.fail(f"five Tab presses from page load did not reach the main navigation (focused: {focused})")
    first_link = nav.get_by_role("link").first
    expect(first_link).to_be_focused()
    shot(page, "nav-focused")
    # Enter on the focused navigation link follows it.
    target = first_link.get_attribute("href")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{target}")

"""Every main page from 360 px up: nothing scrolls sideways, the header stays small (the menu folds
behind 「メニュー」 without script), list tables turn into cards, search results come before the facets."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.browser.helpers import Page, expect, login, main_nav, shot

WIDTHS = (360, 390)
HEIGHT = 800
HEADER_MAX = 64  # px, with the menu folded (it was 210 px on a phone)
SHARED_WITH_ALL = "テレワーク用VPNが約30分で切断される"


def _question_of(live_server, municipality: str) -> int:
    from app.models import Municipality, Question

    return live_server.query(select(Question.id).join(Municipality, Question.municipality_id == Municipality.id)
                             .where(Municipality.name == municipality).order_by(Question.id).limit(1))


def _user_id(live_server, username: str) -> int:
    from app.models import User

    return live_server.query(select(User.id).where(User.username == username))


def _draft_case(live_server) -> int:
    from app.models import Case

    case_id = live_server.query(select(Case.id).where(Case.title == "スマホ幅のテスト用の事例"))
    return case_id or live_server.draft_case(
        "スマホ幅のテスト用の事例",
        "庁内のファイルサーバ fs01.city.local（192.168.10.5）に接続できない。担当 taro@city.kure.lg.jp")


# (who logs in, [(step name, path or function of the live server)])
PAGES = {
    "anonymous": (None, [("login", "/login")]),
    "municipal": ("kure1", [
        ("own-questions", "/questions"),
        ("ask", "/questions/new"),
        ("thread", lambda s: f"/questions/{_question_of(s, '呉市')}"),
        ("thread-print", lambda s: f"/questions/{_question_of(s, '呉市')}/print"),
        ("own-cases", "/cases"),
        ("search", "/search"),
        ("search-results", "/search?q=VPN"),
        ("case", lambda s: f"/cases/{s.case_id(SHARED_WITH_ALL)}"),
        ("case-print", lambda s: f"/cases/{s.case_id(SHARED_WITH_ALL)}/print"),
        ("password", "/account/password"),
    ]),
    "helpdesk": ("helpdesk1", [
        ("queue", "/helpdesk/queue"),
        ("all-questions", "/questions"),
        ("case-admin", "/cases"),
        ("case-edit", lambda s: f"/cases/{_draft_case(s)}/edit"),
        ("publish", lambda s: f"/cases/{_draft_case(s)}/publish"),
        ("canned", "/helpdesk/canned"),
        ("names", "/cases/sensitive-names"),
        ("misses", "/search/misses"),
        ("synonyms", "/search/synonyms"),
    ]),
    "admin": ("admin", [
        ("users", "/admin/users"),
        ("user", lambda s: f"/admin/users/{_user_id(s, 'kure1')}"),
        ("municipalities", "/admin/municipalities"),
        ("groups", "/admin/groups"),
        ("categories", "/admin/categories"),
        ("audit", "/admin/audit"),
    ]),
}


def _layout(page: Page) -> dict:
    return page.evaluate(
        """() => {
          const header = document.querySelector('.site-header');
          return {
            scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
            header: header ? header.getBoundingClientRect().height : 0,
            // A table wider than the screen must scroll inside its own box (or be shown as cards).
            loose_tables: [...document.querySelectorAll('main table')]
              .filter(t => t.getBoundingClientRect().width > window.innerWidth
                           && !['auto', 'scroll'].includes(getComputedStyle(t.parentElement).overflowX))
              .map(t => t.className || 'table'),
            widest: [...document.querySelectorAll('body *')]
              .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
              .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')),
          };
        }"""
    )


def _check(page: Page, width: int, name: str) -> None:
    found = _layout(page)
    assert found["innerWidth"] == width, found
    assert found["scrollWidth"] <= found["innerWidth"], (
        f"{name} at {width} px scrolls sideways: scrollWidth {found['scrollWidth']}; wider: {found['widest']}")
    assert found["loose_tables"] == [], f"{name} at {width} px: {found['loose_tables']}"
    if name not in ("thread-print", "case-print", "login"):
        assert 0 < found["header"] <= HEADER_MAX, f"{name} at {width} px: header {found['header']} px"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("who", list(PAGES))
def test_every_main_page_fits_a_phone(new_page, live_server, who, width):
    page = new_page(width, HEIGHT, has_touch=True)
    username, pages = PAGES[who]
    if username:
        login(page, username)
    for name, path in pages:
        target = path(live_server) if callable(path) else path
        response = page.goto(target)
        assert response is not None and response.status == 200, (name, target)
        page.wait_for_load_state("load")
        shot(page, f"{width}-{name}")
        _check(page, width, name)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_menu_folds_on_a_phone_and_its_words_never_break(new_page, width):
    page = new_page(width, HEIGHT, has_touch=True)
    login(page, "helpdesk1")  # the longest menu
    nav = main_nav(page)
    toggle = page.locator(".menu-toggle summary")
    expect(nav).to_be_hidden()
    expect(toggle).to_be_visible()
    expect(toggle).to_have_text("メニュー")
    toggle.click()
    expect(nav).to_be_visible()
    shot(page, f"{width}-menu-open")
    # Each menu word on one line: a link that wrapped has more than one line box.
    broken = page.evaluate(
        """() => [...document.querySelectorAll('.main-nav a, .user-box a, .user-box button')]
             .filter(a => a.getClientRects().length > 1 || a.getBoundingClientRect().height > 40)
             .map(a => a.textContent.trim())""")
    assert broken == [], broken
    nav.get_by_role("link", name="事例検索").click()
    expect(page.get_by_role("heading", name="事例検索", level=1)).to_be_visible()
    expect(main_nav(page)).to_be_hidden()  # folded again on the next page
    assert _layout(page)["header"] <= HEADER_MAX


def test_the_desktop_menu_is_always_open(page):
    login(page, "helpdesk1")
    expect(page.locator(".menu-toggle summary")).to_be_hidden()
    expect(main_nav(page).get_by_role("link", name="対応待ち")).to_be_visible()
    shot(page, "desktop-menu")


@pytest.mark.parametrize("width", WIDTHS)
def test_lists_are_cards_with_readable_titles_on_a_phone(new_page, width):
    page = new_page(width, HEIGHT, has_touch=True)
    login(page, "helpdesk1")
    for name, path in (("queue", "/helpdesk/queue"), ("questions", "/questions"), ("cases", "/cases")):
        page.goto(path)
        title = page.locator("table.cards td.card-title a").first
        expect(title).to_be_visible()
        box = title.evaluate("a => a.closest('td').getBoundingClientRect().width")
        assert box >= width * 0.75, f"{name}: the title column is {box} px wide at {width} px"
        expect(page.locator("table.cards td[data-label]").first).to_be_visible()
        shot(page, f"{width}-{name}-cards")
        _check(page, width, name)


@pytest.mark.parametrize("width", WIDTHS)
def test_search_results_come_before_the_facets_on_a_phone(new_page, width):
    page = new_page(width, HEIGHT, has_touch=True)
    login(page, "fukuyama1")
    page.goto("/search")
    page.get_by_role("searchbox", name="検索語").fill("VPN")
    page.get_by_role("search").get_by_role("button", name="検索").click()
    first_hit = page.locator("article.hit").first
    expect(first_hit).to_be_visible()
    top = first_hit.evaluate("e => e.getBoundingClientRect().top")
    assert top < HEIGHT, f"the first result starts at {top} px, below the fold"
    facets_top = page.locator("#facets").evaluate("e => e.getBoundingClientRect().top")
    assert facets_top > top
    jump = page.get_by_role("link", name="事例・記事、分類、市町で絞り込む")
    expect(jump).to_be_visible()
    shot(page, f"{width}-results-first")
    jump.click()
    expect(page.locator("#facets").get_by_role("heading", name="分類")).to_be_in_viewport()
    shot(page, f"{width}-facets")
    _check(page, width, "search")

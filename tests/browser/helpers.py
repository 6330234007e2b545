"""Helpers for the browser tests: the per-test guards and screenshots, ``login`` and ``shot``.

Every browser context a test opens is watched by one :class:`Guards` (console errors, uncaught page
errors, requests to any host but the test server, 5xx responses); ``conftest.py`` fails the test
when it recorded anything. Screenshots go to ``tests/artifacts/<test name>/NN-<step>.png``.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: `make test-browser` installs the browser extra")

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Response, Route, expect  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402,F401  (for the tests)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
DEMO_PASSWORD = json.loads((ROOT / "content" / "demo" / "accounts.json").read_text(encoding="utf-8"))["password"]


def _slug(text: str) -> str:
    """A file-name-safe form of a test or step name (Japanese letters are kept)."""
    return re.sub(r"[^\w.-]+", "-", text, flags=re.UNICODE).strip("-") or "step"


@dataclass
class Guards:
    """What one test's browser contexts did that a page never should."""

    test_name: str
    server_origin: str  # "http://127.0.0.1:PORT"
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    allowed_console: list[tuple[re.Pattern, re.Pattern | None]] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)
    steps: int = 0

    def __post_init__(self) -> None:
        self.directory = ARTIFACTS / _slug(self.test_name)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)

    # --- wiring -------------------------------------------------------------------------------

    def watch(self, context: BrowserContext) -> None:
        """Block and record every request to another host; record errors from every page."""
        self.contexts.append(context)
        _GUARDS[id(context)] = self
        context.route("**/*", self._route)
        context.on("request", self._request)
        context.on("response", self._response)
        context.on("page", self._watch_page)

    def _watch_page(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))

    def _is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "chrome-error"):
            return True
        return f"{parts.scheme}://{parts.netloc}" == self.server_origin

    def _route(self, route: Route) -> None:
        url = route.request.url
        if self._is_local(url):
            route.continue_()
            return
        self._record_external(url)
        route.abort("blockedbyclient")

    def _request(self, request: Request) -> None:
        if not self._is_local(request.url):
            self._record_external(request.url)

    def _record_external(self, url: str) -> None:
        if url not in self.external_requests:
            self.external_requests.append(url)

    def _response(self, response: Response) -> None:
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {response.request.method} {response.url}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        for text_pattern, url_pattern in self.allowed_console:
            if text_pattern.search(message.text) and (url_pattern is None or url_pattern.search(where)):
                return
        self.console_errors.append(f"{message.text} (at {where or 'unknown'})")

    # --- for tests ----------------------------------------------------------------------------

    def allow_console_error(self, text: str, url: str | None = None) -> None:
        """Expect one kind of console error (a regex on the text and, optionally, on the page URL),
        e.g. Chromium's "Failed to load resource: ... 404" on a page that is meant to answer 404."""
        self.allowed_console.append((re.compile(text), re.compile(url) if url else None))

    def screenshot(self, page: Page, name: str) -> Path:
        self.steps += 1
        path = self.directory / f"{self.steps:02d}-{_slug(name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def open_pages(self) -> list[Page]:
        return [page for context in self.contexts for page in context.pages if not page.is_closed()]

    def problems(self) -> list[str]:
        # A round trip to every open page delivers console and page-error events still in flight.
        for page in self.open_pages():
            try:
                page.evaluate("0")
            except Exception:  # a page that is navigating or gone has nothing more to say
                pass
        found = []
        found += [f"browser console error: {text}" for text in self.console_errors]
        found += [f"uncaught page error: {text}" for text in self.page_errors]
        found += [f"request to a host other than the test server (blocked): {url}" for url in self.external_requests]
        found += [f"server error response: {text}" for text in self.server_errors]
        return found

    def close(self) -> None:
        for context in self.contexts:
            _GUARDS.pop(id(context), None)
            try:
                # close() waits for route handlers in flight; one stuck behind a navigation that the
                # test started last would wait for ever (Playwright 1.41+: unroute without waiting).
                context.unroute_all(behavior="ignoreErrors")
                context.close()
            except Exception:
                pass
        self.contexts.clear()


_GUARDS: dict[int, Guards] = {}


def guards_for(page: Page) -> Guards:
    try:
        return _GUARDS[id(page.context)]
    except KeyError:
        raise RuntimeError("this page was not opened through the browser-test fixtures (page / new_page)") from None


def shot(page: Page, name: str) -> Path:
    """Full-page screenshot as the test's next step: tests/artifacts/<test>/NN-<name>.png."""
    return guards_for(page).screenshot(page, name)


def login(page: Page, username: str, password: str = DEMO_PASSWORD) -> None:
    """Log in through the login form (the page's context starts with no session)."""
    page.goto("/login")
    expect(page.get_by_role("heading", name="ログイン", level=1)).to_be_visible()
    page.get_by_label("ユーザー名").fill(username)
    page.get_by_label("パスワード").fill(password)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("status").filter(has_text="ログインしました")).to_be_visible()
    # On a phone the menu (and ログアウト in it) is folded behind 「メニュー」: present, maybe not shown.
    expect(page.locator("nav.main-nav")).to_be_attached()
    expect(page.locator(".user-box button", has_text="ログアウト")).to_be_attached()


def main_nav(page: Page):
    return page.get_by_role("navigation", name="メインメニュー")


def ask_question(page: Page, title: str, body: str, category: str = "ネットワーク",
                 tags: str = "", consent: str | None = None) -> int:
    """As a logged-in municipal user: 相談する → fill the form → 相談を送信. Returns the question id."""
    main_nav(page).get_by_role("link", name="相談する").click()
    expect(page.get_by_role("heading", name="県ヘルプデスクに相談する")).to_be_visible()
    page.get_by_label("件名").fill(title)
    page.get_by_label("分類").select_option(label=category)
    if tags:
        page.get_by_label("タグ").fill(tags)
    page.get_by_label("相談内容").fill(body)
    if consent:
        page.get_by_role("radio", name=consent).check()
    shot(page, "ask-form-filled")
    page.get_by_role("button", name="相談を送信").click()
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    match = re.search(r"/questions/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))

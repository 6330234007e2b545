"""The guards themselves: a browser test must notice what it is there to notice."""
from __future__ import annotations

from tests.browser.helpers import PlaywrightError, login


def test_guards_record_console_errors_page_errors_and_requests_to_other_hosts(page, live_server, guards):
    login(page, "kure1")
    page.evaluate("console.error('guard self-test')")
    page.evaluate("setTimeout(() => { throw new Error('guard self-test: uncaught') }, 0)")
    page.wait_for_timeout(100)
    # Another host name for the same loopback server: off the test server's origin, so blocked.
    other = live_server.url.replace("127.0.0.1", "localhost") + "/login"
    try:
        page.goto(other)
    except PlaywrightError:
        pass  # aborted by the guard
    problems = guards.problems()
    assert any("guard self-test" in p and p.startswith("browser console error") for p in problems), problems
    assert any("guard self-test: uncaught" in p and p.startswith("uncaught page error") for p in problems), problems
    assert any(other in p and p.startswith("request to a host other than the test server") for p in problems), problems
    # Seen and checked: clear them so that this test itself passes.
    guards.console_errors.clear()
    guards.page_errors.clear()
    guards.external_requests.clear()

"""End-to-end tests in a real browser (Playwright driving Debian's Chromium).

Collected only by ``make test-browser`` (which sets ``HELPDESK_BROWSER_TESTS=1``) or when this
folder is named on the pytest command line; a plain ``make test`` / ``pytest`` never collects it,
so the main suite needs neither Playwright nor Chromium.

One live server for the session: the app with a TestingConfig subclass (but real CSRF), a temporary
SQLite file and search index, the reference content plus the demo accounts, threads and cases, served
by werkzeug on 127.0.0.1 at a free port. Each test gets fresh browser contexts (no cookies: every
test logs in itself) watched by :class:`tests.browser.helpers.Guards`.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

ENV_FLAG = "HELPDESK_BROWSER_TESTS"
HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("HELPDESK_BROWSER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}


def _named_on_command_line(config: pytest.Config) -> bool:
    for arg in config.invocation_params.args:
        candidate = Path(config.invocation_params.dir, str(arg).split("::")[0]).resolve()
        if candidate == HERE or HERE in candidate.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config):
    if os.environ.get(ENV_FLAG) == "1" or _named_on_command_line(config):
        return None
    return True  # `make test`: the browser suite is not collected at all


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "viewport(width, height): the page fixture's viewport")


# The development server (werkzeug) leaves a static file open when the browser drops a connection in
# the middle of a response; the garbage collector closes it later, during whichever test runs then,
# and the ResourceWarning (an error under `filterwarnings = error`) failed or stalled that test. It
# says nothing about the app: these warnings, about the server's static files only, are ignored here
# (`make test` keeps every warning an error).
STATIC_FILE_LEAKS = (
    r"ignore:unclosed file <_io\.\w+ name='[^']*/app/static/:ResourceWarning",
    r"ignore:Exception ignored in. <_io\.\w+ name='[^']*/app/static/:pytest.PytestUnraisableExceptionWarning",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE == Path(str(item.path)).parent:
            for spec in STATIC_FILE_LEAKS:
                item.add_marker(pytest.mark.filterwarnings(spec))


# --- the live server ------------------------------------------------------------------------------

class LiveServer:
    def __init__(self, app, url: str):
        self.app = app
        self.url = url

    def case_id(self, title: str) -> int:
        from sqlalchemy import select

        from app.extensions import db
        from app.models import Case

        with self.app.app_context():
            case_id = db.session.scalar(select(Case.id).where(Case.title == title))
        assert case_id is not None, f"no case titled {title!r} in the demo data"
        return case_id

    def case_for_question(self, question_id: int):
        """(id, state, visibility) of the case made from a question, or None."""
        from sqlalchemy import select

        from app.extensions import db
        from app.models import Case

        with self.app.app_context():
            row = db.session.execute(
                select(Case.id, Case.state, Case.visibility).where(Case.question_id == question_id)
            ).first()
        return tuple(row) if row else None

    def draft_case(self, title: str, body: str, consent: str = "neighbours", asker: str = "kure1") -> int:
        """A question asked, answered by helpdesk1 and resolved through the services: the id of
        its draft case (for the tests of the review before sharing)."""
        from app.extensions import db
        from app.services import questions as question_service
        from app.services.accounts import get_user

        with self.app.app_context():
            desk = get_user("helpdesk1")
            question = question_service.ask_question(get_user(asker), {
                "title": title, "body": body, "category": "network", "sharing_consent": consent})
            answer = question_service.post_answer(desk, question, {"body": "DNS の A レコードを確認してください。"})
            db.session.flush()
            case = question_service.resolve_question(desk, question, answer.id)
            db.session.commit()
            case_id = case.id
            db.session.remove()
        return case_id

    def query(self, statement):
        """One value from the test server's database (a SQLAlchemy select)."""
        from app.extensions import db

        with self.app.app_context():
            value = db.session.scalar(statement)
            db.session.remove()
        return value

    def question_of_case(self, case_id: int) -> int:
        from sqlalchemy import select

        from app.models import Case

        return self.query(select(Case.question_id).where(Case.id == case_id))

    def answer_of_question(self, question_id: int) -> int:
        from sqlalchemy import select

        from app.models import Answer

        return self.query(select(Answer.id).where(Answer.question_id == question_id).order_by(Answer.id))

    def case_text(self, case_id: int) -> dict:
        from app.extensions import db
        from app.models import Case

        with self.app.app_context():
            case = db.session.get(Case, case_id)
            found = {"issue": case.issue, "state": case.state, "visibility": case.visibility}
            db.session.remove()
        return found


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    from werkzeug.serving import make_server

    from app import create_app
    from app.content import load_demo, load_reference
    from app.extensions import db
    from app.search.sync import apply_pending, reindex
    from config import TestingConfig

    base = tmp_path_factory.mktemp("browser-server")

    class BrowserTestConfig(TestingConfig):
        WTF_CSRF_ENABLED = True  # real forms, as a person submits them
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{base / 'helpdesk.db'}"
        SEARCH_INDEX_DIR = str(base / "search_index")
        LOG_LEVEL = "WARNING"   # the live server's request lines would fill the test output

    app = create_app(BrowserTestConfig)
    with app.app_context():
        db.create_all()
        content = Path(app.config["CONTENT_DIR"])
        load_reference(content)
        load_demo(content)  # what `flask content load --demo` does
        db.session.commit()
        reindex()
        apply_pending()
        db.session.remove()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.engine.dispose()


# --- the browser ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed: run `make test-browser` (installs the browser extra)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"browser tests skipped: no Chromium at {CHROMIUM} (Debian: apt-get install chromium; "
                    f"`make test-browser` installs it when it can)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def guards(request, live_server, browser):
    """Every test: fails on console errors, page errors, requests off the test server, 5xx."""
    from tests.browser.helpers import Guards

    watcher = Guards(request.node.name, live_server.url)
    yield watcher
    watcher.close()


@pytest.fixture
def new_page(browser, live_server, guards):
    """A page in a new, guarded browser context (no cookies): one per user in a multi-user test."""

    def open_page(width: int = DESKTOP["width"], height: int = DESKTOP["height"], **options):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": height},
            locale="ja-JP", timezone_id="Asia/Tokyo", **options,
        )
        context.set_default_timeout(10_000)
        guards.watch(context)
        return context.new_page()

    return open_page


@pytest.fixture
def page(request, new_page):
    marker = request.node.get_closest_marker("viewport")
    if marker:
        width, height = marker.args
        # Not is_mobile: Chromium's mobile emulation zooms a too-wide page out to fit, widening
        # window.innerWidth to the content, so a sideways-scrolling page would look fine.
        return new_page(width, height, has_touch=True)
    return new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """The guards turn a passing browser test into a failure (a test that failed already keeps its
    own error; its guard findings are added to the report by pytest_runtest_makereport)."""
    result = yield
    watcher = item.funcargs.get("guards") if hasattr(item, "funcargs") else None
    if watcher is not None:
        problems = watcher.problems()
        if problems:
            pytest.fail("browser guards:\n  " + "\n  ".join(problems), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    watcher = item.funcargs.get("guards") if hasattr(item, "funcargs") else None
    if watcher is not None and report.when == "call" and report.failed:
        for page in watcher.open_pages():
            try:
                watcher.screenshot(page, "failure")
            except Exception:
                pass
        problems = watcher.problems()
        if problems and "browser guards:" not in str(report.longrepr):
            report.sections.append(("browser guards", "\n".join(problems)))
    return report

"""Logging in and out, disabled accounts, password changes ending other sessions, and ``?next=``.

The shared ``app`` fixture keeps one application context pushed for the whole test, and Flask
reuses a pushed context for test-client requests, so ``g`` (where Flask-Login caches the current
user) would carry the last request's user into the next request, even one from another client.
Session tests here therefore send every request in its own application context, as a real server
does (``IsolatedClient``), so that each request loads its user from its own cookie.
"""
from __future__ import annotations

import pytest
from flask.testing import FlaskClient
import html5lib
from sqlalchemy import func, select

from app.extensions import db
from app.models import User
from app.services import accounts
from tests.conftest import PASSWORD

LOGIN_ERROR = "ユーザー名またはパスワードが正しくないか、アカウントが無効です。"
NEW_PASSWORD = "a-brand-new-passphrase"


class IsolatedClient(FlaskClient):
    """A test client whose every request gets a fresh application context (fresh ``g``)."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def new_client(app):
    def factory() -> IsolatedClient:
        return IsolatedClient(app, app.response_class, use_cookies=True)

    return factory


@pytest.fixture
def web(new_client):
    return new_client()


def log_in(client, username: str, password: str = PASSWORD, **kwargs):
    return client.post("/login", data={"username": username, "password": password}, **kwargs)


def is_logged_in(client) -> bool:
    response = client.get("/questions")
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and response.headers["Location"].startswith("/login"), response.status
    return False


def stored_user(user_id: int) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.id == user_id))


# --- logging in -------------------------------------------------------------------------------

def test_correct_password_logs_in_and_home_leads_to_the_role_page(new_client, make_user):
    for role, municipality, home in [
        ("municipal", "呉市", "/questions"),
        ("viewer", "呉市", "/questions"),
        ("helpdesk", None, "/helpdesk/queue"),
        ("admin", None, "/admin/municipalities"),
    ]:
        user = make_user(role, municipality)
        web = new_client()
        response = log_in(web, user.username)
        assert response.status_code == 302, role
        assert response.headers["Location"] == "/"
        response = web.get("/")
        assert response.status_code == 302, role
        assert response.headers["Location"] == home, role
        page = web.get(home)
        assert page.status_code == 200, role
        assert "ログインしました。" in page.get_data(as_text=True)


def test_wrong_password_rerenders_login_with_japanese_error_and_keeps_username(web, make_user):
    user = make_user(username="kure-tanaka")
    response = log_in(web, "kure-tanaka", "wrong-password-123")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert LOGIN_ERROR in page
    assert 'value="kure-tanaka"' in page
    assert "wrong-password-123" not in page  # the password is never echoed back
    assert not is_logged_in(web)
    assert user.is_enabled


def test_unknown_username_gets_the_same_error_as_a_wrong_password(web, make_user):
    make_user()
    response = web.post("/login", data={"username": "nobody-here", "password": PASSWORD})
    assert response.status_code == 200
    assert LOGIN_ERROR in response.get_data(as_text=True)
    assert not is_logged_in(web)


EMPTY_LOGIN = "ユーザー名とパスワードを入力してください。"


@pytest.mark.parametrize("data, empty_field", [
    ({"username": "", "password": ""}, "username"),
    ({"username": "   ", "password": PASSWORD}, "username"),
    ({"username": "kure-ito", "password": ""}, "password"),
])
def test_empty_login_fields_ask_for_both_and_do_not_count_as_a_failed_login(web, make_user, data, empty_field):
    from app.models import LoginAttempt

    make_user(username="kure-ito")
    response = web.post("/login", data=data)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert EMPTY_LOGIN in page and LOGIN_ERROR not in page
    document = html5lib.parse(page, namespaceHTMLElements=False)
    control = document.find(f".//input[@name='{empty_field}']")
    assert control.get("aria-invalid") == "true"
    error = document.find(f".//*[@id='{control.get('aria-describedby')}']")
    assert error is not None and EMPTY_LOGIN in "".join(error.itertext())
    assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 0
    assert not is_logged_in(web)


def test_many_empty_submissions_never_throttle_the_account(web, make_user, app):
    make_user(username="kure-ito")
    for _ in range(app.config["LOGIN_FREE_FAILURES"] + 3):
        web.post("/login", data={"username": "kure-ito", "password": ""})
    assert log_in(web, "kure-ito").status_code == 302


def test_username_with_surrounding_spaces_still_logs_in(web, make_user):
    user = make_user(username="kure-sato")
    response = log_in(web, "  kure-sato ")
    assert response.status_code == 302
    assert is_logged_in(web)
    assert user.username == "kure-sato"


def test_logged_in_user_visiting_login_page_is_sent_home(web, make_user):
    user = make_user()
    log_in(web, user.username)
    response = web.get("/login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


# --- disabled accounts ------------------------------------------------------------------------

def test_disabled_account_cannot_log_in_with_its_correct_password(web, make_user):
    user = make_user()
    accounts.disable_user(user)
    db.session.commit()
    response = log_in(web, user.username)
    assert response.status_code == 200
    assert LOGIN_ERROR in response.get_data(as_text=True)
    assert not is_logged_in(web)


def test_disabling_an_account_ends_its_open_session(web, make_user):
    user = make_user()
    log_in(web, user.username)
    assert is_logged_in(web)
    accounts.disable_user(user)
    db.session.commit()
    assert not is_logged_in(web)


# --- logging out ------------------------------------------------------------------------------

def test_logout_by_post_ends_the_session_and_logging_in_again_works(web, make_user):
    user = make_user()
    log_in(web, user.username)
    assert is_logged_in(web)
    response = web.post("/logout")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "ログアウトしました。" in web.get("/login").get_data(as_text=True)
    assert not is_logged_in(web)
    assert log_in(web, user.username).status_code == 302
    assert is_logged_in(web)


def test_logout_by_get_is_not_allowed_and_keeps_the_session(web, make_user):
    user = make_user()
    log_in(web, user.username)
    response = web.get("/logout")
    assert response.status_code == 405
    assert "この方法では操作できません。" in response.get_data(as_text=True)
    assert is_logged_in(web)


# --- changing the password --------------------------------------------------------------------

def password_form(current=PASSWORD, new=NEW_PASSWORD, confirm=None) -> dict[str, str]:
    return {"current_password": current, "new_password": new,
            "confirm_password": new if confirm is None else confirm, "submit": "変更する"}


def test_password_page_requires_login(web):
    response = web.get("/account/password")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


REJECTED_CHANGES = [
    (password_form(current="not-my-password"), "current_password", "現在のパスワードが正しくありません。"),
    (password_form(current=""), "current_password", "現在のパスワードが正しくありません。"),
    (password_form(new="short"), "new_password", "パスワードは10文字以上にしてください。"),
    (password_form(new="123456789"), "new_password", "パスワードは10文字以上にしてください。"),
    (password_form(new="x" * 257), "new_password", "パスワードは256文字以内にしてください。"),
    (password_form(confirm="a-different-passphrase"), "confirm_password", "確認用のパスワードが一致しません。"),
]


def test_rejected_password_change_shows_japanese_error_and_changes_nothing(web, make_user):
    user = make_user()
    old_hash, old_token = user.password_hash, user.session_token
    log_in(web, user.username)
    for form, field, message in REJECTED_CHANGES:
        response = web.post("/account/password", data=form)
        assert response.status_code == 200, message
        page = response.get_data(as_text=True)
        assert message in page
        assert f'aria-invalid="true" id="{field}"' in page, message  # the error sits on the right field
        stored = stored_user(user.id)
        assert stored.password_hash == old_hash, message
        assert stored.session_token == old_token, message
        assert is_logged_in(web), message


def test_changed_password_replaces_the_old_one(web, new_client, make_user):
    user = make_user()
    log_in(web, user.username)
    response = web.post("/account/password", data=password_form())
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "パスワードを変更しました。" in web.get("/questions").get_data(as_text=True)
    # The client that changed it stays logged in.
    assert is_logged_in(web)

    other = new_client()
    response = log_in(other, user.username, PASSWORD)
    assert response.status_code == 200
    assert LOGIN_ERROR in response.get_data(as_text=True)
    assert log_in(other, user.username, NEW_PASSWORD).status_code == 302
    assert is_logged_in(other)
    assert accounts.verify_password(stored_user(user.id).password_hash, NEW_PASSWORD)


def test_password_change_ends_the_users_session_in_another_browser(web, new_client, make_user):
    user = make_user()
    other_user = make_user()
    second = new_client()
    bystander = new_client()
    log_in(web, user.username)
    log_in(second, user.username)
    log_in(bystander, other_user.username)
    assert is_logged_in(second) and is_logged_in(bystander)
    old_token = user.session_token

    assert web.post("/account/password", data=password_form()).status_code == 302

    assert stored_user(user.id).session_token != old_token
    assert not is_logged_in(second)
    assert is_logged_in(web)
    assert is_logged_in(bystander)  # other users' sessions are untouched


# --- ?next= -----------------------------------------------------------------------------------

def test_protected_page_sends_to_login_and_login_returns_there(web, make_user):
    user = make_user()
    response = web.get("/cases?state=draft")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    response = web.post(location, data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/cases?state=draft"


def test_next_with_a_local_path_is_followed(new_client, make_user):
    user = make_user()
    for target in ["/cases", "/questions?status=open", "/cases/1"]:
        response = log_in(new_client(), user.username, query_string={"next": target})
        assert response.status_code == 302
        assert response.headers["Location"] == target


EXTERNAL_OR_ODD_NEXT = [
    "https://evil.example/phish",
    "http://evil.example",
    "//evil.example/phish",
    "///evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "evil.example/phish",
    "/\t/evil.example",
    " //evil.example",
]


def test_next_with_an_external_or_odd_url_is_ignored(new_client, make_user):
    user = make_user()
    for target in EXTERNAL_OR_ODD_NEXT:
        web = new_client()
        response = log_in(web, user.username, query_string={"next": target})
        assert response.status_code == 302, target
        assert response.headers["Location"] == "/", target
        assert is_logged_in(web), target


def test_next_with_a_backslash_cannot_become_a_protocol_relative_url(web, make_user):
    # Browsers read "/\evil.example" as "//evil.example"; the redirect must not hand it over raw.
    user = make_user()
    response = log_in(web, user.username, query_string={"next": "/\\evil.example"})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "\\" not in location
    assert not location.startswith("//")


def test_failed_login_with_next_does_not_redirect(web, make_user):
    user = make_user()
    response = log_in(web, user.username, "wrong-password-123", query_string={"next": "/cases"})
    assert response.status_code == 200
    assert LOGIN_ERROR in response.get_data(as_text=True)

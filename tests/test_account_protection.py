"""User names have one form everywhere; sessions and API tokens end with what ended them; a login
costs the same for a name that does not exist."""
from __future__ import annotations

import argon2
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, LoginAttempt, User
from app.services import accounts
from app.services.errors import Conflict
from tests.conftest import PASSWORD, municipality


# --- one normalisation of user names ---------------------------------------------------------------

@pytest.mark.parametrize("typed", ["ｋｕｒｅ１", "KURE1", " kure1 ", "Ｋｕｒｅ1"])
def test_the_account_limit_holds_for_every_spelling_of_the_name(client, make_user, typed):
    make_user("municipal", username="kure1")
    for _ in range(5):
        client.post("/login", data={"username": "kure1", "password": "wrong-password-x"})
    response = client.post("/login", data={"username": typed, "password": PASSWORD})
    assert response.status_code == 429
    assert "一時的にログインを制限" in response.get_data(as_text=True)
    assert {row.username for row in db.session.scalars(select(LoginAttempt))} == {"kure1"}


def test_full_width_and_upper_case_names_are_the_same_account_everywhere(app, make_user, client, runner):
    make_user("municipal", username="kure1")
    with pytest.raises(Conflict):
        accounts.create_user("ＫＵＲＥ１", "another-long-secret", "municipal", municipality("呉市"))
    db.session.rollback()
    result = runner.invoke(args=["users", "disable", "Ｋｕｒｅ１"])
    assert result.exit_code == 0, result.output
    assert accounts.get_user("kure1").is_enabled is False
    created = accounts.create_user("Ｓｅｒａ．Ｔａｒｏ", "another-long-secret", "municipal", municipality("世羅町"))
    assert created.username == "sera.taro"


# --- sessions end with what ended them -------------------------------------------------------------

def _signed_in_cookie(app, user):
    client = app.test_client()
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return client, client.get_cookie("session").value


def _reads_with(app, cookie: str) -> bool:
    other = app.test_client()
    other.set_cookie("session", cookie)
    response = other.get("/questions")
    return response.status_code == 200


def test_a_session_cookie_saved_before_logout_reads_nothing_after(app, make_user):
    user = make_user("municipal")
    client, saved = _signed_in_cookie(app, user)
    _second, elsewhere = _signed_in_cookie(app, user)
    assert _reads_with(app, saved)
    client.post("/logout")
    assert not _reads_with(app, saved)
    assert not _reads_with(app, elsewhere)  # logout ends every session of the user


@pytest.mark.parametrize("ending", ["password_change", "reset", "disable", "move"])
def test_sessions_end_at_once_when_the_account_changes(app, make_user, ending):
    user = make_user("municipal")
    admin = make_user("admin")
    client, saved = _signed_in_cookie(app, user)
    _other, elsewhere = _signed_in_cookie(app, user)
    if ending == "password_change":
        response = client.post("/account/password", data={
            "current_password": PASSWORD, "new_password": "brand-new-secret-1", "confirm_password": "brand-new-secret-1"})
        assert response.status_code == 302
        assert client.get("/questions").status_code == 200  # the session that changed it goes on
    elif ending == "reset":
        accounts.reset_password(user, "brand-new-secret-1", actor=admin)
    elif ending == "disable":
        accounts.disable_user(user, actor=admin)
    else:
        accounts.assign(user, "municipal", municipality("福山市"), actor=admin)
    db.session.commit()
    assert not _reads_with(app, elsewhere)
    if ending != "password_change":
        assert not _reads_with(app, saved)


# --- API tokens -----------------------------------------------------------------------------------

def _api_ok(client, headers) -> bool:
    return client.get("/api/v1/questions", headers=headers).status_code == 200


def test_reenabling_an_account_does_not_revive_its_tokens(app, client, make_user, token_for, runner):
    user = make_user("municipal", username="kure9")
    headers = token_for(user)
    assert _api_ok(client, headers)
    assert runner.invoke(args=["users", "disable", "kure9"]).exit_code == 0
    assert not _api_ok(client, headers)
    result = runner.invoke(args=["users", "enable", "kure9"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert accounts.get_user("kure9").is_enabled
    assert not _api_ok(client, headers)
    assert all(t.revoked_at is not None for t in db.session.scalars(select(ApiToken)))
    assert _api_ok(client, token_for(accounts.get_user("kure9")))  # a new token works
    again = runner.invoke(args=["users", "enable", "kure9"])
    assert again.exit_code != 0 and "すでに有効" in again.output


@pytest.mark.parametrize("change", ["own", "reset"])
def test_a_password_change_revokes_api_tokens(app, client, make_user, token_for, change):
    user = make_user("municipal")
    headers = token_for(user)
    if change == "own":
        accounts.change_password(user, PASSWORD, "brand-new-secret-1", "brand-new-secret-1")
    else:
        accounts.reset_password(user, "brand-new-secret-1", actor=make_user("admin"))
    db.session.commit()
    assert not _api_ok(client, headers)


# --- timing -----------------------------------------------------------------------------------------

def test_a_login_costs_one_password_verification_whether_or_not_the_name_exists(client, make_user, monkeypatch):
    make_user("municipal", username="kure1")
    client.post("/login", data={"username": "nobody-here", "password": "warm-up-password"})  # makes the dummy hash once
    calls = {"hash": 0, "verify": 0}
    real_hash, real_verify = argon2.PasswordHasher.hash, argon2.PasswordHasher.verify

    def counting_hash(self, *args, **kwargs):
        calls["hash"] += 1
        return real_hash(self, *args, **kwargs)

    def counting_verify(self, *args, **kwargs):
        calls["verify"] += 1
        return real_verify(self, *args, **kwargs)

    monkeypatch.setattr(argon2.PasswordHasher, "hash", counting_hash)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    for name in ("kure1", "nobody-here", "someone-else"):
        calls.update(hash=0, verify=0)
        client.post("/login", data={"username": name, "password": "wrong-password-x"})
        assert calls == {"hash": 0, "verify": 1}, name


def test_the_admin_toggle_acts_on_what_the_admin_chose(client, make_user, login):
    user = make_user("municipal", username="kure5")
    login(make_user("admin"))
    client.post(f"/admin/users/{user.id}/toggle", data={"action": "disable"})
    # A second click from a page that still showed 「無効にする」 does not enable the account again.
    response = client.post(f"/admin/users/{user.id}/toggle", data={"action": "disable"}, follow_redirects=True)
    assert "すでに無効" in response.get_data(as_text=True)
    assert db.session.scalar(select(User.is_enabled).where(User.username == "kure5")) is False
    assert client.post(f"/admin/users/{user.id}/toggle", data={}).status_code == 400

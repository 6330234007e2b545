"""Protection: login throttling shared by all processes, password rules, the audit log."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, LoginAttempt, Municipality
from app.services import accounts
from app.services.errors import ValidationFailed
from tests.conftest import PASSWORD


def attempt(client, username, password="wrong-password-x", address="10.0.0.1"):
    return client.post("/login", data={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_repeated_failures_lock_the_account_with_a_clear_message(client, make_user):
    user = make_user("municipal", "呉市", username="kure-staff")
    for _ in range(5):
        assert attempt(client, "kure-staff").status_code == 200
    locked = attempt(client, "kure-staff", password=PASSWORD)
    assert locked.status_code == 429
    assert "一時的にログインを制限しています" in locked.get_data(as_text=True)
    # the right password does not get in while locked, and nothing was recorded for it
    assert db.session.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.succeeded)) == 0
    assert user.is_enabled


def test_one_account_failing_does_not_lock_out_colleagues_at_the_same_address(client, make_user):
    make_user("municipal", "福山市", username="fukuyama-a")
    make_user("municipal", "福山市", username="fukuyama-b")
    for _ in range(6):
        attempt(client, "fukuyama-a", address="10.1.1.1")
    assert attempt(client, "fukuyama-a", password=PASSWORD, address="10.1.1.1").status_code == 429
    assert attempt(client, "fukuyama-b", password=PASSWORD, address="10.1.1.1").status_code == 302


def test_the_lock_comes_from_the_database_so_every_process_sees_it(client, make_user):
    make_user("municipal", "呉市", username="kure-staff")
    for _ in range(6):
        db.session.add(LoginAttempt(username="kure-staff", address="10.9.9.9", succeeded=False))
    db.session.commit()  # as if another server process had recorded them
    assert attempt(client, "kure-staff", password=PASSWORD, address="10.0.0.2").status_code == 429


def test_the_delay_grows_and_expires(app, make_user):
    from app.models import utcnow
    from app.services import throttle

    with app.test_request_context():
        for n in range(5):
            db.session.add(LoginAttempt(username="x", address="a", succeeded=False))
        db.session.commit()
        first = throttle.seconds_to_wait("x", "a")
        db.session.add(LoginAttempt(username="x", address="a", succeeded=False))
        db.session.commit()
        second = throttle.seconds_to_wait("x", "a")
        assert 0 < first <= 30 and 30 < second <= 60
        for row in db.session.scalars(select(LoginAttempt)):
            db.session.delete(row)
        db.session.add(LoginAttempt(username="x", address="a", succeeded=False,
                                    created_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
        assert throttle.seconds_to_wait("x", "a") == 0


def test_one_address_guessing_many_accounts_is_throttled(app, client, make_user):
    app.config["LOGIN_FREE_FAILURES_PER_ADDRESS"] = 8
    make_user("municipal", "呉市", username="target")
    for n in range(9):
        attempt(client, f"someone{n}", address="203.0.113.7")
    assert attempt(client, "target", password=PASSWORD, address="203.0.113.7").status_code == 429
    assert attempt(client, "target", password=PASSWORD, address="198.51.100.1").status_code == 302


def test_a_success_is_recorded_and_resets_the_account_count(client, make_user):
    make_user("municipal", "呉市", username="kure-staff")
    for _ in range(4):
        attempt(client, "kure-staff", address=f"10.0.1.{_}")
    assert attempt(client, "kure-staff", password=PASSWORD, address="10.0.2.1").status_code == 302
    client.post("/logout")
    for _ in range(4):
        attempt(client, "kure-staff", address=f"10.0.3.{_}")
    assert attempt(client, "kure-staff", password=PASSWORD, address="10.0.4.1").status_code == 302
    assert db.session.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.succeeded)) == 2


@pytest.mark.parametrize("password", ["password123", "Hiroshima2024", "qwertyuiop", "aaaaaaaaaaaa", "kure-staff-2026"])
def test_common_or_guessable_passwords_are_refused(app, password):
    with pytest.raises(ValidationFailed) as error:
        accounts.create_user("kure-staff", password, "helpdesk")
    assert "password" in error.value.errors


def test_audit_log_records_account_and_neighbour_changes_and_cannot_be_changed(client, make_user, login, runner):
    admin = make_user("admin", username="root-admin")
    login(admin)
    kure = db.session.scalar(select(Municipality).where(Municipality.name == "呉市"))
    higashi = db.session.scalar(select(Municipality).where(Municipality.name == "東広島市"))
    client.post("/admin/neighbours", data={"first": kure.id, "second": higashi.id})
    runner.invoke(args=["users", "disable", "root-admin"])
    actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["user.create", "neighbour.link", "user.disable"]
    link = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "neighbour.link"))
    assert link.actor_name == "root-admin" and "呉市" in link.summary and "東広島市" in link.summary
    link.summary = "tampered"
    with pytest.raises(PermissionError):
        db.session.commit()
    db.session.rollback()
    with pytest.raises(PermissionError):
        db.session.delete(db.session.scalar(select(AuditEvent)))
        db.session.commit()
    db.session.rollback()


def test_administrators_read_the_audit_log_and_nobody_else(client, make_user, login):
    admin = make_user("admin", username="root-admin")
    login(make_user("helpdesk"))
    assert client.get("/admin/audit").status_code == 403
    login(admin)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "アカウント作成" in page and "root-admin" in page


def test_publishing_a_case_is_audited(client, make_user, make_question, token_for):
    asker = make_user("municipal", "呉市")
    desk = make_user("helpdesk", username="desk-a")
    headers = token_for(desk)
    question = make_question(asker)
    answer = client.post(f"/api/v1/questions/{question.id}/answers", headers=headers, json={"body": "a"}).get_json()
    case = client.post(f"/api/v1/questions/{question.id}/resolve", headers=headers, json={"answer_id": answer["id"]}).get_json()
    client.post(f"/api/v1/cases/{case['id']}/publish", headers=headers, json={})
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "case.publish"))
    assert event.actor_name == "desk-a" and event.target_id == str(case["id"])


def test_cli_adds_an_observer_municipality_with_a_valid_code(runner):
    result = runner.invoke(args=["municipalities", "add", "332020", "倉敷市", "--observer", "--prefecture", "岡山県"])
    assert result.exit_code == 0, result.output
    added = db.session.scalar(select(Municipality).where(Municipality.code == "332020"))
    assert added.is_observer and added.prefecture == "岡山県" and added.kind == "市"
    bad = runner.invoke(args=["municipalities", "add", "332021", "誤り市"])
    assert bad.exit_code != 0 and "検査数字" in bad.output
    duplicate = runner.invoke(args=["municipalities", "add", "342025", "呉市"])
    assert duplicate.exit_code != 0
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "municipality.add")) is not None


def test_an_idle_session_is_logged_out(app, client, make_user, login):
    login(make_user("municipal", "呉市"))
    assert client.get("/questions").status_code == 200
    with client.session_transaction() as session:
        session["last_seen"] -= app.config["SESSION_IDLE_MINUTES"] * 60 + 5
    response = client.get("/questions")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/questions").status_code == 302


def test_session_cookie_is_httponly_and_samesite_lax(client, make_user):
    make_user("municipal", "呉市", username="cookie-user")
    response = client.post("/login", data={"username": "cookie-user", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_usernames_are_lower_case_and_unique_whatever_the_case(app, make_user):
    make_user("municipal", "呉市", username="kure1x")
    from app.services.errors import Conflict

    with pytest.raises(Conflict):
        accounts.create_user("KURE1X", "long-enough-secret", "municipal",
                             db.session.scalar(select(Municipality).where(Municipality.name == "呉市")))
    with pytest.raises(ValidationFailed):
        accounts.create_user("呉市 職員", "long-enough-secret", "helpdesk")
    assert accounts.get_user("ＫＵＲＥ1x").username == "kure1x"


def test_a_full_width_municipality_code_is_refused(app):
    from app.services.municipalities import add_municipality, is_valid_code

    assert not is_valid_code("３４２０２５")
    with pytest.raises(ValidationFailed):
        add_municipality("３４２０２５x", "どこか市")

"""Administrator pages (neighbour links, categories), configuration and CSRF."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import Category, NeighbourLink
from app.models.municipality import neighbour_ids
from config import ProductionConfig, TestingConfig
from tests.conftest import municipality


def test_admin_links_and_unlinks_neighbours_symmetrically(client, make_user, login):
    login(make_user("admin"))
    kure, higashi = municipality("呉市"), municipality("東広島市")
    response = client.post("/admin/neighbours", data={"first": higashi.id, "second": kure.id})
    assert response.status_code == 302
    assert neighbour_ids(kure.id) == {higashi.id} and neighbour_ids(higashi.id) == {kure.id}
    page = client.get("/admin/municipalities").get_data(as_text=True)
    assert "東広島市" in page and "342122" in page
    again = client.post("/admin/neighbours", data={"first": kure.id, "second": higashi.id}, follow_redirects=True)
    assert "すでに近隣です" in again.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(NeighbourLink)) == 1
    client.post(f"/admin/neighbours/{kure.id}/{higashi.id}/delete")
    assert neighbour_ids(kure.id) == set()


def test_a_municipality_cannot_be_its_own_neighbour(client, make_user, login):
    login(make_user("admin"))
    kure = municipality("呉市")
    page = client.post("/admin/neighbours", data={"first": kure.id, "second": kure.id}, follow_redirects=True)
    assert "同じ市町どうし" in page.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(NeighbourLink)) == 0


@pytest.mark.parametrize("role", ["municipal", "viewer", "helpdesk"])
def test_only_the_administrator_reaches_admin_pages(client, make_user, login, role):
    login(make_user(role))
    assert client.get("/admin/municipalities").status_code == 403
    assert client.get("/admin/categories").status_code == 403
    assert client.post("/admin/categories", data={"slug": "x1", "name": "X"}).status_code == 403


def test_admin_adds_a_category_usable_in_the_api(client, make_user, login, token_for):
    login(make_user("admin"))
    response = client.post("/admin/categories", data={"slug": "procurement", "name": "調達・契約"})
    assert response.status_code == 302
    assert db.session.scalar(select(Category).where(Category.slug == "procurement")).name == "調達・契約"
    headers = token_for(make_user("municipal", "呉市"))
    created = client.post("/api/v1/questions", headers=headers,
                          json={"title": "見積の妥当性", "body": "b", "category": "調達・契約"})
    assert created.status_code == 201 and created.get_json()["category"] == "procurement"


def test_invalid_category_keeps_the_input_and_says_why(client, make_user, login):
    login(make_user("admin"))
    page = client.post("/admin/categories", data={"slug": "Bad Slug", "name": "ネットワーク"}).get_data(as_text=True)
    assert "識別子は英小文字で始まる" in page
    assert "分類「ネットワーク」はすでにあります" in page
    assert 'value="Bad Slug"' in page
    assert db.session.scalar(select(func.count()).select_from(Category)) == 4


def test_production_refuses_to_start_without_a_real_secret_key(monkeypatch):
    monkeypatch.delenv("FLASK_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="secret key"):
        create_app(ProductionConfig)
    monkeypatch.setenv("FLASK_SECRET_KEY", "short")
    with pytest.raises(RuntimeError):
        create_app(ProductionConfig)


def test_production_starts_with_a_secret_key_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASK_SECRET_KEY", "x" * 64)
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'p.db'}")
    monkeypatch.setenv("FLASK_SEARCH_INDEX_DIR", str(tmp_path / "idx"))
    app = create_app(ProductionConfig)
    assert app.config["SECRET_KEY"] == "x" * 64
    assert app.config["SEARCH_INDEX_DIR"] == str(tmp_path / "idx")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["ALLOW_DEMO_CONTENT"] is False


def test_production_config_refuses_demo_content(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASK_SECRET_KEY", "y" * 64)
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'p.db'}")
    app = create_app(ProductionConfig)
    with app.app_context():
        db.create_all()
    result = app.test_cli_runner().invoke(args=["content", "load", "--demo"])
    assert result.exit_code != 0
    assert "デモデータ" in result.output
    with app.app_context():
        assert db.session.execute(db.text("select count(*) from users")).scalar() == 0
        db.engine.dispose()


def test_forms_refuse_a_post_without_csrf_token(tmp_path, make_user):
    class Config(TestingConfig):
        WTF_CSRF_ENABLED = True
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'csrf.db'}"

    app = create_app(Config)
    with app.app_context():
        db.create_all()
        response = app.test_client().post("/login", data={"username": "a", "password": "b"})
        assert response.status_code == 400
        assert "再読み込み" in response.get_data(as_text=True)
        db.engine.dispose()


def test_html_pages_answer_errors_in_japanese(client, make_user, login):
    login(make_user("municipal", "呉市"))
    response = client.get("/questions/999999")
    assert response.status_code == 404
    assert "ページが見つかりません" in response.get_data(as_text=True)


def test_pages_send_a_strict_content_security_policy_and_security_headers(client):
    response = client.get("/login")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_no_template_has_inline_script_or_style():
    from pathlib import Path

    for path in Path(__file__).resolve().parent.parent.joinpath("app").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert "<script>" not in text and " style=" not in text and " onclick=" not in text, path


def test_admin_creates_moves_resets_and_disables_accounts_with_access_following_at_once(client, make_user, login, token_for):
    from app.models import AuditEvent, User

    admin = make_user("admin", username="root-admin")
    login(admin)
    kure = municipality("呉市")
    response = client.post("/admin/users", data={
        "username": "kure-new", "display_name": "呉市 新任", "role": "municipal",
        "municipality": str(kure.id), "password": "long-enough-secret"})
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.username == "kure-new"))
    assert user.municipality.name == "呉市"
    headers = token_for(user)
    created = client.post("/api/v1/questions", headers=headers, json={"title": "t", "body": "b", "category": "network"})
    qid = created.get_json()["id"]

    # April rotation: moved to 福山市, the 呉市 thread is out of reach at once.
    response = client.post(f"/admin/users/{user.id}", data={
        "assign-role": "municipal", "assign-municipality": str(municipality("福山市").id), "assign-submit": "1"})
    assert response.status_code == 302
    assert client.get(f"/api/v1/questions/{qid}", headers=headers).status_code == 404

    response = client.post(f"/admin/users/{user.id}", data={"password-password": "short", "password-submit": "1"})
    assert "10文字以上" in response.get_data(as_text=True)
    client.post(f"/admin/users/{user.id}", data={"password-password": "another-long-secret", "password-submit": "1"})
    client.post(f"/admin/users/{user.id}/toggle", data={"action": "disable"})
    db.session.refresh(user)
    assert not user.is_enabled
    assert client.get("/api/v1/questions", headers=headers).status_code == 401
    actions = [e.action for e in db.session.scalars(select(AuditEvent).where(AuditEvent.target_id == str(user.id)))]
    assert {"user.create", "user.assign", "user.reset_password", "user.disable"} <= set(actions)


def test_admin_cannot_make_an_observer_staffer_a_municipal_user(client, make_user, login):
    login(make_user("admin"))
    page = client.post("/admin/users", data={
        "username": "kasaoka-x", "role": "municipal", "municipality": str(municipality("笠岡市").id),
        "password": "long-enough-secret"}).get_data(as_text=True)
    assert "オブザーバー団体の職員は閲覧者" in page
    assert 'value="kasaoka-x"' in page


def test_admin_adds_an_observer_and_edits_group_members_with_access_following(client, make_user, login):
    from app.models import AuditEvent, MunicipalityGroup
    from app.models.municipality import sharing_partner_ids

    login(make_user("admin"))
    client.post("/admin/municipalities", data={"code": "332020", "name": "倉敷市", "prefecture": "岡山県", "observer": "y"})
    kurashiki = municipality("倉敷市")
    assert kurashiki.is_observer
    group = db.session.scalar(select(MunicipalityGroup).where(MunicipalityGroup.name == "共同利用3"))
    client.post(f"/admin/groups/{group.id}/members", data={"municipality": str(kurashiki.id)})
    assert kurashiki.id in sharing_partner_ids(municipality("三次市").id)
    client.post(f"/admin/groups/{group.id}/members/{kurashiki.id}/delete")
    assert kurashiki.id not in sharing_partner_ids(municipality("三次市").id)
    actions = {e.action for e in db.session.scalars(select(AuditEvent))}
    assert {"municipality.add", "group.add", "group.remove"} <= actions
    assert "共同利用3" in client.get("/admin/groups").get_data(as_text=True)

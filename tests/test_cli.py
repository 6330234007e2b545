"""``flask users|tokens|content|municipalities`` commands, run with the ``runner`` fixture."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    ApiToken, Case, Category, Municipality, MunicipalityGroup, NeighbourLink, Question, User,
    group_members,
)
from app.services import accounts
from app.models.municipality import neighbour_ids
from tests.conftest import municipality

CLI_PASSWORD = "cli-pass-phrase-1"

HIROSHIMA = [
    "広島市", "呉市", "竹原市", "三原市", "尾道市", "福山市", "府中市", "三次市", "庄原市", "大竹市",
    "東広島市", "廿日市市", "安芸高田市", "江田島市", "府中町", "海田町", "熊野町", "坂町",
    "安芸太田町", "北広島町", "大崎上島町", "世羅町", "神石高原町",
]


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def user_named(username: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.username == username))


def create(runner, username: str, *options: str, password: str = CLI_PASSWORD):
    return runner.invoke(args=["users", "create", username, *options, "--password-stdin"], input=password + "\n")


def api_status(client, token: str) -> int:
    return client.get("/api/v1/questions", headers={"Authorization": f"Bearer {token}"}).status_code


def new_token(runner, username: str) -> str:
    result = runner.invoke(args=["tokens", "create", username])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


# --- users create -----------------------------------------------------------------------------

def test_users_create_municipal_by_name_or_code_reads_password_from_stdin(runner):
    for username, where in [("kure-by-name", "呉市"), ("kure-by-code", "342025"), ("kure-by-code5", "34202")]:
        result = create(runner, username, "--role", "municipal", "--municipality", where)
        assert result.exit_code == 0, result.output
        assert f"ユーザー {username} を作成しました: municipal (呉市)" in result.output
        user = user_named(username)
        assert user.role == "municipal"
        assert user.municipality.name == "呉市"
        assert user.is_enabled
        assert accounts.authenticate(username, CLI_PASSWORD) is not None
        assert CLI_PASSWORD not in user.password_hash


def test_users_create_stores_display_name_and_the_created_user_can_log_in(runner, client):
    result = create(runner, "kure-yamada", "--role", "municipal", "--municipality", "呉市",
                    "--display-name", "呉市 情報政策課（山田）")
    assert result.exit_code == 0, result.output
    assert user_named("kure-yamada").display_name == "呉市 情報政策課（山田）"
    response = client.post("/login", data={"username": "kure-yamada", "password": CLI_PASSWORD})
    assert response.status_code == 302


def test_users_create_helpdesk_needs_no_municipality(runner):
    result = create(runner, "desk-cli", "--role", "helpdesk")
    assert result.exit_code == 0, result.output
    user = user_named("desk-cli")
    assert user.role == "helpdesk"
    assert user.municipality is None


def test_users_create_municipal_or_viewer_without_municipality_fails_and_creates_nothing(runner):
    before = count(User)
    for role in ["municipal", "viewer"]:
        result = create(runner, "nowhere", "--role", role)
        assert result.exit_code != 0, role
        assert "市町職員と閲覧者には所属する市町が必要です。" in result.output
        assert user_named("nowhere") is None
    assert count(User) == before


def test_users_create_with_unknown_municipality_or_short_password_fails_and_creates_nothing(runner):
    before = count(User)
    result = create(runner, "lost", "--role", "municipal", "--municipality", "存在しない町")
    assert result.exit_code != 0
    assert "市町「存在しない町」が見つかりません" in result.output
    result = create(runner, "weak", "--role", "municipal", "--municipality", "呉市", password="short")
    assert result.exit_code != 0
    assert "パスワードは10文字以上にしてください。" in result.output
    result = create(runner, "empty", "--role", "helpdesk", password="")
    assert result.exit_code != 0
    assert user_named("lost") is None and user_named("weak") is None and user_named("empty") is None
    assert count(User) == before


def test_users_create_with_taken_username_fails_and_keeps_the_first_account(runner):
    assert create(runner, "twice", "--role", "municipal", "--municipality", "呉市").exit_code == 0
    before = count(User)
    result = create(runner, "twice", "--role", "helpdesk", password="another-pass-phrase")
    assert result.exit_code != 0
    assert "ユーザー名「twice」はすでに使われています。" in result.output
    assert count(User) == before
    user = user_named("twice")
    assert user.role == "municipal"
    assert accounts.verify_password(user.password_hash, CLI_PASSWORD)


def test_users_create_refuses_municipal_role_for_observer_but_allows_viewer(runner):
    result = create(runner, "kasaoka-staff", "--role", "municipal", "--municipality", "笠岡市")
    assert result.exit_code != 0
    assert "オブザーバー団体の職員は閲覧者（viewer）として登録してください。" in result.output
    assert user_named("kasaoka-staff") is None
    result = create(runner, "kasaoka-viewer", "--role", "viewer", "--municipality", "笠岡市")
    assert result.exit_code == 0, result.output
    assert user_named("kasaoka-viewer").municipality.name == "笠岡市"


def test_users_create_rejects_an_unknown_role(runner):
    result = create(runner, "boss", "--role", "superuser")
    assert result.exit_code == 2
    assert user_named("boss") is None


# --- users list / disable ---------------------------------------------------------------------

def test_users_list_shows_role_municipality_and_state_sorted_by_name(runner, make_user):
    make_user("municipal", "呉市", username="b-kure")
    desk = make_user("helpdesk", None, username="a-desk")
    accounts.disable_user(desk)
    db.session.commit()
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == ["a-desk\thelpdesk\t-\t無効\t", "b-kure\tmunicipal\t呉市\t有効\t"]


def test_users_disable_blocks_login_and_ends_sessions(runner, make_user, client):
    user = make_user(username="leaving")
    old_token = user.session_token
    result = runner.invoke(args=["users", "disable", "leaving"])
    assert result.exit_code == 0, result.output
    assert "ユーザー leaving を無効にしました" in result.output
    stored = user_named("leaving")
    assert stored.is_enabled is False
    assert stored.session_token != old_token
    assert accounts.authenticate("leaving", "correct-horse-battery") is None
    assert "\t無効\t" in runner.invoke(args=["users", "list"]).output
    response = client.post("/login", data={"username": "leaving", "password": "correct-horse-battery"})
    assert response.status_code == 200
    # An unknown name is an error.
    result = runner.invoke(args=["users", "disable", "ghost"])
    assert result.exit_code != 0
    assert "ユーザー「ghost」はいません。" in result.output


# --- tokens -----------------------------------------------------------------------------------

def test_tokens_create_prints_a_working_bearer_token_as_the_last_line(runner, client, make_user, make_question):
    user = make_user("municipal", "呉市", username="api-kure")
    make_question(user, title="API で見える相談")
    token = new_token(runner, "api-kure")
    assert len(token) >= 32 and " " not in token
    response = client.get("/api/v1/questions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert [q["title"] for q in response.get_json()["results"]] == ["API で見える相談"]
    # Only the digest is stored, never the token itself.
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert row.digest == accounts.token_digest(token)
    assert token not in row.digest
    # A made-up token or a missing header is refused.
    assert api_status(client, "not-a-real-token") == 401
    assert client.get("/api/v1/questions").status_code == 401


def test_tokens_revoke_makes_the_token_answer_401_and_spares_other_users(runner, client, make_user):
    make_user(username="revoked-user")
    make_user(username="other-user")
    token = new_token(runner, "revoked-user")
    second = new_token(runner, "revoked-user")
    other = new_token(runner, "other-user")
    assert api_status(client, token) == 200
    result = runner.invoke(args=["tokens", "revoke", "revoked-user"])
    assert result.exit_code == 0, result.output
    assert "revoked-user の API トークンを 2 件失効させました。" in result.output
    assert api_status(client, token) == 401
    assert api_status(client, second) == 401
    assert api_status(client, other) == 200
    # Revoking again finds nothing left to revoke.
    assert "0 件" in runner.invoke(args=["tokens", "revoke", "revoked-user"]).output


def test_token_of_a_disabled_user_answers_401(runner, client, make_user):
    make_user(username="soon-disabled")
    token = new_token(runner, "soon-disabled")
    assert api_status(client, token) == 200
    assert runner.invoke(args=["users", "disable", "soon-disabled"]).exit_code == 0
    response = client.get("/api/v1/questions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_tokens_create_for_a_disabled_or_unknown_user_fails_and_stores_nothing(runner, make_user):
    user = make_user(username="disabled-already")
    accounts.disable_user(user)
    db.session.commit()
    result = runner.invoke(args=["tokens", "create", "disabled-already"])
    assert result.exit_code != 0
    assert "ユーザー disabled-already は無効です。" in result.output
    assert count(ApiToken) == 0
    result = runner.invoke(args=["tokens", "create", "ghost"])
    assert result.exit_code != 0
    assert "ユーザー「ghost」はいません。" in result.output
    assert count(ApiToken) == 0


# --- content load -----------------------------------------------------------------------------

def reference_counts() -> dict[str, int]:
    return {
        "municipalities": count(Municipality),
        "groups": count(MunicipalityGroup),
        "categories": count(Category),
        "members": count(group_members),
        "users": count(User),
        "questions": count(Question),
        "cases": count(Case),
    }


def test_content_load_restores_missing_rows_then_changes_nothing_the_second_time(runner):
    full = reference_counts()
    db.session.delete(db.session.scalar(select(Category).where(Category.slug == "optimization")))
    db.session.delete(municipality("井原市"))
    db.session.commit()
    assert count(Category) == full["categories"] - 1

    first = runner.invoke(args=["content", "load"])
    assert first.exit_code == 0, first.output
    assert "categories: 追加 1 / 更新 0" in first.output
    assert "municipalities: 追加 1 / 更新 0" in first.output
    assert reference_counts() == full
    assert [g.name for g in municipality("井原市").groups] == ["備後圏域"]

    second = runner.invoke(args=["content", "load"])
    assert second.exit_code == 0, second.output
    assert second.output.strip() == "変更なし（すでに最新です）"
    assert reference_counts() == full


def test_content_load_leaves_accounts_and_questions_alone(runner, make_user, make_question):
    user = make_user()
    make_question(user)
    before = reference_counts()
    assert runner.invoke(args=["content", "load"]).exit_code == 0
    assert reference_counts() == before


def demo_spec(app) -> dict:
    return json.loads((Path(app.config["CONTENT_DIR"]) / "demo" / "accounts.json").read_text(encoding="utf-8"))


def test_content_load_demo_creates_missing_demo_accounts_keeps_existing_ones_and_is_idempotent(app, runner,
                                                                                                 make_user):
    spec = demo_spec(app)
    assert len(spec["accounts"]) >= 2
    # An account that already has a demo name is left exactly as it is.
    taken = spec["accounts"][0]["username"]
    existing = make_user("municipal", "福山市", username=taken, password="my-own-secret-pass")
    users_before = count(User)

    first = runner.invoke(args=["content", "load", "--demo"])
    assert first.exit_code == 0, first.output
    created = len(spec["accounts"]) - 1
    assert f"demo accounts: 追加 {created} / 更新 0" in first.output
    assert count(User) == users_before + created
    for entry in spec["accounts"][1:]:
        user = user_named(entry["username"])
        assert user is not None, entry["username"]
        assert user.role == entry["role"]
        assert user.display_name == entry.get("display_name", "")
        assert (user.municipality.name if user.municipality else None) == entry.get("municipality")
        assert accounts.authenticate(entry["username"], spec["password"]) is not None
    stored = user_named(taken)
    assert stored.id == existing.id
    assert stored.role == "municipal" and stored.municipality.name == "福山市"
    assert accounts.verify_password(stored.password_hash, "my-own-secret-pass")
    assert not accounts.verify_password(stored.password_hash, spec["password"])
    assert "demo experts: 追加 3 / 更新 0" in first.output   # the shared pool, skills in the vocabulary
    after_first = reference_counts()

    second = runner.invoke(args=["content", "load", "--demo"])
    assert second.exit_code == 0, second.output
    assert "demo accounts" not in second.output
    assert "demo questions" not in second.output
    assert "demo experts" not in second.output
    assert reference_counts() == after_first


def test_content_load_demo_is_refused_when_demo_content_is_not_allowed(app, runner):
    app.config["ALLOW_DEMO_CONTENT"] = False
    before = count(User)
    result = runner.invoke(args=["content", "load", "--demo"])
    assert result.exit_code != 0
    assert "本番設定ではデモデータを読み込めません。" in result.output
    assert count(User) == before


# --- municipalities ---------------------------------------------------------------------------

def link_rows() -> list[tuple[str, str]]:
    db.session.expire_all()
    rows = db.session.scalars(select(NeighbourLink)).all()
    return sorted((row.low.name, row.high.name) for row in rows)


def test_municipalities_link_by_name_and_code_is_symmetric(runner):
    result = runner.invoke(args=["municipalities", "link", "呉市", "342122"])
    assert result.exit_code == 0, result.output
    assert "呉市 と 東広島市 を近隣に設定しました。" in result.output
    assert link_rows() == [("呉市", "東広島市")]
    kure, higashihiroshima = municipality("呉市"), municipality("東広島市")
    assert neighbour_ids(kure.id) == {higashihiroshima.id}
    assert neighbour_ids(higashihiroshima.id) == {kure.id}


def test_municipalities_unlink_works_in_either_order(runner):
    for pair in [("呉市", "342122"), ("342122", "呉市"), ("東広島市", "34202")]:
        assert runner.invoke(args=["municipalities", "link", "呉市", "342122"]).exit_code == 0
        assert link_rows() == [("呉市", "東広島市")]
        result = runner.invoke(args=["municipalities", "unlink", *pair])
        assert result.exit_code == 0, (pair, result.output)
        assert "呉市 と 東広島市 の近隣設定を解除しました。" in result.output or \
            "東広島市 と 呉市 の近隣設定を解除しました。" in result.output
        assert link_rows() == [], pair


def test_municipalities_link_twice_fails_in_either_order_and_keeps_one_link(runner):
    assert runner.invoke(args=["municipalities", "link", "呉市", "342122"]).exit_code == 0
    for again in [("呉市", "342122"), ("東広島市", "呉市")]:
        result = runner.invoke(args=["municipalities", "link", *again])
        assert result.exit_code != 0, again
        assert "すでに近隣です。" in result.output
        assert link_rows() == [("呉市", "東広島市")]


def test_municipalities_link_and_unlink_refuse_same_unlinked_or_unknown_municipalities(runner):
    result = runner.invoke(args=["municipalities", "link", "呉市", "342025"])
    assert result.exit_code != 0
    assert "同じ市町どうしは近隣に設定できません。" in result.output
    result = runner.invoke(args=["municipalities", "unlink", "呉市", "東広島市"])
    assert result.exit_code != 0
    assert "呉市と東広島市は近隣に設定されていません。" in result.output
    result = runner.invoke(args=["municipalities", "link", "呉市", "999999"])
    assert result.exit_code != 0
    assert "市町「999999」が見つかりません" in result.output
    assert link_rows() == []


def test_municipalities_list_shows_23_hiroshima_members_then_the_observers(app, runner):
    with (Path(app.config["CONTENT_DIR"]) / "observers.tsv").open(encoding="utf-8") as handle:
        observers = [row["name"] for row in csv.DictReader(handle, delimiter="\t")]
    assert observers  # 笠岡市, 井原市 ...
    result = runner.invoke(args=["municipalities", "list"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.output.splitlines()]
    members = [r for r in rows if r[3] == "構成市町"]
    observer_rows = [r for r in rows if r[3] == "オブザーバー"]
    assert len(members) == 23
    assert sorted(r[1] for r in members) == sorted(HIROSHIMA)
    assert all(r[0].startswith("34") and len(r[0]) == 6 for r in members)
    assert sorted(r[1] for r in observer_rows) == sorted(observers)
    assert len(rows) == 23 + len(observers)
    assert rows[: 23] == members  # members first, by code
    assert [r[0] for r in members] == sorted(r[0] for r in members)
    mihara = next(r for r in rows if r[1] == "三原市")
    assert mihara[4].startswith("グループ:")
    assert set(mihara[4].removeprefix("グループ:").split(",")) == {"共同利用2", "備後圏域"}
    assert all(r[5] == "近隣:-" for r in rows)


def test_municipalities_list_shows_a_link_on_both_sides(runner):
    assert runner.invoke(args=["municipalities", "link", "呉市", "東広島市"]).exit_code == 0
    output = runner.invoke(args=["municipalities", "list"]).output
    rows = {line.split("\t")[1]: line.split("\t") for line in output.splitlines()}
    assert rows["呉市"][5] == "近隣:東広島市"
    assert rows["東広島市"][5] == "近隣:呉市"
    assert rows["広島市"][5] == "近隣:-"


def test_imported_cases_get_a_review_date(app, runner, tmp_path):
    from app.extensions import db
    from app.models import Case

    path = tmp_path / "cases.jsonl"
    path.write_text('{"title": "取り込んだ事例", "issue": "症状", "resolution": "対応", "category": "security", '
                    '"published_at": "2025-04-01"}\n', encoding="utf-8")
    result = runner.invoke(args=["cases", "import", str(path)])
    assert result.exit_code == 0, result.output
    case = db.session.scalar(db.select(Case).where(Case.title == "取り込んだ事例"))
    assert case.review_due is not None and case.review_due.isoformat() == "2025-10-01"   # security: 6 months


def test_articles_travel_through_export_and_import(app, runner, tmp_path):
    from app.extensions import db
    from app.models import Case

    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"title": "VPN装置の脆弱性への対応", "issue": "修正版を適用してください。", "category": "security", '
        '"kind": "article", "article_type": "advisory", "visibility": "all"}\n'
        '{"title": "壊れた記事", "issue": "本文", "kind": "article", "article_type": "memo", "municipality": "呉市"}\n',
        encoding="utf-8")
    result = runner.invoke(args=["cases", "import", str(source)])
    assert result.exit_code == 1
    assert "line 2: article_type" in result.output and "line 2: municipality" in result.output
    source.write_text(source.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    assert runner.invoke(args=["cases", "import", str(source)]).exit_code == 0
    article = db.session.scalar(db.select(Case).where(Case.title == "VPN装置の脆弱性への対応"))
    assert (article.kind, article.article_type, article.municipality_id) == ("article", "advisory", None)
    exported = tmp_path / "out.jsonl"
    assert runner.invoke(args=["cases", "export", str(exported)]).exit_code == 0
    row = next(r for r in map(__import__("json").loads, exported.read_text(encoding="utf-8").splitlines())
               if r["title"] == "VPN装置の脆弱性への対応")
    assert (row["kind"], row["article_type"]) == ("article", "advisory")

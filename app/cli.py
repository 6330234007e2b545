"""``flask --app app ...`` commands: users, tokens, municipalities, content."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import Municipality, Role, User
from app.services import accounts
from app.services import municipalities as municipality_service
from app.services.errors import ServiceError


def _fail(message: str) -> None:
    click.echo(f"エラー: {message}", err=True)
    sys.exit(1)


def _service_message(error: ServiceError) -> str:
    return " ".join(error.errors.values()) or error.message


def _user_or_fail(username: str) -> User:
    user = accounts.get_user(username)
    if user is None:
        _fail(f"ユーザー「{username}」はいません。")
    return user


def _municipality_or_fail(value: str) -> Municipality:
    municipality = accounts.find_municipality(value)
    if municipality is None:
        _fail(f"市町「{value}」が見つかりません（団体コードまたは名称で指定してください）。")
    return municipality


users = AppGroup("users", help="アカウントの管理 / manage accounts")
tokens = AppGroup("tokens", help="API トークン / API tokens")
municipalities = AppGroup("municipalities", help="市町と近隣関係 / municipalities and neighbour links")
content = AppGroup("content", help="content/ の読み込み / load shipped content")


@users.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--municipality", "municipality_name", help="団体コードまたは名称")
@click.option("--display-name", default="")
@click.option("--password-stdin", is_flag=True, help="パスワードを標準入力の1行目から読む")
def users_create(username, role, municipality_name, display_name, password_stdin):
    municipality = _municipality_or_fail(municipality_name) if municipality_name else None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("パスワード", hide_input=True, confirmation_prompt=True)
    try:
        user = accounts.create_user(username, password, role, municipality, display_name=display_name)
    except ServiceError as error:
        db.session.rollback()
        _fail(_service_message(error))
    db.session.commit()
    where = f" ({user.municipality.name})" if user.municipality else ""
    click.echo(f"ユーザー {user.username} を作成しました: {user.role}{where}")


@users.command("list")
def users_list():
    rows = db.session.scalars(select(User).order_by(User.username)).all()
    for user in rows:
        state = "有効" if user.is_enabled else "無効"
        where = user.municipality.name if user.municipality else "-"
        click.echo(f"{user.username}\t{user.role}\t{where}\t{state}\t{user.display_name}")


@users.command("disable")
@click.argument("username")
def users_disable(username):
    user = _user_or_fail(username)
    accounts.disable_user(user)
    db.session.commit()
    click.echo(f"ユーザー {username} を無効にしました（ログインと API トークンは使えなくなります）。")


@tokens.command("create")
@click.argument("username")
def tokens_create(username):
    user = _user_or_fail(username)
    if not user.is_enabled:
        _fail(f"ユーザー {username} は無効です。")
    token = accounts.create_token(user)
    db.session.commit()
    click.echo(f"{username} の API トークンを作成しました。この値は二度と表示されません:")
    click.echo(token)


@tokens.command("revoke")
@click.argument("username")
def tokens_revoke(username):
    user = _user_or_fail(username)
    count = accounts.revoke_tokens(user)
    db.session.commit()
    click.echo(f"{username} の API トークンを {count} 件失効させました。")


@municipalities.command("list")
def municipalities_list():
    neighbours = municipality_service.neighbour_map()
    rows = db.session.scalars(select(Municipality).order_by(Municipality.is_observer, Municipality.code)).all()
    names = {m.id: m.name for m in rows}
    for m in rows:
        kind = "オブザーバー" if m.is_observer else "構成市町"
        groups = ",".join(g.name for g in m.groups) or "-"
        near = ",".join(sorted(names[i] for i in neighbours.get(m.id, []))) or "-"
        click.echo(f"{m.code}\t{m.name}\t{m.kind}\t{kind}\tグループ:{groups}\t近隣:{near}")


@municipalities.command("link")
@click.argument("first")
@click.argument("second")
def municipalities_link(first, second):
    a, b = _municipality_or_fail(first), _municipality_or_fail(second)
    try:
        municipality_service.link(a, b)
    except ServiceError as error:
        db.session.rollback()
        _fail(_service_message(error))
    db.session.commit()
    click.echo(f"{a.name} と {b.name} を近隣に設定しました。")


@municipalities.command("unlink")
@click.argument("first")
@click.argument("second")
def municipalities_unlink(first, second):
    a, b = _municipality_or_fail(first), _municipality_or_fail(second)
    try:
        municipality_service.unlink(a, b)
    except ServiceError as error:
        db.session.rollback()
        _fail(_service_message(error))
    db.session.commit()
    click.echo(f"{a.name} と {b.name} の近隣設定を解除しました。")


@content.command("load")
@click.option("--demo", is_flag=True, help="デモ用アカウントと相談・事例も読み込む（make run 専用）")
def content_load(demo):
    from app.content import ContentError, load_demo, load_reference

    directory = Path(current_app.config["CONTENT_DIR"])
    try:
        report = load_reference(directory)
        if demo:
            if not current_app.config.get("ALLOW_DEMO_CONTENT"):
                _fail("本番設定ではデモデータを読み込めません。")
            load_demo(directory, report)
    except (ContentError, ServiceError) as error:
        db.session.rollback()
        _fail(str(error) if isinstance(error, ContentError) else _service_message(error))
    db.session.commit()
    for line in report.lines():
        click.echo(line)


def register_cli(app: Flask) -> None:
    for group in (users, tokens, municipalities, content):
        app.cli.add_command(group)

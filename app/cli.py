"""``flask --app app ...`` commands: users, tokens, municipalities, content."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import Municipality, Role, User
from app.models.municipality import neighbour_map
from app.services import accounts
from app.services import municipalities as municipality_service
from app.services.errors import ServiceError


def _fail(message: str) -> None:
    click.echo(f"エラー: {message}", err=True)
    sys.exit(1)


def _service_message(error: ServiceError) -> str:
    return " ".join(error.errors.values()) or error.message


def _apply_index_work(procs: int = 1) -> None:
    """CLI commands apply their own index work before they exit (a failure stays queued)."""
    from app.search.sync import apply_after_commit

    apply_after_commit(procs=procs)


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
cases = AppGroup("cases", help="事例の取り込みと書き出し / import and export cases")
search = AppGroup("search", help="検索索引 / the search index")


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
    """End every session of the user and revoke its API tokens for good."""
    user = _user_or_fail(username)
    try:
        accounts.disable_user(user)
    except ServiceError as error:
        _fail(_service_message(error))
    db.session.commit()
    click.echo(f"ユーザー {user.username} を無効にしました（ログイン・セッション・API トークンは使えなくなります）。")


@users.command("enable")
@click.argument("username")
def users_enable(username):
    """Allow logins again (API tokens revoked by the disable stay revoked: create new ones)."""
    user = _user_or_fail(username)
    try:
        accounts.enable_user(user)
    except ServiceError as error:
        _fail(_service_message(error))
    db.session.commit()
    click.echo(f"ユーザー {user.username} を有効にしました。API トークンは tokens create で作り直してください。")


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
    neighbours = neighbour_map()
    rows = db.session.scalars(select(Municipality).order_by(Municipality.is_observer, Municipality.code)).all()
    names = {m.id: m.name for m in rows}
    for m in rows:
        kind = "オブザーバー" if m.is_observer else "構成市町"
        groups = ",".join(g.name for g in m.groups) or "-"
        near = ",".join(sorted(names[i] for i in neighbours.get(m.id, []))) or "-"
        click.echo(f"{m.code}\t{m.name}\t{m.kind}\t{kind}\tグループ:{groups}\t近隣:{near}")


@municipalities.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--observer", is_flag=True, help="閲覧のみのオブザーバー団体（他県の連携自治体など）")
@click.option("--kind", default=None, help="市・町・村など（省略時は名称の末尾から）")
@click.option("--prefecture", default="広島県", show_default=True)
@click.option("--roman", default="", help="ローマ字表記（ホスト名やメールのドメインに使われる綴り。空白区切りで複数可）")
def municipalities_add(code, name, observer, kind, prefecture, roman):
    """6桁の全国地方公共団体コード（検査数字つき）と名称で市町を追加する。"""
    try:
        municipality = municipality_service.add_municipality(
            code, name, kind=kind, prefecture=prefecture, observer=observer, roman_names=roman)
    except ServiceError as error:
        db.session.rollback()
        _fail(_service_message(error))
    db.session.commit()
    role = "オブザーバー団体" if municipality.is_observer else "構成市町"
    click.echo(f"{municipality.name}（{municipality.code}、{municipality.prefecture}）を{role}として追加しました。")


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
    _apply_index_work()
    for line in report.lines():
        click.echo(line)


ANALYZE_AFTER_IMPORT = 1000   # cases: the planner's statistics are refreshed at once


@cases.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="検証だけして取り込まない")
@click.option("--procs", default=min(2, os.cpu_count() or 1), show_default=True,
              help="索引作成のプロセス数（多数の事例のとき）")
def cases_import(path, dry_run, procs):
    """JSON Lines (.jsonl) または CSV (.csv; UTF-8 / BOM 付き UTF-8 / CP932) から事例を取り込む。"""
    from app.services.importing import ImportFailed, import_cases

    try:
        report = import_cases(path, dry_run=dry_run)
    except ImportFailed as error:
        db.session.rollback()
        for problem in error.problems:
            click.echo(problem, err=True)
        click.echo(f"エラーがあるため、何も取り込みませんでした（{len(error.problems)} 件）。", err=True)
        sys.exit(1)
    for line in report.skipped:
        click.echo(line)
    if dry_run:
        db.session.rollback()
        click.echo(f"検証のみ: {report.created} 件を取り込めます（取り込んでいません）。")
        return
    db.session.commit()
    if report.created >= ANALYZE_AFTER_IMPORT:
        from app.db_statistics import refresh_statistics

        refresh_statistics("cases")   # at once: autovacuum would get to it later
    _apply_index_work(procs=procs)
    click.echo(f"{report.created} 件の事例を取り込み、公開しました。")


@cases.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--state", default="published", type=click.Choice(["draft", "published", "archived"]))
def cases_export(path, state):
    """事例を .jsonl または .csv（Excel 用 BOM 付き UTF-8）に書き出す。"""
    from app.services.importing import ImportFailed, export_cases

    try:
        count = export_cases(path, state)
    except ImportFailed as error:
        _fail(error.problems[0])
    click.echo(f"{count} 件を {path} に書き出しました。")


@search.command("reindex")
@click.option("--procs", default=min(2, os.cpu_count() or 1), show_default=True, help="索引作成のプロセス数")
@click.option("--if-outdated", is_flag=True, help="索引の形式が古いとき（または索引がないとき）だけ作り直す")
def search_reindex(procs, if_outdated):
    """データベースから索引を新しい世代に作り直し、完成したら切り替える。"""
    from app.search.backend import SearchBackendError, get_backend

    try:
        backend = get_backend()
    except SearchBackendError as error:
        _fail(str(error))
    if if_outdated and not backend.outdated():
        click.echo("索引は最新の形式です。")
        return
    report = backend.reindex(procs=procs)
    click.echo(f"{report.documents} 件を索引しました（{report.seconds:.1f} 秒、途中の変更 {report.replayed} 件を反映、世代 {report.generation}）。")


@search.command("check")
def search_check():
    """索引とデータベースを比べ、違いをすべて報告する（違いがあれば終了コード 1）。"""
    from app.search.backend import SearchBackendError, get_backend

    try:
        report = get_backend().check()
    except SearchBackendError as error:
        _fail(str(error))
    if getattr(report, "index_missing", False):
        click.echo("索引がありません（flask --app app search reindex で作り直してください）。")
    for label, ids in (("索引にない", report.missing), ("索引に余分", report.extra), ("索引が古い", report.stale)):
        for case_id in ids:
            click.echo(f"{label}: 事例 #{case_id}")
    if report.pending:
        click.echo(f"未反映の索引作業: {report.pending} 件")
    if not report.ok:
        sys.exit(1)
    click.echo("索引はデータベースと一致しています。")


@search.command("sync")
@click.option("--procs", default=min(2, os.cpu_count() or 1), show_default=True,
              help="索引作成のプロセス数（多数の事例のとき）")
def search_sync(procs):
    """待ち行列にある索引作業を今すぐ反映する（失敗したものの再試行）。"""
    from app.search.sync import apply_pending

    count = apply_pending(procs=procs)
    click.echo(f"{count} 件の事例を索引に反映しました。")


notify = AppGroup("notify", help="通知メール / notification mails")


@notify.command("send")
def notify_send():
    """送信待ちの通知メールを送る（失敗したものは時間をおいて再送）。"""
    from app.services.notifications import deliver_pending, pending_mail_count

    total = {"sent": 0, "dropped": 0, "failed": 0}
    while True:
        counts = deliver_pending()
        for key in total:
            total[key] += counts[key]
        if not any(counts.values()):
            break
    click.echo(f"送信 {total['sent']}件、送らなかったもの {total['dropped']}件、失敗（再送待ち） {total['failed']}件、"
               f"残り {pending_mail_count()}件")


@notify.command("digest")
def notify_digest():
    """「毎朝まとめてメール」を選んだ人へ、まとめのメールを送る（cron や systemd timer で毎朝7:30に）。"""
    from app.services.notifications import deliver_pending, queue_digests

    queued = queue_digests()
    counts = deliver_pending(limit=max(100, queued * 2))
    click.echo(f"まとめのメール {queued}通を作成し、{counts['sent']}通を送りました（失敗 {counts['failed']}通は再送待ち）。")


@click.command("backup")
@click.argument("destination", type=click.Path(file_okay=False))
def backup_command(destination):
    """動いているインスタンスの一貫したバックアップを DESTINATION（新しいフォルダー）に作る。"""
    from app.backup import BackupError, backup

    try:
        report = backup(destination)
    except BackupError as error:
        _fail(str(error))
    counts = "、".join(f"{name} {count}" for name, count in report.counts.items())
    click.echo(f"バックアップを {report.path} に作りました（{report.database_file}、添付ファイル {report.attachments} 件；{counts}）。")
    if report.missing_attachments:
        click.echo(f"注意: 保存先に見つからない添付ファイルが {len(report.missing_attachments)} 件あります（manifest.json）。", err=True)


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
def restore_command(source):
    """SOURCE のバックアップを空のインスタンスに復元する（その後 search reindex）。"""
    from app.backup import BackupError, restore

    try:
        result = restore(source)
    except BackupError as error:
        _fail(str(error))
    counts = "、".join(f"{name} {count}" for name, count in result["counts"].items())
    click.echo(f"復元しました（{counts}；添付ファイル {result['attachments']} 件）。"
               "続けて flask --app app db upgrade と flask --app app search reindex を実行してください。")


def register_cli(app: Flask) -> None:
    for group in (users, tokens, municipalities, content, cases, search, notify):
        app.cli.add_command(group)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)

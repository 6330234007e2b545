"""``GET /healthz``: 200 when every part works, 503 when one does not.

Monitoring on the machine itself (or on an address in ``HEALTH_DETAIL_NETWORKS``) and signed-in
administrators get each part's numbers; anyone else gets only ``{"status": ...}``, because queue
lengths say how busy the help desk is. Nothing here names a case, a question or a person.
The fields are explained in docs/operations.md.
"""
from __future__ import annotations

import ipaddress
import shutil
import time
from datetime import timedelta

from flask import current_app, jsonify, request
from flask_login import current_user
from sqlalchemy import func, select, text

from app import policy
from app.extensions import db
from app.health import bp
from app.models import MailOutbox, SearchConsumer, SearchOutbox, utcnow
from app.search import sync
from app.storage import attachment_store


def _database() -> dict:
    started = time.perf_counter()
    db.session.execute(text("SELECT 1"))
    return {"ok": True, "backend": db.session.get_bind().dialect.name,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _search() -> dict:
    from app.search.backend import get_backend, postgres_active

    if postgres_active():
        # The documents are written in the same transaction as the case: nothing is ever pending.
        outdated = get_backend().outdated()
        result = {"ok": not outdated, "backend": "postgres", "pending": 0, "oldest_pending_seconds": None,
                  "outdated": outdated}
        if outdated:
            result["problem"] = "検索用の表が古い形式です（flask --app app search reindex）"
        return result
    index = sync.current_index()
    try:
        sync.ready_index(index)   # a new, empty installation gets its (empty) index here
    except sync.IndexUnavailable:
        pass
    generation = index.current_generation()
    present = index.has_generation()
    pending = sync.pending_count(index) if present else None
    name = sync.consumer_name(index) if present else None
    consumer = db.session.get(SearchConsumer, name) if name else None
    oldest = None
    if pending:
        first = db.session.scalar(select(func.min(SearchOutbox.created_at)).where(
            SearchOutbox.id.in_(sync.pending_ids(index, limit=1))))
        oldest = round((utcnow() - _utc(first)).total_seconds()) if first else None
    outdated = present and index.schema_outdated()
    lag_limit = current_app.config.get("HEALTH_INDEX_LAG_SECONDS", 300)
    ok = present and not outdated and (oldest is None or oldest <= lag_limit)
    result = {"ok": ok, "backend": "whoosh", "generation": generation if present else None, "pending": pending,
              "oldest_pending_seconds": oldest, "outdated": outdated,
              "last_error": (consumer.last_error or None) if consumer else None}
    if not present:
        result["problem"] = "索引がありません（flask --app app search reindex で作り直してください）"
    elif outdated:
        result["problem"] = "索引が古い形式です（flask --app app search reindex）"
    elif not ok:
        result["problem"] = f"索引への反映が{lag_limit}秒以上遅れています"
    return result


def _attachments() -> dict:
    store = attachment_store()
    writable = store.writable() if hasattr(store, "writable") else True
    result = {"ok": writable}
    root = getattr(store, "root", None)
    if root is not None and writable:
        usage = shutil.disk_usage(root)
        result["free_bytes"] = usage.free
        result["ok"] = usage.free >= current_app.config.get("HEALTH_MIN_FREE_BYTES", 512 * 1024 * 1024)
        if not result["ok"]:
            result["problem"] = "添付ファイルの保存先の空きが少なくなっています"
    elif not writable:
        result["problem"] = "添付ファイルの保存先に書き込めません"
    return result


def _mail() -> dict:
    waiting = (MailOutbox.sent_at.is_(None), MailOutbox.dropped == "")
    pending = db.session.scalar(select(func.count()).select_from(MailOutbox).where(*waiting)) or 0
    failing = db.session.scalar(select(func.count()).select_from(MailOutbox).where(
        *waiting, MailOutbox.attempts > 0)) or 0
    first = db.session.scalar(select(func.min(MailOutbox.created_at)).where(*waiting))
    oldest = round((utcnow() - _utc(first)).total_seconds()) if first else None
    dropped_day = db.session.scalar(select(func.count()).select_from(MailOutbox).where(
        MailOutbox.dropped == "再試行の上限に達しました", MailOutbox.created_at >= utcnow() - timedelta(days=1))) or 0
    limit = current_app.config.get("HEALTH_MAIL_LAG_SECONDS", 3600)
    ok = (oldest is None or oldest <= limit) and dropped_day == 0
    result = {"ok": ok, "pending": pending, "retrying": failing, "oldest_pending_seconds": oldest,
              "given_up_last_24h": dropped_day}
    if not ok:
        result["problem"] = "メールが送れていません（メールサーバーの設定と状態を確認してください）"
    return result


def _utc(value):
    from app.models import as_utc

    return as_utc(value)


CHECKS = {"database": _database, "search": _search, "attachments": _attachments, "mail": _mail}


def _may_see_detail() -> bool:
    if current_user.is_authenticated and policy.can_administer(current_user):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    networks = current_app.config.get("HEALTH_DETAIL_NETWORKS", ("127.0.0.0/8", "::1/128"))
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


@bp.get("/healthz")
def healthz():
    parts: dict[str, dict] = {}
    for name, check in CHECKS.items():
        try:
            parts[name] = check()
        except Exception as error:   # a part that cannot even be asked is down, and says why
            db.session.rollback()
            current_app.logger.warning("health check %s failed: %s", name, error)
            parts[name] = {"ok": False, "problem": f"{type(error).__name__}"}
            if name == "database":
                # nothing else can be asked without the database
                for other in CHECKS:
                    parts.setdefault(other, {"ok": False, "problem": "データベースに接続できません"})
                break
    healthy = all(part["ok"] for part in parts.values())
    body = {"status": "ok" if healthy else "unhealthy"}
    if _may_see_detail():
        body.update(parts)
    response = jsonify(body)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response

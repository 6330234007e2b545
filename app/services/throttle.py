"""Login throttling per account and per address, with growing delays.

Attempts are rows in the database (``login_attempts``), so every server process sees the same
counts. After ``LOGIN_FREE_FAILURES`` failures in ``LOGIN_WINDOW_MINUTES`` for an account (since its
last success), or ``LOGIN_FREE_FAILURES_PER_ADDRESS`` from one address, each further attempt must wait
30 s, then 1, 2, 4 … minutes, at most an hour, counted from the last failure.
"""
from __future__ import annotations

import math
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, or_, select

from app.extensions import db
from app.models import LoginAttempt, as_utc, utcnow
from app.services.accounts import normalise_username

MAX_DELAY_SECONDS = 3600


def _key(username: str) -> str:
    return normalise_username(username)[:64]


def seconds_to_wait(username: str, address: str) -> int:
    cfg = current_app.config
    now = utcnow()
    since = now - timedelta(minutes=cfg["LOGIN_WINDOW_MINUTES"])
    key = _key(username)
    last_success = db.session.scalar(
        select(func.max(LoginAttempt.created_at)).where(LoginAttempt.username == key, LoginAttempt.succeeded)
    )
    account_since = max(since, as_utc(last_success)) if last_success else since
    account_failures = db.session.scalar(
        select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == key, LoginAttempt.succeeded.is_(False), LoginAttempt.created_at > account_since)
    )
    address_failures = db.session.scalar(
        select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.address == address, LoginAttempt.succeeded.is_(False), LoginAttempt.created_at > since)
    )
    # An address alone gets many more tries: behind one proxy or NAT a whole town hall shares it.
    excess = max(account_failures - cfg["LOGIN_FREE_FAILURES"],
                 address_failures - cfg["LOGIN_FREE_FAILURES_PER_ADDRESS"])
    if excess < 0:
        return 0
    delay = min(MAX_DELAY_SECONDS, 30 * 2 ** excess)
    last_failure = db.session.scalar(
        select(func.max(LoginAttempt.created_at)).where(
            LoginAttempt.succeeded.is_(False), LoginAttempt.created_at > since,
            or_(LoginAttempt.username == key, LoginAttempt.address == address))
    )
    if last_failure is None:
        return 0
    remaining = (as_utc(last_failure) + timedelta(seconds=delay) - now).total_seconds()
    return max(0, math.ceil(remaining))


def record(username: str, address: str, succeeded: bool) -> None:
    db.session.add(LoginAttempt(username=_key(username), address=address[:64], succeeded=succeeded))


def wait_message(seconds: int) -> str:
    if seconds < 60:
        return f"ログインの失敗が続いたため、一時的にログインを制限しています。{seconds}秒後にもう一度お試しください。"
    return f"ログインの失敗が続いたため、一時的にログインを制限しています。約{math.ceil(seconds / 60)}分後にもう一度お試しください。"

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from app.auth import bp
from app.auth.forms import LoginForm, PasswordForm
from app.extensions import db, login_manager
from app.models import User
from app.services import accounts, throttle
from app.services.errors import ValidationFailed
from app.params import parse_int
from app.web import apply_service_error


@bp.before_app_request
def end_idle_sessions():
    """A session unused for SESSION_IDLE_MINUTES is logged out (API requests carry no session)."""
    if request.path.startswith("/api/") or request.endpoint == "static":
        return None
    now = int(time.time())
    last_seen = session.get("last_seen")
    idle = current_app.config["SESSION_IDLE_MINUTES"] * 60
    if current_user.is_authenticated and last_seen and now - last_seen > idle:
        logout_user()
        session.clear()
        flash("しばらく操作がなかったため、ログアウトしました。もう一度ログインしてください。", "warning")
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
    if current_user.is_authenticated:
        session["last_seen"] = now
    return None


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Session ids are ``<user id>:<session token>``: a password change or disable ends old sessions."""
    raw_id, _, token = session_id.partition(":")
    user_id = parse_int(raw_id)
    if user_id is None or not token:
        return None
    user = db.session.scalar(select(User).where(User.id == user_id))
    if user is None or not user.is_enabled or user.session_token != token:
        return None
    return user


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


EMPTY_LOGIN_MESSAGE = "ユーザー名とパスワードを入力してください。"


def _login_fields(username: str, address: str, outcome: str, **more) -> dict:
    """A login's log fields (``ctx_*`` become keys of the JSON line, app/request_log.py)."""
    fields = {"ctx_event": "login", "ctx_outcome": outcome, "ctx_username": username.strip()[:100],
              "ctx_address": address}
    fields.update({f"ctx_{key}": value for key, value in more.items()})
    return fields


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home"))
    form = LoginForm()
    if form.validate_on_submit():
        username, address = form.username.data or "", request.remote_addr or "-"
        if not username.strip() or not form.password.data:
            # Nothing to check: not a failed login, so the throttle does not count it.
            empty = form.username if not username.strip() else form.password
            empty.errors = [EMPTY_LOGIN_MESSAGE]
            return render_template("auth/login.html", form=form)
        wait = throttle.seconds_to_wait(username, address)
        if wait:
            current_app.logger.warning("login throttled", extra=_login_fields(username, address, "throttled", wait=wait))
            form.password.errors = [throttle.wait_message(wait)]
            return render_template("auth/login.html", form=form), 429
        user = accounts.authenticate(username, form.password.data or "")
        throttle.record(username, address, succeeded=user is not None)
        db.session.commit()
        if user is None:
            current_app.logger.warning("login failed", extra=_login_fields(username, address, "failure"))
            form.password.errors = ["ユーザー名またはパスワードが正しくないか、アカウントが無効です。"]
        else:
            session.clear()  # a fresh session at login
            login_user(user)
            session.permanent = True
            current_app.logger.info("login ok", extra=_login_fields(user.username, address, "success", user_id=user.id))
            flash("ログインしました。", "success")
            return redirect(_safe_next(request.args.get("next")) or url_for("home"))
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    """Ends every session of the user: a copy of the cookie saved before reads nothing after."""
    accounts.end_sessions(current_user)
    db.session.commit()
    logout_user()
    session.clear()
    flash("ログアウトしました。", "success")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(
                current_user, form.current_password.data, form.new_password.data, form.confirm_password.data
            )
        except ValidationFailed as error:
            db.session.rollback()
            apply_service_error(form, error)
        else:
            db.session.commit()
            login_user(current_user._get_current_object())  # the session id follows the new token
            flash("パスワードを変更しました。", "success")
            return redirect(url_for("home"))
    return render_template("auth/password.html", form=form)

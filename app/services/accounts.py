"""Accounts: password hashing (argon2id), users and API tokens."""
from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import ROLES_WITH_MUNICIPALITY, ApiToken, Municipality, Role, User, utcnow
from app.services import audit, notifications
from app.services.errors import Conflict, ValidationFailed
from app.services.locking import lock_for_update

# A password to verify against when the user does not exist: one argon2 verification either way,
# so the time a login takes does not tell whether the name exists.
_DUMMY_PASSWORD = "not-a-real-password"
_dummy_hashes: dict[tuple[int, int, int], str] = {}


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(
        time_cost=cfg["ARGON2_TIME_COST"],
        memory_cost=cfg["ARGON2_MEMORY_COST"],
        parallelism=cfg["ARGON2_PARALLELISM"],
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def _dummy_hash() -> str:
    """A hash with this configuration's parameters, made once per process."""
    cfg = current_app.config
    key = (cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_COST"], cfg["ARGON2_PARALLELISM"])
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hash_password(_DUMMY_PASSWORD)
    return _dummy_hashes[key]


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=4)
def _common_passwords(path: str) -> frozenset[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return frozenset()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def common_passwords() -> frozenset[str]:
    """The list shipped in content/security/common-passwords.txt."""
    return _common_passwords(str(Path(current_app.config["CONTENT_DIR"]) / "security" / "common-passwords.txt"))


def password_problem(password: str, username: str | None = None) -> str | None:
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if not isinstance(password, str) or len(password) < minimum:
        return f"パスワードは{minimum}文字以上にしてください。"
    if len(password) > 256:
        return "パスワードは256文字以内にしてください。"
    lowered = password.lower()
    if lowered in common_passwords() or (len(set(lowered)) <= 2):
        return "よく使われる・推測しやすいパスワードは使えません。別のパスワードにしてください。"
    if username and username.lower() in lowered:
        return "ユーザー名を含むパスワードは使えません。"
    return None


def new_session_token() -> str:
    return secrets.token_hex(16)


def find_municipality(value: str | None) -> Municipality | None:
    """A municipality by its 6-digit code, its 5-digit code or its name."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and len(value) == 5:
        return db.session.scalar(select(Municipality).where(Municipality.code.startswith(value)))
    return db.session.scalar(
        select(Municipality).where((Municipality.code == value) | (Municipality.name == value))
    )


USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def normalise_username(username) -> str:
    """The one form of a user name that is stored and compared everywhere (login, throttling,
    creation, administration): NFKC (ｋｕｒｅ１ → kure1), case folded, trimmed."""
    if not isinstance(username, str):
        return ""
    return unicodedata.normalize("NFKC", username).casefold().strip()


def get_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == normalise_username(username)))


def create_user(username: str, password: str, role: str, municipality: Municipality | None = None,
                display_name: str = "", actor: User | None = None) -> User:
    errors: dict[str, str] = {}
    username = normalise_username(username)
    if not USERNAME.fullmatch(username):
        errors["username"] = "ユーザー名は半角の英小文字・数字・「.」「_」「-」で、64文字以内にしてください。"
    elif get_user(username) is not None:
        raise Conflict(f"ユーザー名「{username}」はすでに使われています。")
    try:
        role_enum = Role(role)
    except ValueError:
        errors["role"] = "役割は municipal・helpdesk・viewer・admin・expert のいずれかです。"
        role_enum = None
    if role_enum in ROLES_WITH_MUNICIPALITY and municipality is None:
        errors["municipality"] = "市町職員と閲覧者には所属する市町が必要です。"
    if role_enum is Role.MUNICIPAL and municipality is not None and municipality.is_observer:
        errors["municipality"] = "オブザーバー団体の職員は閲覧者（viewer）として登録してください。"
    problem = password_problem(password, username)
    if problem:
        errors["password"] = problem
    if errors:
        raise ValidationFailed(errors)
    user = User(
        username=username,
        display_name=display_name,
        password_hash=hash_password(password),
        role=role_enum.value,
        municipality=municipality if role_enum in ROLES_WITH_MUNICIPALITY else None,
        is_enabled=True,
        session_token=new_session_token(),
    )
    db.session.add(user)
    db.session.flush()
    where = f"（{user.municipality.name}）" if user.municipality else ""
    audit.record(actor, "user.create", user, f"{user.username}: {user.role}{where}")
    return user


def authenticate(username: str, password: str) -> User | None:
    user = get_user(username)
    if user is None:
        verify_password(_dummy_hash(), password or "")
        return None
    if not verify_password(user.password_hash, password or ""):
        return None
    if not user.is_enabled:
        return None
    return user


def change_password(user: User, current: str, new: str, confirm: str) -> None:
    errors: dict[str, str] = {}
    if not verify_password(user.password_hash, current or ""):
        errors["current_password"] = "現在のパスワードが正しくありません。"
    problem = password_problem(new, user.username)
    if problem:
        errors["new_password"] = problem
    elif new != confirm:
        errors["confirm_password"] = "確認用のパスワードが一致しません。"
    if errors:
        raise ValidationFailed(errors)
    user.password_hash = hash_password(new)
    end_sessions(user)
    _revoke(user)
    db.session.flush()
    audit.record(user, "user.password", user, f"{user.username}（他のセッションと API トークンを終了）")


def assign(user: User, role: str, municipality: Municipality | None, actor: User | None = None,
           display_name: str | None = None) -> None:
    """Change a user's role and municipality (the April staff rotation); access follows at once,
    because every request reads the user's role and municipality afresh."""
    errors: dict[str, str] = {}
    try:
        role_enum = Role(role)
    except ValueError:
        raise ValidationFailed({"role": "役割は municipal・helpdesk・viewer・admin・expert のいずれかです。"}) from None
    if role_enum in ROLES_WITH_MUNICIPALITY and municipality is None:
        errors["municipality"] = "市町職員と閲覧者には所属する市町が必要です。"
    if role_enum is Role.MUNICIPAL and municipality is not None and municipality.is_observer:
        errors["municipality"] = "オブザーバー団体の職員は閲覧者（viewer）にしてください。"
    if display_name is not None and len(display_name.strip()) > 100:
        errors["display_name"] = "表示名は100文字以内にしてください。"
    if errors:
        raise ValidationFailed(errors)
    if display_name is not None and display_name.strip() != user.display_name:
        audit.record(actor, "user.assign", user, f"{user.username}: 表示名「{user.display_name}」→「{display_name.strip()}」")
        user.display_name = display_name.strip()
    before = f"{user.role}/{user.municipality.name if user.municipality else '-'}"
    user.role = role_enum.value
    user.municipality = municipality if role_enum in ROLES_WITH_MUNICIPALITY else None
    db.session.flush()
    after = f"{user.role}/{user.municipality.name if user.municipality else '-'}"
    if before != after:
        end_sessions(user)  # pages open in another municipality's name end with the move
        audit.record(actor, "user.assign", user, f"{user.username}: {before} → {after}")
        notifications.account_changed(user, actor, f"役割・所属: {_role_place(before)} → {_role_place(after)}")


def _role_place(value: str) -> str:
    role, _, place = value.partition("/")
    try:
        role = Role(role).label
    except ValueError:
        pass
    return f"{role}（{place}）" if place and place != "-" else role


def reset_password(user: User, new: str, actor: User | None = None) -> None:
    problem = password_problem(new, user.username)
    if problem:
        raise ValidationFailed({"password": problem})
    user.password_hash = hash_password(new)
    end_sessions(user)
    _revoke(user)
    db.session.flush()
    audit.record(actor, "user.reset_password", user, user.username)


def end_sessions(user: User) -> None:
    """End every session of the user at once (each request checks the user's session token)."""
    user.session_token = new_session_token()


def enable_user(user: User, actor: User | None = None) -> None:
    """Log in again is possible; API tokens revoked by the disable stay revoked."""
    lock_for_update(user)
    if user.is_enabled:
        raise Conflict(f"{user.username} はすでに有効です。")
    user.is_enabled = True
    db.session.flush()
    audit.record(actor, "user.enable", user, user.username)


def disable_user(user: User, actor: User | None = None) -> None:
    """No more logins; every session ends and every API token is revoked for good."""
    lock_for_update(user)
    if not user.is_enabled:
        raise Conflict(f"{user.username} はすでに無効です。")
    user.is_enabled = False
    end_sessions(user)
    count = _revoke(user)
    db.session.flush()
    audit.record(actor, "user.disable", user, f"{user.username}（API トークン {count}件を失効）")


# --- API tokens -------------------------------------------------------------------------------

def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(user: User) -> str:
    """A new random token for the user; only its digest is stored."""
    token = secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, digest=token_digest(token)))
    db.session.flush()
    audit.record(None, "token.create", user, user.username)
    return token


def _revoke(user: User) -> int:
    """Revoke the user's API tokens (returns how many) and stop the personal feed's address: the
    feed is a credential too (it reads the user's cases), so it ends wherever the tokens do."""
    user.feed_token_digest = None
    count = 0
    for token in user.tokens:
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            count += 1
    return count


def revoke_tokens(user: User) -> int:
    count = _revoke(user)
    db.session.flush()
    audit.record(None, "token.revoke", user, f"{user.username}: {count}件")
    return count


def user_for_token(token: str) -> User | None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.digest == token_digest(token)))
    if row is None or row.revoked_at is not None or not row.user.is_enabled:
        return None
    return row.user


# --- the personal feed's token -------------------------------------------------------------------

def renew_feed_token(user: User) -> str:
    """A new token for the user's Atom feed (the old address stops working); only its digest is kept."""
    token = secrets.token_urlsafe(24)
    user.feed_token_digest = token_digest(token)
    db.session.flush()
    return token


def user_for_feed_token(token: str) -> User | None:
    if not token or len(token) > 100:
        return None
    user = db.session.scalar(select(User).where(User.feed_token_digest == token_digest(token)))
    return user if user is not None and user.is_enabled else None


EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")


def set_email(user: User, value, actor: User | None = None) -> None:
    """The address notification mails go to (empty: none)."""
    email = unicodedata.normalize("NFKC", value or "").strip() if isinstance(value, str) else ""
    if email and (len(email) > 254 or not EMAIL.fullmatch(email)):
        raise ValidationFailed({"email": "メールアドレスの形式が正しくありません（例: taro@city.kure.lg.jp）。"})
    if email != user.email:
        user.email = email
        db.session.flush()
        audit.record(actor or user, "user.email", user, f"{user.username}: 通知先メールアドレスを{'設定' if email else '削除'}")

"""Small helpers shared by the page blueprints (not the API)."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import abort, flash, request
from flask_login import current_user, login_required
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from app.extensions import db
from app.models import Category
from app.params import MAX_DB_INT, int_param
from app.services.errors import ServiceError


def apply_service_error(form, error: ServiceError) -> None:
    """Show a service's errors on the form fields they belong to, or as a flash message."""
    unplaced = []
    for field_name, message in error.errors.items():
        field = getattr(form, field_name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [message]
        else:
            unplaced.append(message)
    if unplaced or not error.errors:
        flash(" ".join(unplaced) or error.message, "error")
    else:
        flash(error.message, "error")


def role_required(check):
    """Require a logged-in user for whom ``check(user)`` is true; otherwise 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not check(current_user):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def uploads_from(field_name: str) -> list:
    """The files a form field brought (browsers send an empty part when none was chosen)."""
    from app.services.attachments import Upload

    return [Upload(f.filename or "", f.read()) for f in request.files.getlist(field_name) if f and f.filename]


def page_arg() -> int:
    """The ``page`` of a list page (1 to MAX_PAGE; otherwise a 400 with a Japanese message)."""
    return int_param(request.args, "page", "ページ", 1)


def id_arg(name: str, label: str) -> int | None:
    """An optional id in the query string (a filter); a malformed one is a 400."""
    return int_param(request.args, name, label, None, maximum=MAX_DB_INT)


def category_choices() -> list[SelectChoice]:
    categories = db.session.scalars(select(Category).order_by(Category.sort_order, Category.id))
    return [SelectChoice("", "選択してください")] + [SelectChoice(c.slug, c.name) for c in categories]


def commit_or_flash(action, success, error_status_aborts=(403,)):
    """Run one service call for a form post: commit and flash ``success`` (a message, or a function
    of the result), or roll back and flash the service's error. Returns whether it succeeded."""
    try:
        result = action()
    except ServiceError as error:
        db.session.rollback()
        if error.status in error_status_aborts:
            abort(error.status)
        flash(" ".join(error.errors.values()) or error.message, "error")
        return False
    db.session.commit()
    flash(success(result) if callable(success) else success, "success")
    return True


def local_path(target: str | None) -> str | None:
    """``target`` if it is a path on this site (for "back" and "next" links), else None: no scheme
    or host, not ``//host`` and no backslash (browsers read ``/\\host`` as ``//host``)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target

"""Bearer-token authentication for the API: no cookies, no sessions."""
from __future__ import annotations

from functools import wraps

from flask import g, request

from app.api.errors import ApiError
from app.services.accounts import user_for_token


def token_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "Authorization: Bearer <token> ヘッダーが必要です。")
        user = user_for_token(token.strip())
        if user is None:
            raise ApiError(401, "unauthorized", "トークンが無効です。")
        g.api_user = user
        return view(*args, **kwargs)

    return wrapped


def api_user():
    return g.api_user

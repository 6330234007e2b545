"""Structured logs: one JSON object per line on standard error, for journald, Fluent Bit or a file.

Every request gets an id (nginx's ``X-Request-ID`` when it sends a well-formed one, else a new
one), returned in the ``X-Request-ID`` header and written on every log line of the request, so a
user's complaint ("an error at 10:41") leads to the one line with the stack trace. A request line
holds the route's *rule* (``/feed/<token>``), never the path or the query: paths carry feed and
unsubscribe tokens and queries carry what people searched for.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, g, has_request_context, request
from sqlalchemy import inspect as sa_inspect

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
REQUEST_FIELDS = ("request_id", "user_id", "municipality", "route", "method", "status", "duration_ms")
log = logging.getLogger("app.requests")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            data["request_id"] = g.request_id
            user_id = _user_id(g.get("_login_user"))
            if user_id is not None:
                data["user_id"] = user_id
        for key, value in record.__dict__.items():
            if key.startswith("ctx_"):
                data[key[4:]] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def _user_id(user) -> int | None:
    """The signed-in user's id without touching the database (the row may be expired)."""
    if user is None:
        return None
    # Not ``is_authenticated``: it reads ``is_enabled``, which loads an expired row (and failed
    # while the request's transaction was being rolled back). The anonymous user is not mapped.
    state = sa_inspect(user, raiseerr=False)
    identity = state.identity if state is not None else None
    return identity[0] if identity else None


class TextFormatter(logging.Formatter):
    """Plain lines for a developer's terminal, the same fields appended as key=value."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{key[4:]}={value}" for key, value in record.__dict__.items() if key.startswith("ctx_"))
        return f"{line} {extra}" if extra else line


class _StandardErrorHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, gunicorn's redirect)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure_logging(app: Flask) -> None:
    """The ``app`` logger tree (the app's own logger, services, search, requests) writes JSON lines
    at ``LOG_LEVEL``; ``LOG_FORMAT = "text"`` gives plain lines for a developer's terminal."""
    root = logging.getLogger("app")
    for handler in list(root.handlers):
        if isinstance(handler, _StandardErrorHandler):
            root.removeHandler(handler)
    handler = _StandardErrorHandler()
    if app.config.get("LOG_FORMAT", "json") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root.addHandler(handler)
    root.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    root.propagate = app.config.get("LOG_PROPAGATE", False)

    @app.before_request
    def start_request():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response):
        if "request_id" not in g:
            return response
        response.headers["X-Request-ID"] = g.request_id
        if request.endpoint == "static" and response.status_code < 400:
            return response   # stylesheets and scripts would drown the log
        user = g.get("_login_user")
        user_id = _user_id(user)
        try:
            municipality = user.municipality.code if user_id and user.municipality is not None else None
        except Exception:   # the session failed with the request: the line is still written
            municipality = None
        fields = {
            "ctx_user_id": user_id,
            "ctx_municipality": municipality,
            "ctx_route": request.url_rule.rule if request.url_rule is not None else None,
            "ctx_method": request.method,
            "ctx_status": response.status_code,
            "ctx_duration_ms": round((time.perf_counter() - g.request_started) * 1000, 1),
        }
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        log.log(level, "request", extra=fields)
        return response

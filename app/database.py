"""Database connection settings that belong to the engine, not to a query.

SQLite (the embedded default) is opened the way several gunicorn workers need it:

- ``journal_mode=WAL``: readers never wait for the writer and the writer never waits for readers;
- ``busy_timeout``: a writer waits for the one before it instead of failing with "database is locked";
- ``synchronous=NORMAL`` (safe with WAL: a committed transaction survives the process being killed;
  only a power cut can lose the last ones);
- ``foreign_keys=ON``: the ``ondelete`` rules of the models are enforced, as PostgreSQL does.

PostgreSQL connections are checked before use (``pool_pre_ping``), so that after a database
restart the pool drops dead connections instead of failing the next request.
"""
from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine


def engine_options(uri: str, configured: dict) -> dict:
    """``SQLALCHEMY_ENGINE_OPTIONS`` with the defaults a deployment needs (configured keys win)."""
    options = dict(configured or {})
    if uri.startswith("postgresql"):
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_recycle", 1800)
    return options


def configure_engine(engine: Engine, busy_timeout_ms: int, wal: bool = True) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal and engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()


def register_quiet_session_close(app) -> None:
    """Close each request's session without letting a dead connection fail the response.

    When PostgreSQL restarts, the ROLLBACK that closing a session sends can itself fail
    (``AdminShutdown``) after the response was made; Flask-SQLAlchemy's own teardown would then
    turn it into gunicorn's bare error page. This teardown runs first (teardowns run in reverse
    order of registration): it closes the session, or invalidates its connections when closing
    fails, so the pool replaces them and the next request works."""
    import logging

    from app.extensions import db

    log = logging.getLogger("app.database")

    @app.teardown_appcontext
    def close_session_quietly(_error):
        try:
            db.session.remove()
        except Exception as error:   # the connection is gone: drop it instead of rolling back
            log.warning("database connection lost while closing the session: %s", type(error).__name__)
            try:
                db.session.registry().invalidate()
            except Exception:
                pass
            try:
                db.session.remove()
            except Exception:
                pass

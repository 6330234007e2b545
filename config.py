"""Configuration classes. Every key can be overridden from the environment with the
``FLASK_`` prefix (``FLASK_SQLALCHEMY_DATABASE_URI``, ``FLASK_SEARCH_INDEX_DIR``,
``FLASK_SECRET_KEY`` ...), applied by ``create_app`` after the class is loaded."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSECURE_DEV_KEY = "dev-only-insecure-key-change-me"


class Config:
    SECRET_KEY = INSECURE_DEV_KEY
    SQLALCHEMY_DATABASE_URI = f"sqlite:///{BASE_DIR / 'instance' / 'helpdesk.db'}"
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    SQLITE_BUSY_TIMEOUT_MS = 15_000     # a writer waits this long for the one before it (app/database.py)
    SQLITE_WAL = True
    SEARCH_INDEX_DIR = str(BASE_DIR / "search_index")
    SEARCH_BACKEND = "whoosh"   # or "postgres": the search_documents table of a PostgreSQL database (app/search/backend.py)
    # The postgres backend's RUM index (extension ``rum``) for ranked top-N: off unless asked for. Under
    # the load test at 100,000 cases rum 1.3 (Debian postgresql-15-rum) crashed PostgreSQL backends
    # (segfaults in rum.so, "invalid compression method id 2"); GIN alone gives the same results.
    SEARCH_USE_RUM = False
    # Whoosh backend, per process (each gunicorn worker): what the searches of the current index
    # version have computed (postings, per-scope scores) and the decoded postings of index segments
    # (kept across versions). Too small, and every page computes its words again (docs/performance.md).
    SEARCH_CACHE_MB = 384
    SEARCH_SEGMENT_CACHE_MB = 384
    CONTENT_DIR = str(BASE_DIR / "content")
    # Attachments: outside the web root; shared storage (NFS) when several servers run.
    ATTACHMENT_DIR = str(BASE_DIR / "instance" / "attachments")
    ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024        # per file
    ATTACHMENT_MAX_POST_BYTES = 30 * 1024 * 1024   # per post (all its files)
    MAX_CONTENT_LENGTH = 32 * 1024 * 1024          # a whole request: a post's files and its text
    MAX_BODY_CHARS = 100_000
    MAX_TITLE_CHARS = 200
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    PERMANENT_SESSION_LIFETIME = timedelta(hours=8)
    SESSION_IDLE_MINUTES = 60  # no request for this long: logged out
    PASSWORD_MIN_LENGTH = 10
    LOGIN_FREE_FAILURES = 5
    LOGIN_FREE_FAILURES_PER_ADDRESS = 30
    # Number of reverse proxies in front of the app (gunicorn behind nginx: 1), so that the client
    # address used by login throttling is the real one (X-Forwarded-For).
    TRUSTED_PROXIES = 0
    LOGIN_WINDOW_MINUTES = 15
    # argon2id parameters (memory-hard); the testing config lowers them for speed.
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST = 64 * 1024
    ARGON2_PARALLELISM = 2
    PER_PAGE = 20
    # Notification mails (app/mail.py): "folder" writes them to MAIL_DIR (development), "smtp" sends.
    MAIL_BACKEND = "folder"
    MAIL_DIR = str(BASE_DIR / "instance" / "mail")
    MAIL_HOST = "localhost"
    MAIL_PORT = 25
    MAIL_SECURITY = "none"      # none, starttls or tls
    MAIL_USERNAME = ""
    MAIL_PASSWORD = ""
    MAIL_SENDER = "helpdesk@example.lg.jp"
    MAIL_SENDER_NAME = "県・市町 情報システム相談窓口"
    MAIL_TIMEOUT = 10
    # Mails queued by a request are sent by a background thread after the response (a request never
    # waits on the mail server); off in tests, which send with `deliver_pending()`.
    MAIL_SEND_AFTER_REQUEST = True
    # The address people reach the app at, for links in mails and feeds (behind a proxy: the public one).
    PUBLIC_URL = "http://127.0.0.1:5000"
    ALLOW_DEMO_CONTENT = True
    REQUIRE_SECRET_KEY = False
    SECRET_KEY_FILE = ""            # read the key from this file instead (app/__init__.py)
    # Logs: one JSON object per line on stderr (app/request_log.py); "text" for a terminal.
    LOG_FORMAT = "json"
    LOG_LEVEL = "INFO"
    # Each gunicorn worker applies index work queued by other servers every this many seconds.
    SEARCH_SYNC_INTERVAL = 5
    # /healthz: who gets the numbers (others get only ok/unhealthy), and when a queue is "late".
    HEALTH_DETAIL_NETWORKS = ("127.0.0.0/8", "::1/128")
    HEALTH_INDEX_LAG_SECONDS = 300
    HEALTH_MAIL_LAG_SECONDS = 3600
    HEALTH_MIN_FREE_BYTES = 512 * 1024 * 1024
    # FLASK_* environment variables override the class (off for tests: a developer's shell
    # must not point the test suite at a real database or index).
    ENV_OVERRIDES = True


class DevelopmentConfig(Config):
    DEBUG = False
    LOG_FORMAT = "text"


class TestingConfig(Config):
    TESTING = True
    MAIL_SEND_AFTER_REQUEST = False
    ENV_OVERRIDES = False
    WTF_CSRF_ENABLED = False
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8
    ARGON2_PARALLELISM = 1
    PASSWORD_MIN_LENGTH = 10
    HEALTH_MIN_FREE_BYTES = 1024 * 1024


class ProductionConfig(Config):
    SECRET_KEY = None
    MAIL_BACKEND = "smtp"
    REQUIRE_SECRET_KEY = True
    ALLOW_DEMO_CONTENT = False
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    """The class named by ``APP_CONFIG`` (development, testing, production)."""
    name = os.environ.get("APP_CONFIG", "development").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"APP_CONFIG must be one of {sorted(CONFIGS)}, not {name!r}") from None

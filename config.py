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
    SEARCH_INDEX_DIR = str(BASE_DIR / "search_index")
    CONTENT_DIR = str(BASE_DIR / "content")
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
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
    ALLOW_DEMO_CONTENT = True
    REQUIRE_SECRET_KEY = False
    # FLASK_* environment variables override the class (off for tests: a developer's shell
    # must not point the test suite at a real database or index).
    ENV_OVERRIDES = True


class DevelopmentConfig(Config):
    DEBUG = False


class TestingConfig(Config):
    TESTING = True
    ENV_OVERRIDES = False
    WTF_CSRF_ENABLED = False
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8
    ARGON2_PARALLELISM = 1
    PASSWORD_MIN_LENGTH = 10


class ProductionConfig(Config):
    SECRET_KEY = None
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

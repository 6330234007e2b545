"""Application factory: configuration, extensions, blueprints, error pages and CLI."""
from __future__ import annotations

from flask import Flask, Request, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from config import INSECURE_DEV_KEY, Config, config_from_env

ERROR_MESSAGES = {
    400: "リクエストの形式が正しくありません。",
    401: "ログインが必要です。",
    403: "この操作を行う権限がありません。",
    404: "ページが見つかりません。",
    405: "この方法では操作できません。",
    413: "送信されたデータが大きすぎます。",
    415: "Content-Type が正しくありません。",
    500: "サーバーでエラーが発生しました。",
}


class HelpdeskRequest(Request):
    """Query and form parameters arrive through the one input layer (``app.params``)."""

    from app.params import TextParams as parameter_storage_class


def create_app(config_class: type[Config] | None = None) -> Flask:
    from app.params import BoundedIntConverter

    app = Flask(__name__, instance_relative_config=False)
    app.request_class = HelpdeskRequest
    app.url_map.converters["int"] = BoundedIntConverter  # before any route is added
    app.config.from_object(config_class or config_from_env())
    if app.config.get("ENV_OVERRIDES", True):
        app.config.from_prefixed_env()
    _read_secret_key_file(app)
    _check_production_secret(app)
    from app.request_log import configure_logging

    configure_logging(app)
    if app.config.get("TRUSTED_PROXIES"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["TRUSTED_PROXIES"]))
    app.json.ensure_ascii = False

    from app.database import configure_engine, engine_options
    from app.extensions import csrf, db, login_manager, migrate

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config["SQLALCHEMY_DATABASE_URI"],
                                                             app.config.get("SQLALCHEMY_ENGINE_OPTIONS"))
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine, app.config["SQLITE_BUSY_TIMEOUT_MS"], app.config["SQLITE_WAL"])
    from app.database import register_quiet_session_close

    register_quiet_session_close(app)
    from app.search.index import configure_caches

    configure_caches(app.config["SEARCH_CACHE_MB"], app.config["SEARCH_SEGMENT_CACHE_MB"])
    migrate.init_app(app, db, directory=str(_project_dir() / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    _ensure_sqlite_dir(app)

    from app import models  # noqa: F401  (register the models with the metadata)
    from app.api import bp as api_bp
    from app.auth import bp as auth_bp
    from app.cases import bp as cases_bp
    from app.questions import bp as questions_bp
    from app.admin import bp as admin_bp
    from app.library import bp as library_bp
    from app.attachments import bp as attachments_bp
    from app.notifications import bp as notifications_bp
    from app.reports import bp as reports_bp
    from app.experts import bp as experts_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(questions_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(library_bp)
    app.register_blueprint(attachments_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(experts_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)

    from app.health import bp as health_bp

    app.register_blueprint(health_bp)

    from app.templating import register_template_helpers

    register_template_helpers(app)
    _register_error_handlers(app)
    _register_home(app)
    _register_search_sync(app)
    _register_security_headers(app)

    from app.cli import register_cli

    register_cli(app)
    return app


def _project_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def _read_secret_key_file(app: Flask) -> None:
    """``SECRET_KEY_FILE`` (``FLASK_SECRET_KEY_FILE``): the key from a file only root and the
    service can read (systemd's ``LoadCredential``), so it is in no environment or unit file."""
    path = app.config.get("SECRET_KEY_FILE")
    if path:
        from pathlib import Path

        try:
            app.config["SECRET_KEY"] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise RuntimeError(f"SECRET_KEY_FILE {path} cannot be read: {error.strerror}") from None


def _check_production_secret(app: Flask) -> None:
    key = app.config.get("SECRET_KEY")
    if app.config.get("REQUIRE_SECRET_KEY"):
        if not key or key == INSECURE_DEV_KEY or len(str(key)) < 32:
            raise RuntimeError(
                "Production needs a real secret key: set FLASK_SECRET_KEY to at least 32 random characters "
                "(python -c 'import secrets; print(secrets.token_hex(32))')."
            )


def _ensure_sqlite_dir(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///") and uri != "sqlite://":
        from pathlib import Path

        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_error_handlers(app: Flask) -> None:
    from app.api.errors import json_error

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        message = "フォームの有効期限が切れたか、不正な送信です。ページを再読み込みしてからもう一度送信してください。"
        return render_template("error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        from app.params import BadParameter

        code = error.code or 500
        if isinstance(error, BadParameter):
            if _wants_json():
                return json_error(400, "invalid_parameter", error.message, fields={error.parameter: error.message})
            return render_template("error.html", code=400, message=error.message), 400
        if _wants_json():
            return json_error(code, _json_code(code), ERROR_MESSAGES.get(code, error.description))
        return render_template("error.html", code=code, message=ERROR_MESSAGES.get(code, error.name)), code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        app.logger.exception("unhandled error")
        from app.extensions import db

        db.session.rollback()
        if _wants_json():
            return json_error(500, "internal_error", ERROR_MESSAGES[500])
        return render_template("error.html", code=500, message=ERROR_MESSAGES[500]), 500


def _json_code(status: int) -> str:
    return {
        400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
        405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
    }.get(status, "error")


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def _register_security_headers(app: Flask) -> None:
    """Nothing from outside, no inline script, no framing (pages run on closed networks)."""

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.path.startswith("/api/") or _signed_in():
            response.headers["Cache-Control"] = "no-store"  # shared office PCs keep no case text
        return response

    def _signed_in() -> bool:
        """Without loading the user (an after-request hook must not need the database: when it is
        down, the error page would fail too)."""
        from flask import g, session

        user = g.get("_login_user")
        if user is not None:
            return bool(user.is_authenticated)
        return "_user_id" in session


def _register_search_sync(app: Flask) -> None:
    """Index work committed by a request or a CLI command is applied right after it."""
    from app.search.sync import apply_after_commit

    @app.after_request
    def apply_search_work(response):
        apply_after_commit()
        from app.services.notifications import send_after_request

        send_after_request(app)
        return response

    @app.teardown_appcontext
    def apply_search_work_at_teardown(_error):
        apply_after_commit()


def _register_home(app: Flask) -> None:
    @app.get("/")
    def home():
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login"))
        if current_user.role == "helpdesk":
            return redirect(url_for("questions.queue"))
        if current_user.role == "admin":
            return redirect(url_for("admin.municipalities"))
        if current_user.role == "expert":
            return redirect(url_for("experts.requests"))
        return redirect(url_for("questions.index"))

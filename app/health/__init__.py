"""``/healthz``: what monitoring asks every minute (database, search index, attachments, mail)."""
from flask import Blueprint

bp = Blueprint("health", __name__)

from app.health import routes  # noqa: E402,F401

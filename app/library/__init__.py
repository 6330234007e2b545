"""The case library's search pages: search, similar cases while asking, and the help desk's
tools for search (queries that found nothing, synonyms)."""
from flask import Blueprint

bp = Blueprint("library", __name__, template_folder="templates")

from app.library import routes  # noqa: E402,F401

"""Reports for the prefecture and for each municipality: dashboard, charts and downloads."""
from flask import Blueprint

bp = Blueprint("reports", __name__, template_folder="templates")

from app.reports import routes  # noqa: E402,F401

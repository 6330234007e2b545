"""Shared IT experts (registry, requests, matching, assignments, reports) and procurement knowledge."""
from flask import Blueprint

bp = Blueprint("experts", __name__, template_folder="templates")

from app.experts import routes  # noqa: E402,F401

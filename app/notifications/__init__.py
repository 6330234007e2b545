"""In-app notifications, how each person receives them, what they follow, and the Atom feed."""
from flask import Blueprint

bp = Blueprint("notifications", __name__, template_folder="templates")

from app.notifications import routes  # noqa: E402,F401

from flask import Blueprint

bp = Blueprint("cases", __name__, template_folder="templates")

from app.cases import routes  # noqa: E402,F401

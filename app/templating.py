"""Template filters and globals: rendering of user text, dates in Japan time, labels."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app import policy
from app.extensions import db
from app.models import Case, CaseState, Priority, QuestionKind, QuestionStatus, Role, Visibility, as_utc
from app.rendering import render_markdown
from app.services.attachments import text_preview
from app.services.notifications import BELL_CAP, unread_count

JST = ZoneInfo("Asia/Tokyo")


def format_datetime(value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return ""
    local = as_utc(value).astimezone(JST)
    return local.strftime("%Y年%-m月%-d日 %H:%M" if with_time else "%Y年%-m月%-d日")


def format_duration(seconds: int | None) -> str:
    """3日4時間, 2時間15分, 8分: response and resolution times as people say them."""
    if seconds is None:
        return "—"
    minutes = max(0, int(seconds)) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}日{hours}時間" if hours else f"{days}日"
    if hours:
        return f"{hours}時間{minutes}分" if minutes else f"{hours}時間"
    return f"{minutes}分"


def format_filesize(size: int | None) -> str:
    if not size:
        return "0 B"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def attachment_help() -> str:
    from flask import current_app

    per_file = current_app.config["ATTACHMENT_MAX_BYTES"] // (1024 * 1024)
    per_post = current_app.config["ATTACHMENT_MAX_POST_BYTES"] // (1024 * 1024)
    return (f"画像（PNG・JPEG・GIF）、PDF、テキスト・ログ、CSV、Excel（xlsx）、Word（docx）、ZIP。"
            f"1ファイル{per_file}MB、1回の投稿で合計{per_post}MBまで。ファイルの種類は中身で判定します。")


def page_url(page: int) -> str:
    args = request.args.to_dict()
    args["page"] = page
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def question_case(question) -> Case | None:
    """The case made from this question, if the current user may see it."""
    case = db.session.scalar(select(Case).where(Case.question_id == question.id))
    if case is None or not policy.can_view_case(current_user, case):
        return None
    return case


def person_label(user) -> str:
    """A user's name as shown beside their municipality: without repeating the municipality."""
    label = user.label
    municipality = getattr(user, "municipality", None)
    if municipality is not None and not label.startswith(municipality.name):
        return f"{label}（{municipality.name}）"
    return label


def owner_label(case) -> str:
    """The owning municipality as the current user may see it."""
    if not policy.can_see_owner(current_user, case):
        return "市町名非公開"
    return case.municipality.name if case.municipality else "県ヘルプデスク"


def unread_notifications() -> int:
    """The bell's number on every page (notifications about what the user may still read)."""
    if not current_user.is_authenticated:
        return 0
    return unread_count(current_user)


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["section_markdown"] = lambda text: render_markdown(text, heading_offset=2)
    app.jinja_env.filters["datetime"] = format_datetime
    app.jinja_env.filters["date"] = lambda v: format_datetime(v, with_time=False)
    app.jinja_env.filters["duration"] = format_duration
    app.jinja_env.filters["filesize"] = format_filesize
    app.jinja_env.globals.update(
        policy=policy,
        QuestionStatus=QuestionStatus,
        QuestionKind=QuestionKind,
        Priority=Priority,
        CaseState=CaseState,
        Role=Role,
        page_url=page_url,
        question_case=question_case,
        person_label=person_label,
        owner_label=owner_label,
        Visibility=Visibility,
        as_utc=as_utc,
        attachment_preview=text_preview,
        unread_notifications=unread_notifications,
        bell_cap=BELL_CAP,
    )
    app.context_processor(lambda: {"attachment_help": attachment_help() if request else ""})

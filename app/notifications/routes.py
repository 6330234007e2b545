from __future__ import annotations

import re
from xml.etree import ElementTree as ET

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import policy
from app.extensions import csrf, db
from app.models import Case, CaseState, Category, Channel, Notification, NotificationKind, Tag, User, as_utc
from app.notifications import bp
from app.params import parse_int
from app.services import accounts, notifications
from app.services.errors import ServiceError
from app.web import commit_or_flash, local_path, page_arg


class CsrfOnly(FlaskForm):
    """A form that carries only the CSRF token."""


@bp.get("/notifications")
@login_required
def index():
    page = page_arg()
    items = notifications.visible_notifications(current_user, limit=30, offset=(page - 1) * 30)
    return render_template("notifications/index.html", items=items, page=page, form=CsrfOnly(formdata=None))


@bp.get("/notifications/<int:notification_id>/open")
@login_required
def open_notification(notification_id: int):
    """Mark it read and go where it points (if the user may still see what it is about)."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != current_user.id:
        abort(404)
    rendered = notifications.describe(notification, current_user)
    if rendered is None:
        abort(404)
    notifications.mark_read(current_user, notification.id)
    db.session.commit()
    return redirect(rendered.path)


@bp.post("/notifications/read")
@login_required
def read_all():
    if not CsrfOnly().validate_on_submit():
        abort(400)
    count = notifications.mark_read(current_user)
    db.session.commit()
    flash(f"{count}件を既読にしました。", "success")
    return redirect(url_for("notifications.index"))


@bp.route("/notifications/settings", methods=["GET", "POST"])
@login_required
def settings():
    form = CsrfOnly()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        def save():
            accounts.set_email(current_user, request.form.get("email", ""))
            notifications.set_channels(current_user, {k.value: request.form.get(f"channel-{k.value}") for k in NotificationKind})
        commit_or_flash(save, "通知の受け取り方を保存しました。", error_status_aborts=())
        return redirect(url_for("notifications.settings"))
    follows = db.session.execute(select(notifications.Watch.target_type, notifications.Watch.target_key)
                                 .where(notifications.Watch.user_id == current_user.id)).all()
    categories = db.session.scalars(select(Category).order_by(Category.sort_order, Category.id)).all()
    return render_template(
        "notifications/settings.html", form=form, kinds=list(NotificationKind), channels=list(Channel),
        current={k: notifications.channel_for(current_user, k) for k in NotificationKind},
        categories=categories, followed_categories={key for t, key in follows if t == "category"},
        followed_tags=sorted(key for t, key in follows if t == "tag"),
        followed_questions=[int(key) for t, key in follows if t == "question"],
        new_feed_token=None,
    )


@bp.post("/notifications/follow")
@login_required
def follow():
    """Follow or stop following a category, a tag or a question (what the form names)."""
    if not CsrfOnly().validate_on_submit():
        abort(400)
    target_type = request.form.get("target_type")
    key = (request.form.get("target_key") or "").strip()[:100]
    back = local_path(request.form.get("back")) or url_for("notifications.settings")
    if target_type == "category":
        if db.session.scalar(select(Category.id).where(Category.slug == key)) is None:
            abort(400)
    elif target_type == "tag":
        if not key:
            flash("タグを入力してください。", "error")
            return redirect(back)
    elif target_type == "question":
        question_id = parse_int(key)
        if question_id is None or policy.get_visible_question(current_user, question_id) is None:
            abort(404)
    else:
        abort(400)
    if request.form.get("action") == "unfollow":
        notifications.unfollow(current_user.id, target_type, key)
        message = "フォローをやめました。"
    else:
        notifications.follow(current_user, target_type, key)
        message = "フォローしました。"
    db.session.commit()
    flash(message, "success")
    return redirect(back)


@bp.route("/unfollow/<token>", methods=["GET", "POST"])
@csrf.exempt  # the signed token is the authority; mail clients send a one-click POST (RFC 8058)
def unfollow(token: str):
    found = notifications.read_unfollow_token(token)
    if found is None:
        abort(404)
    user_id, target_type, target_key = found
    if request.method == "POST":
        notifications.unfollow(user_id, target_type, target_key)
        db.session.commit()
        return render_template("notifications/unfollowed.html", done=True, target_type=target_type, token=token)
    return render_template("notifications/unfollowed.html", done=False, target_type=target_type, token=token)


@bp.post("/notifications/feed-token")
@login_required
def renew_feed():
    if not CsrfOnly().validate_on_submit():
        abort(400)
    token = accounts.renew_feed_token(current_user)
    db.session.commit()
    return render_template("notifications/feed_token.html", token=token,
                           url=url_for("notifications.feed", token=token, _external=False))


# --- the Atom feed -------------------------------------------------------------------------------

ATOM = "http://www.w3.org/2005/Atom"


def _absolute(path: str) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """Text as XML 1.0 allows it (a pasted log may hold control characters)."""
    return _NOT_XML.sub("", text)


@bp.get("/feeds/<token>.atom")
@csrf.exempt
def feed(token: str):
    """Newly shared cases the token's owner may read (optionally one category), for Outlook or a
    feed reader on the closed network. Anonymous cases stay anonymous."""
    user = accounts.user_for_feed_token(token)
    if user is None:
        abort(404)
    query = (select(Case).where(Case.state == CaseState.PUBLISHED.value, policy.visible_cases_clause(user))
             .options(selectinload(Case.category), selectinload(Case.municipality), selectinload(Case.tags)))
    category = request.args.get("category") or ""
    if category:
        chosen = db.session.scalar(select(Category).where(Category.slug == category))
        if chosen is None:
            abort(404)
        query = query.join(Category).where(Category.id == chosen.id)
    cases = db.session.scalars(query.order_by(Case.published_at.desc(), Case.id.desc()).limit(50)).all()
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(root, f"{{{ATOM}}}title").text = "情報システム相談窓口 新しい事例" + (f"（{chosen.name}）" if category else "")
    ET.SubElement(root, f"{{{ATOM}}}id").text = _absolute(f"/feeds/{user.id}")
    ET.SubElement(root, f"{{{ATOM}}}updated").text = (
        as_utc(cases[0].published_at).isoformat() if cases and cases[0].published_at else "2026-01-01T00:00:00+00:00")
    link = ET.SubElement(root, f"{{{ATOM}}}link")
    link.set("href", _absolute(url_for("library.search")))
    for case in cases:
        entry = ET.SubElement(root, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}title").text = _xml_text(case.title)
        ET.SubElement(entry, f"{{{ATOM}}}id").text = _absolute(f"/cases/{case.id}")
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = as_utc(case.published_at or case.updated_at).isoformat()
        entry_link = ET.SubElement(entry, f"{{{ATOM}}}link")
        entry_link.set("href", _absolute(f"/cases/{case.id}"))
        owner = "県ヘルプデスク" if case.municipality is None else (
            case.municipality.name if policy.can_see_owner(user, case) else "市町名非公開")
        author = ET.SubElement(entry, f"{{{ATOM}}}author")
        ET.SubElement(author, f"{{{ATOM}}}name").text = owner
        category_element = ET.SubElement(entry, f"{{{ATOM}}}category")
        category_element.set("term", case.category.slug)
        category_element.set("label", case.category.name)
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = _xml_text(case.issue or "")[:300]
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    response = Response(body, mimetype="application/atom+xml")
    response.headers["Cache-Control"] = "no-store"
    return response

"""Downloading attachments: only for who may read the post or case it is on (invisible is 404)."""
from __future__ import annotations

from flask import abort, send_file
from flask_login import current_user, login_required

from app import policy
from app.attachments import bp
from app.models import Attachment
from app.storage import attachment_store


def send_attachment(attachment: Attachment, *, thumbnail: bool = False):
    """The file with its display name; only images are shown inline, everything else downloads."""
    store = attachment_store()
    key = attachment.storage_key + ("-thumb" if thumbnail else "")
    if not store.exists(key):
        abort(404)
    response = send_file(
        store.path(key),
        mimetype="image/png" if thumbnail else attachment.content_type,
        as_attachment=not attachment.is_image,
        download_name=attachment.filename if not thumbnail else f"thumbnail-{attachment.id}.png",
        conditional=True,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    return response


def readable_or_404(attachment_id: int) -> Attachment:
    attachment = policy.get_readable_attachment(current_user, attachment_id)
    if attachment is None:
        abort(404)
    return attachment


@bp.get("/attachments/<int:attachment_id>")
@login_required
def download(attachment_id: int):
    return send_attachment(readable_or_404(attachment_id))


@bp.get("/attachments/<int:attachment_id>/thumbnail")
@login_required
def thumbnail(attachment_id: int):
    attachment = readable_or_404(attachment_id)
    if not attachment.has_thumbnail:
        abort(404)
    return send_attachment(attachment, thumbnail=True)

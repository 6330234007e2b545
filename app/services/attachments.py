"""Attachments: screenshots, configuration excerpts, logs and quotation PDFs on posts and cases.

- Allowed types are decided from the content (PNG, JPEG, GIF, PDF, plain text and logs, CSV,
  XLSX, DOCX, ZIP), never from the name; the name the user gave is kept for display.
- Limits per file and per post come from the configuration (ATTACHMENT_MAX_BYTES,
  ATTACHMENT_MAX_POST_BYTES). Every file of a post is checked before any is stored: a bad one
  changes nothing.
- Files are stored under keys the app chooses (app/storage.py). A file written for a transaction
  that is rolled back is removed again.
- JPEG and PNG images are stored without their metadata (EXIF with the camera's GPS position and
  the author, XMP, IPTC, comments, text chunks): nobody looking at a shared photo sees it, and it
  could name the municipality of an anonymous case. A photo taken sideways is turned upright first.
"""
from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from app import policy
from app.extensions import db
from app.models import Attachment, Case, Question, User, case_attachments
from app.services.errors import Forbidden, ValidationFailed
from app.services.validation import parse_int
from app.storage import attachment_store, new_key

log = logging.getLogger(__name__)

ALLOWED_LABEL = "PNG・JPEG・GIF の画像、PDF、テキスト・ログ、CSV、Excel（xlsx）、Word（docx）、ZIP"
THUMBNAIL_SIZE = (320, 240)
PREVIEW_LINES = 12
MAX_FILES_PER_POST = 10


@dataclass
class Upload:
    """A file as the request brought it: the name the user gave and its bytes."""

    filename: str
    data: bytes


def _zip_kind(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError, RuntimeError):
        return None
    if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if "[Content_Types].xml" in names and "word/document.xml" in names:
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    return "application/zip"


def _text(data: bytes) -> str | None:
    """The text of a file that is text (UTF-8 with or without BOM, or CP932), else None."""
    if b"\x00" in data:
        return None
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        controls = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\t\r\n\f")
        return text if controls <= max(2, len(text[:20000]) // 200) else None
    return None


def detect_type(data: bytes, filename: str) -> str | None:
    """The content type decided from the bytes (None: not an allowed type)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _zip_kind(data)
    if data and _text(data) is not None:
        return "text/csv" if filename.lower().endswith(".csv") else "text/plain"
    return None


def _thumbnail(data: bytes) -> bytes | None:
    """A small PNG of an image, or None if Pillow cannot read it as the image it claims to be."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail(THUMBNAIL_SIZE)
            if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                image = image.convert("RGB")
            out = io.BytesIO()
            image.save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


EXIF_ORIENTATION = 0x0112


def without_metadata(data: bytes, kind: str) -> bytes:
    """A JPEG or PNG as it shows, without what it carries besides the picture. A JPEG is saved
    with its own quantisation tables (``quality="keep"``: no visible loss) unless it has to be
    turned upright; the colour profile stays. Other files (and an animated PNG) are left as they
    are; an image Pillow cannot write again is kept as uploaded (logged)."""
    if kind not in ("image/jpeg", "image/png"):
        return data
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            if getattr(image, "is_animated", False):
                return data
            profile = image.info.get("icc_profile")
            out = io.BytesIO()
            if kind == "image/jpeg":
                # Pillow writes the image's own comment unless told otherwise; EXIF only when given.
                clean = {"icc_profile": profile, "exif": b"", "comment": b""}
                if image.getexif().get(EXIF_ORIENTATION, 1) in (None, 1):
                    image.save(out, format="JPEG", quality="keep", **clean)
                else:
                    ImageOps.exif_transpose(image).save(out, format="JPEG", quality=90, **clean)
            else:
                options = {"exif": b"", **({"icc_profile": profile} if profile else {})}
                if "transparency" in image.info:
                    options["transparency"] = image.info["transparency"]
                image.save(out, format="PNG", **options)
            return out.getvalue()
    except Exception:   # noqa: BLE001 - Pillow raises many kinds; the upload itself was checked
        log.warning("image metadata could not be removed; the image is kept as uploaded", exc_info=True)
        return data


def clean_filename(name: str) -> str:
    """The display name: the last path part, no control characters, at most 200 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ord(ch) >= 32 and ch != "\x7f").strip().strip(".")
    return (name or "添付ファイル")[:200]


def check_uploads(uploads: list[Upload]) -> list[tuple[Upload, str]]:
    """Every file with its detected type, or a ValidationFailed naming each problem."""
    config = current_app.config
    per_file, per_post = config["ATTACHMENT_MAX_BYTES"], config["ATTACHMENT_MAX_POST_BYTES"]
    problems, checked = [], []
    if len(uploads) > MAX_FILES_PER_POST:
        problems.append(f"添付できるのは1回の投稿につき{MAX_FILES_PER_POST}ファイルまでです。")
    for upload in uploads:
        name = clean_filename(upload.filename)
        if not upload.data:
            problems.append(f"「{name}」は空のファイルです。")
        elif len(upload.data) > per_file:
            problems.append(f"「{name}」は{len(upload.data) / 1e6:.1f} MB です。1ファイル{per_file / 1e6:.0f} MB までです。")
        else:
            kind = detect_type(upload.data, name)
            if kind is None:
                problems.append(f"「{name}」は添付できない種類のファイルです（添付できるのは{ALLOWED_LABEL}）。")
            elif kind.startswith("image/") and _thumbnail(upload.data) is None:
                problems.append(f"「{name}」は画像として読み取れません。")
            else:
                checked.append((Upload(name, upload.data), kind))
    total = sum(len(u.data) for u in uploads)
    if total > per_post:
        problems.append(f"添付ファイルの合計が{total / 1e6:.1f} MB です。1回の投稿で{per_post / 1e6:.0f} MB までです。")
    if problems:
        raise ValidationFailed({"attachments": " ".join(problems)})
    return checked


def store(user: User, uploads: list[Upload], *, question: Question | None, post_type: str, post_id: int) -> list[Attachment]:
    """Check and store the files of one post (all or none)."""
    if not uploads:
        return []
    checked = check_uploads(uploads)
    storage = attachment_store()
    stored: list[Attachment] = []
    for upload, kind in checked:
        upload = Upload(upload.filename, without_metadata(upload.data, kind))
        key = new_key()
        storage.put(key, upload.data)
        _remember_written(key)
        thumbnail = _thumbnail(upload.data) if kind.startswith("image/") else None
        if thumbnail is not None:
            storage.put(key + "-thumb", thumbnail)
            _remember_written(key + "-thumb")
        attachment = Attachment(
            question_id=question.id if question is not None else None, post_type=post_type, post_id=post_id,
            filename=upload.filename, content_type=kind, size=len(upload.data),
            sha256=hashlib.sha256(upload.data).hexdigest(), storage_key=key, has_thumbnail=thumbnail is not None,
            uploaded_by=user,
        )
        db.session.add(attachment)
        stored.append(attachment)
    db.session.flush()
    return stored


def _remember_written(key: str) -> None:
    db.session.info.setdefault("attachments_written", []).append(key)


@event.listens_for(Session, "after_rollback")
def _remove_rolled_back_files(session: Session) -> None:
    session.info.pop("attachments_to_delete", None)
    keys = session.info.pop("attachments_written", None)
    if keys:
        try:
            storage = attachment_store()
        except RuntimeError:  # no application context
            return
        for key in keys:
            storage.delete(key)


@event.listens_for(Session, "after_commit")
def _settle_files(session: Session) -> None:
    """Files written for this transaction stay; files of withdrawn posts go now that it is final."""
    session.info.pop("attachments_written", None)
    keys = session.info.pop("attachments_to_delete", None)
    if keys:
        storage = attachment_store()
        for key in keys:
            storage.delete(key)


# --- reading --------------------------------------------------------------------------------------

def of_thread(question: Question, user: User | None) -> dict[tuple[str, int], list[Attachment]]:
    """The thread's attachments by post, as far as the user may see them (no notes' files for the
    municipality)."""
    rows = db.session.scalars(select(Attachment).where(Attachment.question_id == question.id).order_by(Attachment.id))
    result: dict[tuple[str, int], list[Attachment]] = {}
    for attachment in rows:
        if attachment.post_type == "note" and not policy.can_read_internal_notes(user):
            continue
        result.setdefault((attachment.post_type, attachment.post_id), []).append(attachment)
    return result


def text_preview(attachment: Attachment, lines: int = PREVIEW_LINES) -> str:
    if not attachment.is_text:
        return ""
    data = attachment_store().read(attachment.storage_key, limit=16 * 1024)
    text = _text(data) or _text(data[: len(data) - 3]) or ""  # a cut multi-byte character at the end
    return "\n".join(text.splitlines()[:lines])


def full_text(attachment: Attachment) -> str:
    """A text attachment's whole text (for the sensitive-data check)."""
    if not attachment.is_text:
        return ""
    return _text(attachment_store().read(attachment.storage_key)) or ""


# --- cases ----------------------------------------------------------------------------------------

def choosable_for_case(case: Case) -> list[Attachment]:
    """What the help desk may give a case: the files of its thread (not internal notes') and files
    uploaded to the case."""
    query = select(Attachment).where(Attachment.post_type == "case", Attachment.post_id == case.id)
    rows = list(db.session.scalars(query))
    if case.question_id is not None:
        rows += list(db.session.scalars(select(Attachment).where(
            Attachment.question_id == case.question_id, Attachment.post_type != "note")))
    return sorted(rows, key=lambda a: a.id)


def choose_for_case(user: User, case: Case, attachment_ids) -> list[Attachment]:
    """Set the attachments a case carries (a list of ids from ``choosable_for_case``)."""
    if not policy.can_edit_case(user, case):
        raise Forbidden("この事例を編集することはできません。")
    allowed = {a.id: a for a in choosable_for_case(case)}
    chosen = []
    for value in attachment_ids or []:
        attachment = allowed.get(parse_int(value))
        if attachment is None:
            raise ValidationFailed({"attachments": "この事例に付けられない添付ファイルが指定されました。"})
        chosen.append(attachment)
    case.attachments = chosen
    db.session.flush()
    return chosen


# --- withdrawals ----------------------------------------------------------------------------------

def delete_for_post(post_type: str, post_id: int) -> int:
    """A withdrawn post's files go with its text: rows, links from cases, and the stored files."""
    rows = list(db.session.scalars(select(Attachment).where(Attachment.post_type == post_type,
                                                            Attachment.post_id == post_id)))
    for attachment in rows:
        db.session.execute(delete(case_attachments).where(case_attachments.c.attachment_id == attachment.id))
        db.session.info.setdefault("attachments_to_delete", []).extend(
            [attachment.storage_key, attachment.storage_key + "-thumb"])
        db.session.delete(attachment)
    db.session.flush()
    return len(rows)

"""Sending one e-mail: through SMTP from the configuration, or into a folder in development.

Configuration (every key also as ``FLASK_<KEY>``): MAIL_BACKEND ``smtp`` or ``folder``;
MAIL_HOST, MAIL_PORT, MAIL_SECURITY (``none``, ``starttls`` or ``tls``), MAIL_USERNAME,
MAIL_PASSWORD, MAIL_SENDER, MAIL_TIMEOUT; MAIL_DIR for the folder backend. Subjects and bodies
are UTF-8 (Japanese) with correct MIME headers.
"""
from __future__ import annotations

import re
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

from flask import current_app


_LINE_BREAKS = re.compile(r"\s*[\r\n\x0b\x0c\x85\u2028\u2029]+\s*")


def build_message(to: str, subject: str, body: str, headers: dict[str, str] | None = None) -> EmailMessage:
    config = current_app.config
    message = EmailMessage()
    message["From"] = formataddr((config.get("MAIL_SENDER_NAME") or "", config["MAIL_SENDER"]))
    message["To"] = to
    # A header takes no line break (the mail library refuses one, and the mail would never go):
    # a title stored before titles were made one line still gives a subject.
    message["Subject"] = _LINE_BREAKS.sub(" ", subject)
    message["Message-ID"] = make_msgid(domain=config["MAIL_SENDER"].rpartition("@")[2] or None)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body, charset="utf-8")
    return message


def send(message: EmailMessage) -> None:
    """Hand the message to the configured backend; raises on failure (the caller retries)."""
    config = current_app.config
    if config["MAIL_BACKEND"] == "folder":
        folder = Path(config["MAIL_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{message['Message-ID'].strip('<>').replace('@', '_')}.eml"
        (folder / name).write_bytes(bytes(message))
        return
    security = config["MAIL_SECURITY"]
    timeout = config["MAIL_TIMEOUT"]
    if security == "tls":
        client = smtplib.SMTP_SSL(config["MAIL_HOST"], config["MAIL_PORT"], timeout=timeout,
                                  context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(config["MAIL_HOST"], config["MAIL_PORT"], timeout=timeout)
    with client:
        if security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if config.get("MAIL_USERNAME"):
            client.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
        client.send_message(message)

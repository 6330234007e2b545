"""Where attachment files live: behind a small interface, so that a store shared by several servers
(an S3-compatible bucket) can take the place of the local directory later.

``LocalStore`` keeps files under ``ATTACHMENT_DIR`` (``FLASK_ATTACHMENT_DIR``), outside the web root,
in two levels of folders named after the key; a file is written to a temporary name and renamed,
so a reader never sees half a file. On several servers the directory is shared storage (NFS).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from flask import current_app


class AttachmentStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def path(self, key: str) -> Path: ...
    def read(self, key: str, limit: int | None = None) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...


class LocalStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError("invalid storage key")
        return self.root / key[:2] / key[2:4] / key

    def put(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{key}.{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)

    def read(self, key: str, limit: int | None = None) -> bytes:
        with open(self.path(key), "rb") as handle:
            return handle.read() if limit is None else handle.read(limit)

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def writable(self) -> bool:
        """For health checks: the directory exists (or can be made) and accepts a file."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
            return True
        except OSError:
            return False


def new_key() -> str:
    return secrets.token_hex(20)


def attachment_store() -> AttachmentStore:
    return LocalStore(current_app.config["ATTACHMENT_DIR"])

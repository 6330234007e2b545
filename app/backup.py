"""Backups of a running instance and restore into an empty one (``flask --app app backup|restore``).

A backup folder holds:

- ``database.sqlite3`` (SQLite's online backup API: a consistent snapshot while writers go on) or
  ``database.pgdump`` (``pg_dump --format=custom``: one transaction snapshot);
- ``attachments/``: the files the snapshot refers to, copied after the snapshot (a file is written
  before its row is committed, so every row of the snapshot has its file);
- ``config.json``: the configuration without secrets (for the record; restore does not apply it);
- ``manifest.json``: when, which schema revision, counts, and a SHA-256 of every file.

The search index is not backed up: it is rebuilt from the database (``search reindex``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.extensions import db
from app.storage import LocalStore

SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY", "SALT")
FORMAT_VERSION = 1


class BackupError(RuntimeError):
    """A backup or restore that cannot be done, with a message for the operator (Japanese)."""


@dataclass
class BackupReport:
    path: Path
    database_file: str = ""
    attachments: int = 0
    missing_attachments: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _backend() -> str:
    return db.engine.dialect.name


def _sqlite_path() -> Path:
    return Path(make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).database)


def _libpq_url() -> str:
    """The database URL as pg_dump and pg_restore take it (no ``+psycopg``)."""
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise BackupError(f"{name} が見つかりません（Debian: apt-get install postgresql-client）。")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def public_config() -> dict:
    """The configuration as JSON, without anything secret (passwords in URLs hidden too)."""
    result = {}
    for key, value in sorted(current_app.config.items()):
        if not key.isupper() or any(word in key for word in SECRET_WORDS):
            continue
        if key == "SQLALCHEMY_DATABASE_URI":
            value = make_url(value).render_as_string(hide_password=True)
        try:
            json.dumps(value)
        except TypeError:
            value = str(value)
        result[key] = value
    return result


def _counts(connection) -> dict[str, int]:
    names = ("users", "municipalities", "questions", "answers", "comments", "cases", "attachments")
    present = set(inspect(connection).get_table_names())
    return {name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in names if name in present}


def backup(destination: str | os.PathLike) -> BackupReport:
    target = Path(destination)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} は空ではありません。新しいフォルダーを指定してください。")
    target.mkdir(parents=True, exist_ok=True)
    report = BackupReport(path=target)
    db.session.remove()
    if _backend() == "sqlite":
        report.database_file = "database.sqlite3"
        source = sqlite3.connect(str(_sqlite_path()), timeout=30)
        copy = sqlite3.connect(str(target / report.database_file))
        try:
            with copy:
                # In one step: a read transaction on the WAL database, so writers go on meanwhile (a
                # stepwise copy would start again after every write and might never finish).
                source.backup(copy)
        finally:
            copy.close()
            source.close()
        snapshot = sqlite3.connect(str(target / report.database_file))
        try:
            keys = [row[0] for row in snapshot.execute("SELECT storage_key FROM attachments")]
            revision = snapshot.execute("SELECT version_num FROM alembic_version").fetchone() if _has_table(
                snapshot, "alembic_version") else None
        finally:
            snapshot.close()
        engine = create_engine(f"sqlite:///{target / report.database_file}")
        with engine.connect() as connection:
            report.counts = _counts(connection)
        engine.dispose()
    elif _backend() == "postgresql":
        report.database_file = "database.pgdump"
        # One snapshot for everything: the counts and attachment keys are read in a repeatable-read
        # transaction whose snapshot pg_dump then uses (--snapshot), so they describe the dump.
        with db.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                snapshot_id = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                keys = [row[0] for row in connection.execute(text("SELECT storage_key FROM attachments"))]
                revision = connection.execute(text("SELECT version_num FROM alembic_version")).fetchone() if inspect(
                    connection).has_table("alembic_version") else None
                report.counts = _counts(connection)
                result = subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                                         f"--snapshot={snapshot_id}", "--file", str(target / report.database_file),
                                         _libpq_url()], capture_output=True, text=True)
        if result.returncode != 0:
            raise BackupError(f"pg_dump が失敗しました: {result.stderr.strip()[:500]}")
    else:
        raise BackupError(f"{_backend()} のバックアップには対応していません。")

    store = LocalStore(current_app.config["ATTACHMENT_DIR"])
    copies = LocalStore(target / "attachments")
    files = {}
    for key in keys:
        source_path = store.path(key)
        if not source_path.is_file():
            report.missing_attachments.append(key)
            continue
        destination_path = copies.path(key)
        destination_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source_path, destination_path)
        files[f"attachments/{key[:2]}/{key[2:4]}/{key}"] = _sha256(destination_path)
        report.attachments += 1
    files[report.database_file] = _sha256(target / report.database_file)
    (target / "config.json").write_text(json.dumps(public_config(), ensure_ascii=False, indent=2), encoding="utf-8")
    manifest = {
        "format": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "database": _backend(),
        "database_file": report.database_file,
        "schema_revision": revision[0] if revision else None,
        "counts": report.counts,
        "missing_attachments": report.missing_attachments,
        "files": files,
    }
    (target / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return report


def _has_table(connection: sqlite3.Connection, name: str) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _read_manifest(source: Path) -> dict:
    try:
        manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{source} にバックアップ（manifest.json）がありません。") from None
    except ValueError:
        raise BackupError(f"{source}/manifest.json が読めません。") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError("このバックアップの形式には対応していません。")
    return manifest


def verify(source: str | os.PathLike) -> list[str]:
    """Files of the backup whose content differs from the manifest (empty: intact)."""
    source = Path(source)
    manifest = _read_manifest(source)
    problems = []
    for name, digest in manifest["files"].items():
        path = source / name
        if not path.is_file():
            problems.append(f"{name}: ありません")
        elif _sha256(path) != digest:
            problems.append(f"{name}: 内容が違います")
    return problems


def _instance_is_empty() -> bool:
    with db.engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        if not tables:
            return True
        if "users" in tables and connection.execute(text("SELECT count(*) FROM users")).scalar_one():
            return False
        return not ("cases" in tables and connection.execute(text("SELECT count(*) FROM cases")).scalar_one())


def restore(source: str | os.PathLike) -> dict:
    """Restore a backup into this (empty) instance; the search index is rebuilt afterwards."""
    source = Path(source)
    manifest = _read_manifest(source)
    problems = verify(source)
    if problems:
        raise BackupError("バックアップが壊れています: " + "、".join(problems[:5]))
    if manifest["database"] != _backend():
        raise BackupError(f"このバックアップは {manifest['database']} のものです（このインスタンスは {_backend()}）。")
    if not _instance_is_empty():
        raise BackupError("復元先のデータベースが空ではありません。空のインスタンスに復元してください。")
    attachments = Path(current_app.config["ATTACHMENT_DIR"])
    if attachments.exists() and any(p.is_file() for p in attachments.rglob("*")):
        raise BackupError(f"添付ファイルの保存先 {attachments} が空ではありません。")

    db.session.remove()
    db.engine.dispose()
    if _backend() == "sqlite":
        path = _sqlite_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        backup_db = sqlite3.connect(str(source / manifest["database_file"]))
        live = sqlite3.connect(str(path))
        try:
            with live:
                backup_db.backup(live)
        finally:
            live.close()
            backup_db.close()
    else:
        with db.engine.begin() as connection:   # an empty instance may have empty tables: start clean
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        result = subprocess.run([_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                                 "--dbname", _libpq_url(), str(source / manifest["database_file"])],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BackupError(f"pg_restore が失敗しました: {result.stderr.strip()[:500]}")
    db.engine.dispose()
    copied = 0
    source_files = source / "attachments"
    if source_files.is_dir():
        for path in source_files.rglob("*"):
            if path.is_file():
                destination = attachments / path.relative_to(source_files)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
                copied += 1
    # The restored database names the source's index directories as consumers; this instance's
    # index starts afresh from `search reindex`.
    from app.models import SearchConsumer, SearchConsumerMark

    db.session.execute(SearchConsumerMark.__table__.delete())
    db.session.execute(SearchConsumer.__table__.delete())
    db.session.commit()
    with db.engine.connect() as connection:
        counts = _counts(connection)
    return {"counts": counts, "attachments": copied, "schema_revision": manifest.get("schema_revision")}


"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temporary folder, listening only on a
Unix socket in that folder, stopped and removed afterwards.

Used when ``TEST_POSTGRES_URL`` is not set and Debian's PostgreSQL server binaries are present
(``/usr/lib/postgresql/<version>/bin``). As root, the server runs as the ``postgres`` user.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path


def server_bin_dir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def throwaway_cluster():
    """Yield a base SQLAlchemy URL (``postgresql+psycopg://postgres@/postgres?host=<socket dir>``)."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="helpdesk-pg-"))
    data, socket_dir = root / "data", root / "sock"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for path in (root, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    log = root / "server.log"
    try:
        subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                        "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True)
        options = f"-k {socket_dir} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_connections=200"
        (root / "options").write_text(options, encoding="utf-8")
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log),
                                        "-w", "-t", "60", "start"]), check=True, capture_output=True)
        yield f"postgresql+psycopg://postgres@/postgres?host={socket_dir}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def restart_server(base: str, down_seconds: float = 0) -> None:
    """Stop the throwaway cluster behind ``base`` (fast: connections are cut), wait, start it again."""
    import pytest

    query = base.partition("?")[2]
    host = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("host", "")
    root = Path(host).parent
    data, options = root / "data", root / "options"
    bin_dir = server_bin_dir()
    if not host or not options.exists() or bin_dir is None:
        pytest.skip("the PostgreSQL server is not a throwaway cluster of this test run")
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                   check=True, capture_output=True)
    time.sleep(down_seconds)
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options.read_text(encoding="utf-8"),
                                    "-l", str(root / "server.log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True)


def database_url(base: str, name: str) -> str:
    """``base`` with its database name replaced (the query string, such as ``host=``, kept)."""
    head, _, query = base.partition("?")
    url = head.rsplit("/", 1)[0] + f"/{name}"
    return f"{url}?{query}" if query else url


@contextmanager
def fresh_database(base: str):
    """A new, empty database on the server at ``base``; dropped afterwards."""
    from sqlalchemy import create_engine

    name = f"helpdesk_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield database_url(base, name)
    finally:
        for _ in range(3):
            try:
                with admin.connect() as connection:
                    connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                break
            except Exception:
                time.sleep(0.5)
        admin.dispose()

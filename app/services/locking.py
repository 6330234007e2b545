"""Row locks for read-decide-write changes.

A service that decides from an object's current values and then writes (publish a case within
its consent, narrow a consent, archive) first calls ``lock_for_update(obj)``: the object is read
again from the database under a write lock that the transaction holds until its commit, so a
concurrent request that changes the same row waits and then decides from what this one wrote.

- PostgreSQL: ``SELECT … FOR UPDATE`` on the row.
- SQLite: the database has one writer at a time; a no-op ``UPDATE`` of the row takes the write
  lock before the read (like ``BEGIN IMMEDIATE``), then the row is read again.
"""
from __future__ import annotations

from sqlalchemy import inspect, select, update

from app.extensions import db


def lock_for_update(obj) -> None:
    """Reload ``obj`` (a persistent ORM object) from the database under a row write lock."""
    state = inspect(obj)
    mapper = state.mapper
    table = mapper.local_table
    (pk_column,) = mapper.primary_key
    (pk_value,) = state.identity
    session = db.session
    session.flush()  # changes made before the lock are written first, not discarded by the reload
    if session.get_bind().dialect.name == "sqlite":
        # Naming every column with an onupdate default keeps it unchanged (no new updated_at).
        unchanged = {column.name: column for column in table.c if column.primary_key or column.onupdate is not None}
        session.execute(update(table).where(pk_column == pk_value).values(unchanged))
    session.expire(obj)  # relationships too: they load again, inside the locked transaction
    session.execute(
        select(mapper.class_).where(pk_column == pk_value).with_for_update()
        .execution_options(populate_existing=True)
    )

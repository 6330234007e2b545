"""Fresh planner statistics after bulk work (an import, a search reindex).

PostgreSQL: ``VACUUM (ANALYZE)``, outside any transaction. ANALYZE alone gives the planner its
row counts (after a bulk load they said 129 published cases where there were 14,000: see
search/pg_backend); the VACUUM marks the new rows all-visible, so the search backend's join of the
reader's cases is an index-only scan of ``ix_cases_state_scope`` from the start instead of after
autovacuum got to it. SQLite: ``ANALYZE`` on a sample of rows per index (``analysis_limit``);
without statistics it may pick an index that reads most of the table.
"""
from __future__ import annotations

from sqlalchemy import text

from app.extensions import db

_KNOWN_TABLES = {"cases", "search_documents"}


def refresh_statistics(*tables: str) -> None:
    """Commit the session's work, then refresh the statistics (and, on PostgreSQL, the visibility
    map) of these tables."""
    unknown = set(tables) - _KNOWN_TABLES
    if unknown:
        raise ValueError(f"not a table of this module: {sorted(unknown)}")
    db.session.commit()
    if db.session.get_bind().dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in tables:
                connection.execute(text(f"VACUUM (ANALYZE) {table}"))
        return
    db.session.execute(text("PRAGMA analysis_limit=1000"))
    for table in tables:
        db.session.execute(text(f"ANALYZE {table}"))
    db.session.commit()

"""The two search backends behind one small interface, chosen by ``SEARCH_BACKEND``:

``whoosh``   (default) an embedded Whoosh index per server directory, kept equal to the database
             through the outbox (app/search/sync.py); BM25 on numpy arrays (index.py, querying.py)
``postgres`` the shared ``search_documents`` table of PostgreSQL 13+ (app/search/pg_backend.py):
             the same analysis in ``tsvector`` columns with field weights, GIN (and RUM where
             installed), ``ts_rank``, the policy's SQL clause inside every statement; rows written
             in the case's own transaction

Both give the same ``SearchResult`` (service.py), so pages and the API do not know which one runs.
"""
from __future__ import annotations

from typing import Protocol

from flask import current_app, has_app_context

BACKENDS = ("whoosh", "postgres")


class SearchBackendError(RuntimeError):
    """``SEARCH_BACKEND`` names no backend, or one this database cannot run."""


class SearchBackend(Protocol):
    name: str

    def index(self, case_ids: list[int]) -> int:
        """Write these cases' documents now (deleting those no longer searchable)."""

    def apply(self) -> int:
        """Apply queued index work; returns how many cases were written."""

    def reindex(self, procs: int = 1, progress=None):
        """Rebuild everything from the database (searches keep working meanwhile)."""

    def check(self):
        """Every difference between the index and the database (``sync.CheckReport``)."""

    def outdated(self) -> bool:
        """Whether the index was built by another version of the analysis (reindex)."""

    def search(self, user, params, *, log_misses: bool = True):
        """``service.SearchResult`` for one reader."""

    def similar(self, user, text: str, limit: int = 5, exclude: int | None = None):
        """``service.SearchHit``s of published cases like ``text`` that the reader may read."""


def configured_name() -> str:
    name = str(current_app.config.get("SEARCH_BACKEND", "whoosh") or "whoosh").strip().lower()
    if name not in BACKENDS:
        raise SearchBackendError(f"SEARCH_BACKEND = {name!r}: choose one of {', '.join(BACKENDS)}")
    return name


def _database_is_postgres() -> bool:
    from app.extensions import db

    return db.engine.dialect.name == "postgresql"


def postgres_active() -> bool:
    """Whether writes go to the PostgreSQL table (configured and possible). A misconfigured
    backend leaves writes on the outbox, so nothing is lost; searches then say what is wrong."""
    if not has_app_context():
        return False
    try:
        return configured_name() == "postgres" and _database_is_postgres()
    except SearchBackendError:
        return False


def get_backend() -> SearchBackend:
    name = configured_name()
    if name == "postgres":
        if not _database_is_postgres():
            raise SearchBackendError("SEARCH_BACKEND = 'postgres' needs a PostgreSQL database "
                                     "(SQLALCHEMY_DATABASE_URI); use 'whoosh' with SQLite")
        return PostgresBackend()
    return WhooshBackend()


class WhooshBackend:
    name = "whoosh"

    def index(self, case_ids: list[int]) -> int:
        from app.search import sync

        index = sync.ready_index()
        with index.lock(), index.writer() as writer:
            sync._write(writer, list(case_ids))
        return len(case_ids)

    def apply(self) -> int:
        from app.search import sync

        return sync.apply_pending()

    def reindex(self, procs: int = 1, progress=None):
        from app.search import sync

        return sync.whoosh_reindex(procs=procs, progress=progress)

    def check(self):
        from app.search import sync

        return sync.whoosh_check()

    def outdated(self) -> bool:
        from app.search import sync

        index = sync.current_index()
        return not index.current_generation() or index.schema_outdated() or index.lacks_postings_files()

    def search(self, user, params, *, log_misses: bool = True):
        from app.search import service

        return service.whoosh_search_cases(user, params, log_misses=log_misses)

    def similar(self, user, text: str, limit: int = 5, exclude: int | None = None):
        from app.search import service

        return service.whoosh_similar_cases(user, text, limit, exclude)


class PostgresBackend:
    name = "postgres"

    def index(self, case_ids: list[int]) -> int:
        from app.extensions import db
        from app.search import pg_backend

        pg_backend.ensure_tables()
        written = pg_backend.write_documents(db.session, list(case_ids))
        db.session.commit()
        return written

    def apply(self) -> int:
        return 0   # documents are written in the transaction of the change: nothing waits

    def reindex(self, procs: int = 1, progress=None):
        from app.search import pg_backend, sync

        report = pg_backend.reindex(progress=progress, procs=procs)
        return sync.ReindexReport(report.documents, 0, report.seconds, "postgres:search_documents")

    def check(self):
        from app.search import sync

        return sync.postgres_check()

    def outdated(self) -> bool:
        from app.search import pg_backend

        return not pg_backend.is_built()

    def search(self, user, params, *, log_misses: bool = True):
        from app.search import service

        return service.postgres_search_cases(user, params, log_misses=log_misses)

    def similar(self, user, text: str, limit: int = 5, exclude: int | None = None):
        from app.search import service

        return service.postgres_similar_cases(user, text, limit, exclude)

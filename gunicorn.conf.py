"""gunicorn settings for `make serve` and the systemd unit in docs/operations.md.

Every value can be overridden from the environment (HELPDESK_BIND, HELPDESK_WORKERS, ...), so the
unit file and the Makefile need no edits of this file.
"""
import multiprocessing
import os

bind = os.environ.get("HELPDESK_BIND", "127.0.0.1:8000")
# Workers: two per core plus one (gunicorn's rule of thumb), at most 16. Each holds its own search
# reader; the index write lock lets one of them write at a time.
workers = int(os.environ.get("HELPDESK_WORKERS") or min(16, multiprocessing.cpu_count() * 2 + 1))
# A few threads per worker: a request waiting on SQLite's busy timeout or on the index lock does not
# block the others in its process.
threads = int(os.environ.get("HELPDESK_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("HELPDESK_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# The application logs one JSON object per request itself (app/logging.py); gunicorn's own access
# log would only repeat it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("HELPDESK_LOG_LEVEL", "info")
# Behind nginx on the same machine: trust its X-Forwarded-* headers (TRUSTED_PROXIES in config.py
# decides what the app itself believes).
forwarded_allow_ips = os.environ.get("HELPDESK_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Load the app in each worker after the fork: no SQLite connection or index reader crosses a fork.
preload_app = False
wsgi_app = "app:create_app()"


def post_worker_init(worker):
    """Each worker applies index work queued by other servers (and missed work after a crash)
    every SEARCH_SYNC_INTERVAL seconds; the index lock makes them take turns."""
    from app.search.sync import start_background_sync

    app = worker.wsgi
    if not hasattr(app, "config"):
        return
    start_background_sync(app, float(app.config.get("SEARCH_SYNC_INTERVAL", 5)))

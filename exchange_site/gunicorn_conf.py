"""gunicorn settings for the HTTP tier (REST API, admin, pages); WebSockets go to daphne.

Sync workers: a request is a short burst of CPU around one or two database
and Redis round trips, so one process per core (``WEB_CONCURRENCY``, default
the number of cores) keeps the cores busy without thread switching.
"""

import multiprocessing
import os

bind = os.environ.get("WEB_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "sync"
keepalive = 30  # bots keep connections open between orders
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("WEB_ACCESS_LOG") or None  # quiet by default; "-" for stdout
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "warning")

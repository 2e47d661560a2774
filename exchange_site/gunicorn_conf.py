"""gunicorn settings for the HTTP tier (REST API, admin, pages); WebSockets go to daphne.

One process per core (``WEB_CONCURRENCY``, default the number of cores),
each with a few threads (``WEB_THREADS``): a request is a short burst of CPU
around one or two database and Redis round trips, and threaded workers keep
HTTP connections alive between a bot's orders (gunicorn's sync workers close
every connection after one response, so each order paid a new TCP handshake).
"""

import multiprocessing
import os

bind = os.environ.get("WEB_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
keepalive = 30  # bots keep connections open between orders
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("WEB_ACCESS_LOG") or None  # quiet by default; "-" for stdout
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "warning")

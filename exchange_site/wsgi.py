"""WSGI entry point for the HTTP workers (gunicorn)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange_site.settings.dev")
application = get_wsgi_application()

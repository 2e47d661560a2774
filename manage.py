#!/usr/bin/env python
"""Django's command-line utility.

With no ``DATABASE_URL``/``REDIS_URL`` in the environment, the embedded
PostgreSQL and Redis under ``.data/`` are started (or found running) first.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange_site.settings.dev")
    from exchange_site import embedded

    embedded.ensure_env()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

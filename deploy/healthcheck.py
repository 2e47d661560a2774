#!/usr/bin/env python3
"""Container health check: ``python deploy/healthcheck.py http://127.0.0.1:8000/readyz``.

Exits 0 when the URL answers 2xx, 1 otherwise, printing the answer (docker
keeps it in ``docker inspect``), so an unhealthy container says why.

The request goes straight to the process, not through nginx, so it presents
itself as nginx would: a Host the site accepts (the first of
``DJANGO_ALLOWED_HOSTS``; Django refuses any other with 400) and
``X-Forwarded-Proto: https`` (the production profile redirects plain HTTP).
Only the standard library: it runs in the application image before Django loads.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 5.0


def probe_host(allowed_hosts: str) -> str:
    """A host name Django accepts, from the ``DJANGO_ALLOWED_HOSTS`` list (``.example.com`` means any subdomain)."""
    for host in (h.strip() for h in allowed_hosts.split(",")):
        if host and host != "*":
            return host.lstrip(".")
    return "localhost"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: healthcheck.py URL", file=sys.stderr)
        return 2
    request = urllib.request.Request(  # noqa: S310 (the URL is the operator's, from the compose file)
        argv[0],
        headers={"Host": probe_host(os.environ.get("DJANGO_ALLOWED_HOSTS", "")), "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            print(response.status, response.read(2000).decode(errors="replace"))
            return 0
    except urllib.error.HTTPError as error:
        print(error.code, error.read(2000).decode(errors="replace"))
    except OSError as error:
        print(f"no answer from {argv[0]}: {error}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The real exchange as separate processes, for tests that need it whole.

``LiveStack`` starts daphne (HTTP and WebSockets on one port), ``run_engine``
and, on request, a Celery worker, beat or other management commands, all
pointed at this test run's PostgreSQL database and Redis.  Use it from tests
marked ``django_db(transaction=True)``: the processes only see committed rows.

    with LiveStack(engine=True) as stack:
        stack.url("/api/v1/markets")          # http://127.0.0.1:PORT/api/v1/markets
        stack.ws_url("/ws")                   # ws://127.0.0.1:PORT/ws
        stack.restart("engine")

Each process's output goes to ``.data/test/logs/<name>.log``; a process that
exits early fails the test with the tail of its log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection

LOG_DIR = Path(settings.BASE_DIR) / ".data" / "test" / "logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(**extra: str) -> dict[str, str]:
    """This process's environment, pointed at the test database (not the development one)."""
    url = urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + connection.settings_dict["NAME"])
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "exchange_site.settings.test",
        "DATABASE_URL": urlunsplit(url),
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": os.environ.get("STACK_LOG_LEVEL", "WARNING"),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class LiveStack:
    """Processes of the exchange, started in ``__enter__`` and stopped (SIGTERM, then SIGKILL) in ``__exit__``."""

    def __init__(
        self,
        *,
        web: bool = True,
        engine: bool = True,
        celery: bool = False,
        beat: bool = False,
        commands: dict[str, list[str]] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.env = stack_env(**(env or {}))
        self.specs: dict[str, list[str]] = {}
        python = sys.executable
        if web:
            daphne = str(Path(python).with_name("daphne"))
            self.specs["web"] = [daphne, "-b", "127.0.0.1", "-p", str(self.port), "exchange_site.asgi:application"]
        if engine:
            self.specs["engine"] = [python, "manage.py", "run_engine"]
        if celery:
            celery_bin = str(Path(python).with_name("celery"))
            self.specs["worker"] = [
                celery_bin,
                "-A",
                "exchange_site",
                "worker",
                "-l",
                "warning",
                "-c",
                "1",
                "-P",
                "solo",
            ]
        if beat:
            celery_bin = str(Path(python).with_name("celery"))
            schedule = str(LOG_DIR / f"celerybeat-schedule-{self.port}")
            self.specs["beat"] = [celery_bin, "-A", "exchange_site", "beat", "-l", "warning", "-s", schedule]
        for name, argv in (commands or {}).items():
            self.specs[name] = [python, "manage.py", *argv]
        self.processes: dict[str, subprocess.Popen] = {}
        LOG_DIR.mkdir(parents=True, exist_ok=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log_path(self, name: str) -> Path:
        return LOG_DIR / f"{name}.log"

    def start(self, name: str) -> None:
        log = self.log_path(name).open("ab")
        self.processes[name] = subprocess.Popen(
            self.specs[name], cwd=settings.BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def stop(self, name: str, *, kill: bool = False, timeout: float = 10.0) -> int | None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def restart(self, name: str, *, kill: bool = False) -> None:
        self.stop(name, kill=kill)
        self.start(name)

    def check_alive(self) -> None:
        """Fail with the log's tail if a process exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log_path(name).read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail}")

    def wait_until(self, condition, *, timeout: float, what: str, interval: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(interval)

    def wait_http(self, timeout: float = 30.0) -> None:
        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        self.wait_until(listening, timeout=timeout, what="the web server to listen")

    def __enter__(self) -> LiveStack:
        for name in self.specs:
            self.log_path(name).unlink(missing_ok=True)
            self.start(name)
        if "web" in self.specs:
            self.wait_http()
        return self

    def __exit__(self, *exc) -> None:
        for name in list(self.processes):
            self.stop(name)


class HttpClient:
    """A tiny HTTP client for a ``LiveStack``: JSON in and out, signed with an API key when one is given."""

    def __init__(self, stack: LiveStack, *, key: str | None = None, secret: str | None = None) -> None:
        self.stack, self.key, self.secret = stack, key, secret

    def request(self, method: str, path: str, data=None) -> tuple[int, object]:
        import json
        import urllib.error
        import urllib.request

        from tests.signing import signed_headers

        body = b"" if data is None else json.dumps(data).encode()
        headers = {"Content-Type": "application/json"}
        if self.key is not None:
            signed = signed_headers(key=self.key, secret=self.secret, method=method, path=path, body=body)
            headers |= {name[5:].replace("_", "-"): value for name, value in signed.items()}
        url = self.stack.url(path)  # always http://127.0.0.1:PORT
        request = urllib.request.Request(url, data=body or None, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback test server)
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path: str) -> object:
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

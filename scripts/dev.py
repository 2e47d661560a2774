#!/usr/bin/env python3
"""One entry point for a fresh clone: ``run`` the whole exchange, or ``test`` it.

    python3 scripts/dev.py run      # install, start PostgreSQL + Redis, migrate, seed, run everything
    python3 scripts/dev.py test     # install, start throwaway test servers, run the whole suite
    python3 scripts/dev.py services up|down   # just the embedded PostgreSQL and Redis

Needs only Python 3.11 (or 3.12) with pip.  Everything else is installed into
``.venv/`` from ``requirements*.txt``; PostgreSQL and Redis come from wheels
and live under ``.data/``.  Set ``DATABASE_URL`` and ``REDIS_URL`` to use
servers of your own instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(cmd: list[str], **kwargs) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT, **kwargs)


def ensure_venv(requirements: str) -> None:
    """Create .venv and install ``requirements`` unless they are installed already."""
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        sys.exit(
            f"Python {sys.version.split()[0]} found; this project needs 3.11 or 3.12 "
            "(the embedded PostgreSQL and Redis wheels exist only for those)."
        )
    if not PYTHON.exists():
        say(f"creating virtual environment in {VENV}")
        try:
            run([sys.executable, "-m", "venv", str(VENV)])
        except subprocess.CalledProcessError:
            shutil.rmtree(VENV, ignore_errors=True)
            say("the venv module is unavailable (Debian: apt-get install python3-venv); using virtualenv")
            run([sys.executable, "-m", "pip", "install", "--user", "--quiet", "virtualenv"])
            run([sys.executable, "-m", "virtualenv", str(VENV)])
    files = [ROOT / "requirements.txt", ROOT / requirements]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"installing Python packages from {requirements} (first run takes a minute or two)")
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements])
    stamp.write_text(digest)


def ensure_node_packages() -> None:
    """Install the browser libraries of package.json (the trading page's chart) unless installed already.

    They are served as static files straight from node_modules/; there is no build step.
    """
    lock = ROOT / "package-lock.json"
    stamp = ROOT / "node_modules" / ".installed-lock"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    npm = shutil.which("npm")
    if npm is None:
        say("npm not found: the trading page's chart needs Node.js and npm (Debian: apt-get install npm)")
        return
    say("installing browser libraries from package-lock.json (npm ci)")
    run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
    stamp.write_text(digest)


# Debian packages the test suite uses, by the command each provides: the compose file
# is validated with `docker-compose config` (no Docker engine needed) and browser
# tests drive Chromium.
TEST_SYSTEM_PACKAGES = {"docker-compose": "docker-compose", "chromium": "chromium"}


def ensure_system_packages(packages: dict[str, str]) -> None:
    """apt-get install the Debian ``packages`` (name -> command it provides) whose command is missing.

    Only as root or with password-less sudo, in one quiet apt-get run; otherwise
    say what to install and go on (the tests that need them say so too).
    """
    missing = sorted(name for name, command in packages.items() if shutil.which(command) is None)
    if not missing:
        return
    if shutil.which("apt-get") is None:
        say(f"not a Debian system: install {', '.join(missing)} yourself; the tests that need them will fail")
        return
    if os.geteuid() == 0:
        sudo: list[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        sudo = ["sudo", "-n"]
    else:
        say(f"skipping system packages (needs root or sudo): apt-get install {' '.join(missing)}")
        return
    say(f"installing system packages: {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = [*sudo, "apt-get", "-qq", "-o", "Dpkg::Use-Pty=0"]
    install = [*apt, "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # Package lists may be missing or stale (a fresh container): update once, retry.
        subprocess.run([*apt, "update"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            say(f"apt-get install {' '.join(missing)} failed:\n{result.stderr.strip()[-2000:]}")


def services_env(data_dir: Path, *, fast: bool) -> dict[str, str]:
    """Start the embedded servers (unless DATABASE_URL/REDIS_URL are set) and return the environment."""
    env = dict(os.environ)
    if env.get("DATABASE_URL") and env.get("REDIS_URL"):
        say("using DATABASE_URL and REDIS_URL from the environment")
        return env
    say(f"starting embedded PostgreSQL and Redis under {data_dir.relative_to(ROOT)}/")
    args = [str(PYTHON), "-m", "exchange_site.embedded", "up", "--data-dir", str(data_dir)]
    output = subprocess.run(
        [*args, "--fast"] if fast else args, check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key in ("DATABASE_URL", "REDIS_URL"):
            env[key] = value
    return env


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free TCP port on 127.0.0.1")


def cmd_run() -> int:
    ensure_venv("requirements.txt")
    ensure_node_packages()
    env = services_env(ROOT / ".data", fast=False)
    env.setdefault("DJANGO_SETTINGS_MODULE", "exchange_site.settings.dev")
    manage = [str(PYTHON), "manage.py"]
    say("applying database migrations")
    run([*manage, "migrate", "--no-input", "-v", "0"], env=env)
    say("seeding demo markets and users")
    run([*manage, "seed_demo"], env=env)
    port = free_port(int(env.get("PORT", "8000")))
    env["PORT"] = str(port)
    env["WS_PORT"] = str(free_port(int(env.get("WS_PORT", str(port + 1)))))
    env.setdefault("EXCHANGE_WS_URL", f"ws://127.0.0.1:{env['WS_PORT']}/ws")
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    url = f"http://127.0.0.1:{port}"
    # The market maker reaches gunicorn and daphne by URL like any outside client (honcho gives
    # every process its own PORT, so it cannot read the web server's from there).
    env.setdefault("MARKET_MAKER_API_URL", url)
    env.setdefault("MARKET_MAKER_WS_URL", env["EXCHANGE_WS_URL"])
    print(
        f"\n  Exchange:  {url}/\n  API docs:  {url}/api/docs\n  Admin:     {url}/admin/\n"
        f"  WebSocket: {env['EXCHANGE_WS_URL']}\n"
        "  Logins:    admin/admin (operator), alice/alice and bob/bob (traders)\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    honcho = str(VENV / "bin" / "honcho")
    # Replace this process: Ctrl-C and SIGTERM reach honcho, which stops every process it started.
    os.chdir(ROOT)
    os.execve(honcho, [honcho, "-f", str(ROOT / "Procfile"), "start"], env)  # noqa: S606


def cmd_test(pytest_args: list[str]) -> int:
    ensure_venv("requirements-dev.txt")
    ensure_node_packages()
    ensure_system_packages(TEST_SYSTEM_PACKAGES)
    env = services_env(ROOT / ".data" / "test", fast=True)
    env["DJANGO_SETTINGS_MODULE"] = "exchange_site.settings.test"
    started = time.monotonic()
    say("running the test suite (real PostgreSQL and Redis)")
    code = subprocess.call([str(PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT, env=env)
    say(f"tests finished in {time.monotonic() - started:.0f}s with exit code {code}")
    return code


def cmd_services(action: str) -> int:
    ensure_venv("requirements.txt")
    if action == "down":
        run([str(PYTHON), "-m", "exchange_site.embedded", "down", "--data-dir", str(ROOT / ".data")])
        return 0
    env = services_env(ROOT / ".data", fast=False)
    print(f"DATABASE_URL={env['DATABASE_URL']}\nREDIS_URL={env['REDIS_URL']}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        return cmd_run()
    if command == "test":
        return cmd_test(rest)
    if command == "services" and rest and rest[0] in ("up", "down"):
        return cmd_services(rest[0])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

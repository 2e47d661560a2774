"""docker-compose.yml: valid for Compose, and every process it starts names something this project has.

Validation uses Debian's ``docker-compose`` (``config`` needs no Docker
engine; ``scripts/dev.py test`` installs it).  The other checks parse the
file and hand each command to the program that will run it, without running
it: ``manage.py`` commands to their own argument parser, Celery's ``-A`` to
Celery's app finder and its subcommand's options to Celery's CLI, gunicorn's
arguments and config file to gunicorn, daphne's to daphne.  They also check
that nginx's upstreams, the static volume and the health checks line up with
the services.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

ROOT = Path(settings.BASE_DIR)
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
NGINX_CONF = (ROOT / "deploy" / "nginx.conf").read_text()
# Where the Dockerfile puts the project (WORKDIR).
APP_DIR = "/app"


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR:?message}``, with .env.example as the .env."""
    values = env_example()

    def one(match: re.Match) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3)
        if name in values:
            return values[name]
        assert operator == ":-", f"{name} is required by docker-compose.yml but missing from .env.example"
        return default

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, str(value))


def service_env(name: str) -> dict[str, str]:
    return {key: interpolate(value) for key, value in SERVICES[name].get("environment", {}).items()}


def app_services() -> list[str]:
    """Services that run this project's image."""
    return [name for name, service in SERVICES.items() if "build" in service]


def listen_port(name: str) -> int:
    """The TCP port a web-facing service's command binds, read as its server reads it."""
    argv = SERVICES[name]["command"]
    if argv[0] == "daphne":
        return parse_daphne(argv).port
    if argv[0] == "gunicorn":
        return int(service_env(name)["WEB_BIND"].rsplit(":", 1)[1])
    raise AssertionError(f"{name} serves no HTTP")


def parse_daphne(argv: list[str]):
    from daphne.cli import CommandLineInterface

    return CommandLineInterface().parser.parse_args(argv[1:])


# --- the file is valid for Compose ----------------------------------------------------------


@pytest.fixture(scope="module")
def compose_dir(tmp_path_factory) -> Path:
    """The compose file beside a .env made from .env.example, as an operator starts."""
    if shutil.which("docker-compose") is None:
        pytest.fail(
            "docker-compose is not installed: `apt-get install docker-compose` "
            "(scripts/dev.py test installs it when run as root)"
        )
    directory = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", directory / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", directory / ".env")
    return directory


def compose(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", *args], cwd=directory, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "demo"]], ids=["default", "demo"])
def test_docker_compose_config_accepts_the_file_without_a_warning(compose_dir, profile):
    result = compose(compose_dir, *profile, "config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_docker_compose_refuses_to_start_without_the_public_host_name(compose_dir, tmp_path):
    shutil.copy(compose_dir / "docker-compose.yml", tmp_path / "docker-compose.yml")
    env = [line for line in (compose_dir / ".env").read_text().splitlines() if not line.startswith("EXCHANGE_DOMAIN=")]
    (tmp_path / ".env").write_text("\n".join(env) + "\n")
    result = compose(tmp_path, "config", "-q")
    assert result.returncode != 0
    assert "set EXCHANGE_DOMAIN in .env" in result.stderr


# --- every command exists -------------------------------------------------------------------


def check_manage_py(argv: list[str]) -> None:
    assert argv[:2] == ["python", "manage.py"], argv
    name, args = argv[2], argv[3:]
    commands = get_commands()
    assert name in commands, f"manage.py has no command {name!r}"
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    try:
        parser.parse_args(args)
    except SystemExit as error:  # argparse's way of refusing arguments
        raise AssertionError(f"manage.py {name} refuses {args}") from error


def check_celery(argv: list[str]) -> None:
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as celery_cli

    context = celery_cli.make_context("celery", argv[1:])
    app = find_app(context.params["app"])
    assert isinstance(app, Celery)
    from exchange_site.celery import app as project_app

    assert app is project_app
    # The first word naming a Celery command; what follows is its own arguments.
    at = next(i for i, word in enumerate(argv) if word in celery_cli.commands)
    subcommand, args = argv[at], argv[at + 1 :]
    assert subcommand in ("worker", "beat"), subcommand
    obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    celery_cli.commands[subcommand].make_context(subcommand, args, obj=obj)  # raises on an unknown option


def check_gunicorn(argv: list[str], env: dict[str, str], monkeypatch) -> None:
    from gunicorn.app.wsgiapp import WSGIApplication

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "argv", argv)
    config_file = argv[argv.index("-c") + 1]
    assert (ROOT / config_file).is_file(), config_file
    application = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]")  # parses argv and runs the config file
    assert application.cfg.bind == [env["WEB_BIND"]]
    assert callable(application.load_wsgiapp())


def check_daphne(argv: list[str]) -> None:
    from django.utils.module_loading import import_string

    args = parse_daphne(argv)
    assert args.proxy_headers, "behind nginx, daphne must read the client's address from X-Forwarded-For"
    assert callable(import_string(args.application.replace(":", ".")))


@pytest.mark.parametrize("name", app_services())
def test_every_service_command_names_something_the_project_has(name, monkeypatch):
    argv = [str(word) for word in SERVICES[name]["command"]]
    if argv[0] == "python":
        check_manage_py(argv)
    elif argv[0] == "celery":
        check_celery(argv)
    elif argv[0] == "gunicorn":
        check_gunicorn(argv, service_env(name), monkeypatch)
    elif argv[0] == "daphne":
        check_daphne(argv)
    else:
        raise AssertionError(f"{name}: unexpected program {argv[0]!r}")
    # The program itself is installed from requirements.txt.
    assert argv[0] == "python" or Path(sys.executable).with_name(argv[0]).exists(), argv[0]


def test_the_processes_of_the_production_topology_are_all_there():
    programs = {name: [str(word) for word in SERVICES[name].get("command", [])] for name in SERVICES}
    assert "timescaledb" in SERVICES["db"]["image"]
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["nginx"]["image"].startswith("nginx:")
    assert programs["web"][0] == "gunicorn"
    assert programs["ws"][0] == "daphne"
    assert programs["migrate"][2] == "migrate"
    celery = [argv[3] for argv in programs.values() if argv[:1] == ["celery"]]
    assert sorted(celery) == ["beat", "worker"]
    assert [name for name, argv in programs.items() if argv[2:3] == ["run_market_maker"]] == ["market-maker"]


def test_each_demo_market_has_exactly_one_engine_and_each_engine_names_its_markets():
    from exchange_site.demo import MARKETS

    owners: dict[str, list[str]] = {}
    for name, service in SERVICES.items():
        argv = [str(word) for word in service.get("command", [])]
        if argv[2:3] == ["run_engine"]:
            # Without --markets an engine claims every market and collides with the others.
            assert "--markets" in argv, f"{name} must name its markets"
            for symbol in argv[argv.index("--markets") + 1].split(","):
                owners.setdefault(symbol, []).append(name)
    assert {symbol: len(names) for symbol, names in owners.items()} == {f"{b}_{q}": 1 for b, q, *_ in MARKETS}


def test_beat_keeps_its_schedule_on_a_volume():
    argv = SERVICES["beat"]["command"]
    schedule_dir = str(Path(argv[argv.index("-s") + 1]).parent)
    assert schedule_dir in {volume.split(":")[1] for volume in SERVICES["beat"]["volumes"]}


# --- nginx, static files and health checks line up --------------------------------------------


def test_nginx_upstreams_are_the_web_and_ws_services_on_the_ports_they_bind():
    upstreams = dict(re.findall(r"upstream\s+(\w+)\s*\{\s*server\s+([\w.:-]+)", NGINX_CONF))
    assert upstreams == {"http_workers": f"web:{listen_port('web')}", "websockets": f"ws:{listen_port('ws')}"}
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in SERVICES["nginx"]["volumes"]}
    assert mounts["./deploy/nginx.conf"] == "/etc/nginx/conf.d/default.conf"
    for source in mounts:
        if source.startswith("./") and source != "./deploy/certs":  # certificates are the operator's
            assert (ROOT / source).exists(), source


def test_nginx_sends_websockets_on_ws_and_stream_to_daphne_with_upgrade_headers():
    location = re.search(r"location ~ (\^/\S+) \{(.*?)\n    \}", NGINX_CONF, re.S)
    assert location, "no regex location for the WebSocket paths"
    pattern, body = location.groups()
    # Every WebSocket path the ASGI router serves reaches daphne (ours and the Binance-compatible ones).
    for path in ("/ws", "/binance/ws", "/binance/ws/btcusdt@trade", "/binance/stream", "/binance/ws-api/v3"):
        assert re.match(pattern, path), path
    assert not re.match(pattern, "/api/v3/order"), "REST goes to the HTTP workers"
    assert "proxy_pass http://websockets;" in body
    assert "proxy_http_version 1.1;" in body
    assert "proxy_set_header Upgrade $http_upgrade;" in body
    assert "proxy_set_header Connection $connection_upgrade;" in body


def test_nginx_serves_the_static_files_that_collectstatic_writes():
    static_root = f"{APP_DIR}/{Path(settings.STATIC_ROOT).relative_to(ROOT)}"
    assert f"location {settings.STATIC_URL} {{\n        alias {static_root}/;" in NGINX_CONF
    assert SERVICES["static"]["command"][2] == "collectstatic"
    assert f"static:{static_root}" in SERVICES["static"]["volumes"]
    assert f"static:{static_root}:ro" in SERVICES["nginx"]["volumes"]
    assert (ROOT / "static" / "robots.txt").is_file()


@pytest.mark.parametrize("name", ["web", "ws"])
def test_health_checks_probe_the_service_itself_on_a_url_the_project_serves(name):
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "deploy/healthcheck.py"]
    assert (ROOT / test[2]).is_file()
    url = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\w+)", test[3])
    assert url, test[3]
    assert int(url.group(1)) == listen_port(name)
    try:
        assert resolve(url.group(2)).url_name in ("healthz", "readyz")
    except Resolver404 as error:
        raise AssertionError(f"{name}'s health check probes {url.group(2)}, which no view serves") from error


def test_the_market_maker_waits_for_an_exchange_ready_to_trade():
    # web is healthy when /readyz is: database, Redis and an engine for every trading market.
    assert SERVICES["web"]["healthcheck"]["test"][3].endswith("/readyz")
    assert SERVICES["market-maker"]["depends_on"]["web"] == {"condition": "service_healthy"}

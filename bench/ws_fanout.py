#!/usr/bin/env python3
"""WebSocket fan-out benchmark: N clients subscribed to one market's public streams while orders flow.

    .venv/bin/python bench/ws_fanout.py [--clients N] [--seconds S] [--rate R] [--ws-processes K]
                                        [--client-processes P] [--streams depth,trades,ticker]
                                        [--url URL --ws-url WS_URL [--ws-url ...]]

Defaults: 100 clients, 10 s, 20 order requests/s, 1 daphne process, streams
``depth``, ``trades`` and ``ticker`` of BTC_USDT.

Unless ``--url`` points at a running exchange (then ``--ws-url`` gives its
WebSocket endpoints), it starts its own stack as ``bench/e2e.py`` does and
with its functions: embedded PostgreSQL and Redis under ``.data/bench/``
(database recreated, Redis flushed), funded users with API keys, gunicorn
for the REST API, ``run_engine``, and ``K`` daphne processes on their own
loopback ports.  There is no load balancer: with ``K`` > 1 the clients are
spread evenly over the daphne ports.  Each service's output goes to
``.data/bench/logs/<run>/``.

The clients are asyncio ``websockets`` connections, ``P`` processes of them,
each connection sending one ``SUBSCRIBE`` for the chosen streams.  When every
connection has its subscription confirmed, a *tap* process subscribes with
redis-py to the Channels groups' pub/sub channels (``asgi__group__md.trades.BTC_USDT``
...) and timestamps every frame as it appears on Redis; then paced client
processes (``bench/e2e.py``'s order flow: limits around a random-walking mid,
market orders, cancels) send ``R`` signed requests per second for ``S``
seconds.  After the engine has drained and the last frame reached Redis,
the tap stops; the clients keep receiving until every frame the tap saw has
reached every client, or until ``--drain-timeout``.

Figures, per stream and for all: frames published per second (on Redis);
frames delivered per second summed over clients, during the load and over
the whole run including the drain; the latency from the engine's batch time
``E`` to the client (an upper bound: ``E`` is taken when the batch starts,
before matching and commit, in whole milliseconds), from ``E`` to Redis (the
engine's own part), and from Redis to the client (the fan-out proper:
channels-redis, the consumer, daphne, the socket and the client's own event
loop).  CPU per process group during the load, as ``bench/e2e.py`` measures
it (``ws-1`` ... are the daphne processes, ``ws_clients`` the WebSocket
clients, ``order_flow`` the HTTP clients, ``tap`` the Redis listener).

Every client must receive every frame the tap saw, in order: trade ids and
depth update ids without gaps, first and last equal to the tap's, and each
frame once per client.  Anything missing, a connection that failed or
closed early, or a trade in the database that never reached Redis, is a
failure: exit 1.  Figures go to stdout, then one JSON line
(``{"bench": "ws_fanout", ...}``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import os
import resource
import socket
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import e2e  # bench/e2e.py: the stack, the order flow and the CPU meter

SYMBOL = e2e.SYMBOL
STREAM_KINDS = ("depth", "trades", "ticker")
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process (daphne's listen backlog is 50)
READY_TIMEOUT_S = 180.0
PROGRESS_EVERY_S = 3.0
SETTLE_S = 1.0  # after the engine drained: the last batch's frames reach Redis
QUIET_GIVE_UP_S = 5.0  # clients short of frames and nothing arriving for this long: stop waiting


# --------------------------------------------------------------------------- WebSocket clients (client processes)


@dataclass
class WsClientConfig:
    index: int
    urls: list[str]  # one per connection
    streams: list[str]


@dataclass(slots=True)
class ConnectionStats:
    """What one connection saw, enough to prove it missed nothing."""

    url: str
    subscribed: bool = False
    error: str | None = None
    frames: Counter[str] = field(default_factory=Counter)  # per stream
    first_trade: int | None = None
    last_trade: int | None = None
    trade_gaps: int = 0
    first_update: int | None = None  # depth U of the first update
    last_update: int | None = None  # depth u of the last update
    depth_gaps: int = 0
    other: int = 0  # anything that is not a stream frame (error frames)


@dataclass
class WsClientResult:
    index: int
    connections: list[ConnectionStats] = field(default_factory=list)
    # Frame text -> receipt times (time.time()), one per connection that received it.
    receipts: dict[str, array] = field(default_factory=dict)


def raise_open_files_limit(needed: int) -> None:
    """Each connection is a file descriptor on both ends; lift the soft limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < needed:
        print(f"!! open files limited to {hard}; {needed} wanted", file=sys.stderr)


def run_ws_clients(config: WsClientConfig, ready: Any, progress: Any, stop: Any, results: Any) -> None:
    """One client process: its connections receive until ``stop`` is set, then it reports a WsClientResult."""
    raise_open_files_limit(len(config.urls) + 256)
    results.put(asyncio.run(_ws_clients(config, ready, progress, stop)))


async def _ws_clients(config: WsClientConfig, ready: Any, progress: Any, stop: Any) -> WsClientResult:
    import websockets

    out = WsClientResult(index=config.index)
    receipts = out.receipts
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    subscribe = json.dumps({"method": "SUBSCRIBE", "params": config.streams, "id": 1})
    trades_stream, depth_stream = f"trades@{SYMBOL}", f"depth@{SYMBOL}"
    slot = config.index
    sockets: list[Any] = []
    stopping = False

    async def connection(url: str) -> None:
        stats = ConnectionStats(url=url)
        out.connections.append(stats)
        try:
            async with gate:
                ws = await websockets.connect(url, open_timeout=60, close_timeout=1, max_size=2**20)
                sockets.append(ws)
                await ws.send(subscribe)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
        except (OSError, TimeoutError, ValueError, websockets.exceptions.WebSocketException) as error:
            stats.error = f"connect: {type(error).__name__}: {error}"[:300]
            return
        if reply != {"result": None, "id": 1}:
            stats.error = f"subscribe answered {reply}"[:300]
            return
        stats.subscribed = True
        ready[slot] += 1
        frames = stats.frames
        try:
            async for raw in ws:
                now = time.time()
                times = receipts.get(raw)
                if times is None:
                    times = receipts[raw] = array("d")
                times.append(now)
                progress[slot] += 1
                message = json.loads(raw)
                stream = message.get("stream") if isinstance(message, dict) else None
                if stream is None:
                    stats.other += 1
                    continue
                frames[stream] += 1
                data = message["data"]
                if stream == trades_stream:
                    t = data["t"]
                    if stats.last_trade is None:
                        stats.first_trade = t
                    elif t != stats.last_trade + 1:
                        stats.trade_gaps += 1
                    stats.last_trade = t
                elif stream == depth_stream:
                    if stats.last_update is None:
                        stats.first_update = data["U"]
                    elif data["U"] != stats.last_update + 1:
                        stats.depth_gaps += 1
                    stats.last_update = data["u"]
        except websockets.exceptions.ConnectionClosed as error:
            if not stopping:
                stats.error = f"closed: {error}"[:300]

    tasks = [asyncio.create_task(connection(url)) for url in config.urls]
    while not stop.is_set():
        await asyncio.sleep(0.05)
    stopping = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True), 10)
    return out


# --------------------------------------------------------------------------- the Redis tap (its own process)


def run_tap(redis_url: str, channels: list[str], ready: Any, stop: Any, results: Any) -> None:
    """Timestamp every message published on ``channels`` as it arrives; report [(channel, data, time)]."""
    import redis

    with contextlib.suppress(OSError):
        os.nice(-5)  # prompt timestamps on a busy machine; the tap itself uses little CPU
    pubsub = redis.Redis.from_url(redis_url).pubsub()
    pubsub.subscribe(*channels)
    confirmed = 0
    while confirmed < len(channels):
        message = pubsub.get_message(timeout=1.0)
        if message is not None and message["type"] == "subscribe":
            confirmed += 1
    ready.set()
    seen: list[tuple[bytes, bytes, float]] = []
    while not stop.is_set():
        message = pubsub.get_message(timeout=0.05)
        if message is not None and message["type"] == "message":
            seen.append((message["channel"], message["data"], time.time()))
    pubsub.close()
    results.put(seen)


# --------------------------------------------------------------------------- the run


@dataclass
class Published:
    """One frame the tap saw on Redis."""

    stream: str
    text: str
    data: dict[str, Any]
    at: float  # time.time() of its arrival on the tap


def wait_ws_up(urls: list[str], services: list[e2e.Service], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for url in urls:
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        while True:
            for service in services:
                if service.process.poll() is not None:
                    raise SystemExit(f"{service.name} exited ({service.process.returncode}); see {service.log}")
            with socket.socket() as sock:
                if sock.connect_ex((host, int(port))) == 0:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not listen within {timeout:.0f} s")
            time.sleep(0.2)


def start_daphnes(env: dict[str, str], logs: Path, count: int) -> tuple[list[str], list[e2e.Service]]:
    daphne = str(Path(e2e.PYTHON).parent / "daphne")
    urls, services = [], []
    for k in range(1, count + 1):
        port = e2e.free_port()
        argv = [daphne, "-b", "127.0.0.1", "-p", str(port), "exchange_site.asgi:application"]
        services.append(e2e.start_service(f"ws-{k}", argv, env, logs))
        urls.append(f"ws://127.0.0.1:{port}/ws")
    return urls, services


def spread(clients: int, processes: int, ws_urls: list[str]) -> list[list[str]]:
    """The URL of every connection, per client process: each process spreads its share over every daphne."""
    plan: list[list[str]] = [[] for _ in range(processes)]
    for i in range(clients):
        process = i % processes
        plan[process].append(ws_urls[len(plan[process]) % len(ws_urls)])
    return plan


def last_trade_id() -> int:
    from orders.models import Trade

    ids = Trade.objects.filter(market__symbol=SYMBOL).order_by("-trade_id").values_list("trade_id", flat=True)
    return ids.first() or 0


def trade_ids_since(first_excluded: int) -> list[int]:
    from orders.models import Trade

    return list(
        Trade.objects.filter(market__symbol=SYMBOL, trade_id__gt=first_excluded)
        .order_by("trade_id")
        .values_list("trade_id", flat=True)
    )


def decode_tap(seen: list[tuple[bytes, bytes, float]]) -> list[Published]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    frames = []
    for _, data, at in seen:
        event = layer.deserialize(data)
        frames.append(Published(event["stream"], event["text"], json.loads(event["text"])["data"], at))
    return frames


def wait_for_delivery(expected: int, progress: Any, timeout: float) -> tuple[float, bool]:
    """Wait until the clients hold at least ``expected`` frames and nothing more arrives; (seconds, complete)."""
    start = time.monotonic()
    last_total, last_change = -1, start
    next_report = start + PROGRESS_EVERY_S
    while True:
        now = time.monotonic()
        total = sum(progress)
        if total != last_total:
            last_total, last_change = total, now
        if total >= expected and now - last_change > 0.3:
            return now - start, True
        if now - last_change > QUIET_GIVE_UP_S or now - start > timeout:
            return now - start, total >= expected
        if now >= next_report:
            print(f"  .. delivering: {total} of {expected} frames received", file=sys.stderr, flush=True)
            next_report = now + PROGRESS_EVERY_S
        time.sleep(0.05)


def check_delivery(
    connections: list[ConnectionStats],
    published: list[Published],
    receipts: dict[str, array],
    db_trades: list[int],
) -> dict[str, Any]:
    """Every connection got every published frame, in order; every committed trade was published.

    Two views of the same promise: per frame, the number of connections that
    received it equals the number subscribed; per connection, its trade ids
    and depth update ids run without a gap over at least the published range
    (a frame published just before the tap subscribed may come on top).
    """
    subscribed = [c for c in connections if c.subscribed]
    failed_connections = [c for c in connections if not c.subscribed or c.error]
    missing: Counter[str] = Counter()
    duplicated = 0
    for frame in published:
        got = len(receipts.get(frame.text, ()))
        if got < len(subscribed):
            missing[frame.stream] += len(subscribed) - got
        duplicated += max(got - len(subscribed), 0)
    trades = [frame.data["t"] for frame in published if frame.stream.startswith("trades@")]
    depth = [frame.data for frame in published if frame.stream.startswith("depth@")]
    expected = Counter(frame.stream for frame in published)
    clients_with_loss = 0
    for c in subscribed:
        short = any(c.frames[stream] < n for stream, n in expected.items())
        trades_cover = not trades or (
            c.first_trade is not None and c.first_trade <= trades[0] and c.last_trade >= trades[-1]
        )
        depth_covers = not depth or (
            c.first_update is not None and c.first_update <= depth[0]["U"] and c.last_update >= depth[-1]["u"]
        )
        if short or not trades_cover or not depth_covers or c.trade_gaps or c.depth_gaps:
            clients_with_loss += 1
    return {
        "missing_frames": sum(missing.values()),
        "missing_by_stream": dict(missing),
        "duplicated_frames": duplicated,
        "clients_with_loss": clients_with_loss,
        "trade_gaps": sum(c.trade_gaps for c in connections),
        "depth_gaps": sum(c.depth_gaps for c in connections),
        "failed_connections": len(failed_connections),
        "failures": Counter((c.error or "not subscribed").split(":")[0] for c in failed_connections),
        "first_failure": next((c.error for c in failed_connections if c.error), None),
        "error_frames": sum(c.other for c in connections),
        "trades_committed": len(db_trades),
        "trades_not_published": len(set(db_trades) - set(trades)),
        "published_depth_gaps": sum(1 for a, b in itertools.pairwise(depth) if b["U"] != a["u"] + 1),
    }


def measure(
    published: list[Published], receipts: dict[str, array], load: tuple[float, float]
) -> tuple[dict[str, Any], float | None]:
    """Rates and latency summaries per stream and for all; and when the last published frame was delivered."""
    start, end = load
    window = max(end - start, 1e-9)
    streams = sorted({frame.stream for frame in published})
    by_stream: dict[str, dict[str, Any]] = {}
    last_receipt: float | None = None
    for stream in [*streams, "all"]:
        frames = published if stream == "all" else [f for f in published if f.stream == stream]
        e_client: list[float] = []
        redis_client: list[float] = []
        e_redis: list[float] = []
        delivered = in_window = 0
        for frame in frames:
            times = receipts.get(frame.text, ())
            batch_at = frame.data["E"] / 1000
            e_redis.append((frame.at - batch_at) * 1000)
            e_client += [(t - batch_at) * 1000 for t in times]
            redis_client += [(t - frame.at) * 1000 for t in times]
            delivered += len(times)
            in_window += sum(1 for t in times if start <= t <= end)
            if times and stream == "all":
                last = max(times)
                last_receipt = last if last_receipt is None else max(last_receipt, last)
        by_stream[stream] = {
            "published": len(frames),
            "published_per_s": round(sum(1 for f in frames if start <= f.at <= end) / window, 1),
            "delivered": delivered,
            "delivered_per_s_during_load": round(in_window / window, 1),
            "latency_batch_to_client_ms": e2e.latency_summary(e_client),
            "latency_redis_to_client_ms": e2e.latency_summary(redis_client),
            "latency_batch_to_redis_ms": e2e.latency_summary(e_redis),
        }
    return by_stream, last_receipt


def report(
    args: argparse.Namespace,
    by_stream: dict[str, dict[str, Any]],
    check: dict[str, Any],
    flow: dict[str, Any],
    load: tuple[float, float],
    last_receipt: float | None,
    delivery_wait: float,
    cpu: dict[str, float],
    per_frame: dict[str, float | None],
) -> dict[str, Any]:
    start, end = load
    overall_s = max((last_receipt or end) - start, end - start)
    everything = by_stream["all"]
    figures: dict[str, Any] = {
        "bench": "ws_fanout",
        "clients": args.clients,
        "ws_processes": args.ws_processes,
        "client_processes": args.client_processes,
        "streams": args.streams,
        "seconds": round(end - start, 2),
        "rate": args.rate,
        **flow,
        "published_per_s": everything["published_per_s"],
        "delivered_per_s_during_load": everything["delivered_per_s_during_load"],
        "delivered_per_s_overall": round(everything["delivered"] / overall_s, 1),
        "drain_after_load_s": round(max((last_receipt or end) - end, 0.0), 2),
        "latency_batch_to_client_ms": everything["latency_batch_to_client_ms"],
        "latency_redis_to_client_ms": everything["latency_redis_to_client_ms"],
        "latency_batch_to_redis_ms": everything["latency_batch_to_redis_ms"],
        "per_stream": {k: v for k, v in by_stream.items() if k != "all"},
        **check,
        "cpu_cores_during_load": cpu,
        "cpu_us_per_delivered_frame": per_frame,
    }

    def ms(summary: dict[str, Any]) -> str:
        return f"p50 {summary['p50']}  p99 {summary['p99']}  max {summary['max']}  (n={summary['n']})"

    def per_stream(key: str) -> str:
        return "  ".join(f"{name.split('@')[0]} {v[key]}" for name, v in by_stream.items() if name != "all")

    print(f"clients:                      {args.clients} on {args.ws_processes} daphne process(es), "
          f"{args.client_processes} client process(es); streams {', '.join(args.streams)}")  # fmt: skip
    print(f"order flow:                   {figures['seconds']} s at {args.rate:g} requests/s: "
          f"{flow['requests_per_s']} sent/s, {flow['accepted_per_s']} orders accepted/s, "
          f"{flow['trades_per_s']} trades/s")  # fmt: skip
    print(f"published frames/s (Redis):   {everything['published_per_s']}  ({per_stream('published_per_s')})")
    print(f"delivered frames/s, load:     {everything['delivered_per_s_during_load']}  "
          f"({per_stream('delivered_per_s_during_load')})  summed over clients")  # fmt: skip
    print(f"delivered frames/s, overall:  {figures['delivered_per_s_overall']}  "
          f"({everything['delivered']} frames; last one {figures['drain_after_load_s']} s after the load)")  # fmt: skip
    print(f"latency batch E -> client:    {ms(everything['latency_batch_to_client_ms'])}")
    print(f"latency Redis -> client:      {ms(everything['latency_redis_to_client_ms'])}")
    print(f"latency batch E -> Redis:     {ms(everything['latency_batch_to_redis_ms'])}  per frame")
    for name, values in by_stream.items():
        if name != "all":
            print(f"  {name:<27} E->client {ms(values['latency_batch_to_client_ms'])}")
            print(f"  {'':<27} Redis->client {ms(values['latency_redis_to_client_ms'])}")
    print(f"missing frames:               {check['missing_frames']} {check['missing_by_stream'] or ''}  "
          f"duplicated {check['duplicated_frames']}, clients with loss {check['clients_with_loss']}, "
          f"gaps trades {check['trade_gaps']} depth {check['depth_gaps']}")  # fmt: skip
    print(f"connections:                  {check['failed_connections']} failed {dict(check['failures']) or ''}, "
          f"{check['error_frames']} error frames, subscribed in {flow['connect_s']} s")  # fmt: skip
    print(f"trades committed/published:   {check['trades_committed']} / "
          f"{check['trades_committed'] - check['trades_not_published']}")  # fmt: skip
    print(f"waited for delivery:          {delivery_wait:.1f} s after the tap stopped")
    print(f"cpu during load (cores):      {'  '.join(f'{k} {v}' for k, v in cpu.items())}")
    print(f"cpu per delivered frame (µs): {'  '.join(f'{k} {v}' for k, v in per_frame.items())}  "
          "(load start to last delivery)")  # fmt: skip
    print(json.dumps(figures, sort_keys=False))
    return figures


def failure_of(check: dict[str, Any], published: list[Published]) -> str | None:
    if not published:
        return "nothing was published on Redis during the run"
    problems = []
    if check["failed_connections"]:
        problems.append(f"{check['failed_connections']} connections failed ({check['first_failure']})")
    if check["missing_frames"] or check["clients_with_loss"] or check["duplicated_frames"]:
        problems.append(
            f"{check['missing_frames']} frames not delivered (within --drain-timeout), "
            f"{check['duplicated_frames']} duplicated; {check['clients_with_loss']} clients short or out of order"
        )
    if check["trades_not_published"]:
        problems.append(f"{check['trades_not_published']} committed trades never reached Redis")
    if check["published_depth_gaps"]:
        problems.append(f"{check['published_depth_gaps']} gaps in the published depth update ids")
    return "; ".join(problems) or None


def run(args: argparse.Namespace) -> int:
    raise_open_files_limit(args.clients + 1024)
    services: list[e2e.Service] = []
    ctx = mp.get_context("spawn")
    stop_clients, stop_tap = ctx.Event(), ctx.Event()
    client_processes: list[Any] = []
    tap: Any = None
    try:
        env, credentials = e2e.prepare_data(args.url, args.users, "fan-")
        if args.url is None:
            logs = e2e.new_log_dir()
            url, web = e2e.start_web(env, logs, args.web_workers)
            services.append(web)
            services.append(e2e.start_service("engine", [e2e.PYTHON, "manage.py", "run_engine"], env, logs))
            ws_urls, daphnes = start_daphnes(env, logs, args.ws_processes)
            services += daphnes
            e2e.wait_until_up(url, services)
            wait_ws_up(ws_urls, services)
            print(f"logs: {logs}", file=sys.stderr)
        else:
            url, ws_urls = args.url.rstrip("/"), args.ws_url
        from marketdata import streams  # Django is set up by prepare_data
        from marketdata.broadcast import _group_channel

        before = last_trade_id()

        # The clients connect and subscribe first, so every frame the tap sees is owed to each of them.
        ready = ctx.Array("q", args.client_processes, lock=False)
        progress = ctx.Array("q", args.client_processes, lock=False)
        client_results = ctx.Queue()
        stream_names = [streams.public_stream(kind, SYMBOL) for kind in args.streams]
        for index, urls in enumerate(spread(args.clients, args.client_processes, ws_urls)):
            config = WsClientConfig(index=index, urls=urls, streams=stream_names)
            process = ctx.Process(
                target=run_ws_clients, args=(config, ready, progress, stop_clients, client_results), name=f"ws-{index}"
            )
            process.start()
            client_processes.append(process)
        print(f"connecting {args.clients} WebSocket clients to {', '.join(ws_urls)} ...", file=sys.stderr)
        connect_started = time.monotonic()
        while sum(ready) < args.clients and time.monotonic() - connect_started < READY_TIMEOUT_S:
            if any(not p.is_alive() for p in client_processes) or any(s.process.poll() is not None for s in services):
                break
            time.sleep(0.1)
        connect_s = time.monotonic() - connect_started
        print(f"{sum(ready)} of {args.clients} subscribed in {connect_s:.1f} s", file=sys.stderr)

        tap_ready, tap_results = ctx.Event(), ctx.Queue()
        channels = [_group_channel(streams.public_group(kind, SYMBOL)) for kind in args.streams]
        tap = ctx.Process(target=run_tap, args=(env["REDIS_URL"], channels, tap_ready, stop_tap, tap_results))
        tap.start()
        if not tap_ready.wait(30):
            raise SystemExit("the Redis tap did not subscribe within 30 s")

        roots = e2e.stack_pids(services) if args.url is None else {}
        roots |= {f"ws_clients_{p.name}": p.pid for p in client_processes} | {"tap": tap.pid}
        meter = e2e.CpuMeter(roots)
        flow_args = argparse.Namespace(
            clients=args.flow_processes, users=args.users, batch=1, seed=args.seed, seconds=args.seconds
        )
        print(f"order flow: {args.rate:g} requests/s for {args.seconds:g} s against {url}", file=sys.stderr)
        whole = e2e.CpuMeter(roots)  # from the load's start until the last frame was delivered
        whole.mark_start()
        flow_results = e2e.run_load(flow_args, url, credentials, meter, rate=args.rate)
        load = (min(r.started for r in flow_results), max(r.ended for r in flow_results))
        drained_in = e2e.wait_for_drain(e2e.DRAIN_TIMEOUT_S)
        time.sleep(SETTLE_S)
        stop_tap.set()
        seen = tap_results.get(timeout=60)
        tap.join(timeout=10)
        published = decode_tap(seen)
        print(
            f"load done; engine drained in {drained_in:.1f} s; {len(published)} frames published; "
            "waiting for the clients ...",
            file=sys.stderr,
        )
        delivery_wait, _ = wait_for_delivery(len(published) * sum(ready), progress, args.drain_timeout)
        whole.mark_end()
        stop_clients.set()
        results: list[WsClientResult] = []
        for _ in client_processes:
            with contextlib.suppress(Exception):
                results.append(client_results.get(timeout=60))
        for process in client_processes:
            process.join(timeout=10)
        for service in services:
            if service.process.poll() is not None:
                print(f"!! {service.name} died during the run; its output: {service.log}", file=sys.stderr)

        receipts: dict[str, array] = {}
        for result in results:
            for text, times in result.receipts.items():
                receipts.setdefault(text, array("d")).extend(times)
        connections = [c for result in results for c in result.connections]
        if len(results) < len(client_processes):
            print(f"!! only {len(results)} of {len(client_processes)} client processes reported", file=sys.stderr)
        check = check_delivery(connections, published, receipts, trade_ids_since(before))
        if len(connections) < args.clients:
            check["failed_connections"] += args.clients - len(connections)
        by_stream, last_receipt = measure(published, receipts, load)
        cpu = meter.cores()
        cpu["order_flow"] = cpu.pop("clients", 0.0)
        for name in [k for k in cpu if k.startswith("ws_clients_")]:
            cpu["ws_clients"] = round(cpu.get("ws_clients", 0.0) + cpu.pop(name), 2)
        cpu = {k: cpu[k] for k in sorted(cpu, key=lambda k: k in ("machine", "other", "machine_cores"))}
        flow = flow_figures(flow_results, load, before) | {"connect_s": round(connect_s, 1)}
        per_frame = cpu_per_frame(whole.figures, by_stream["all"]["delivered"])
        report(args, by_stream, check, flow, load, last_receipt, delivery_wait, cpu, per_frame)
        failure = failure_of(check, published)
    finally:
        stop_tap.set()
        stop_clients.set()
        for process in [*client_processes, *([tap] if tap is not None else [])]:
            process.join(timeout=15)
            if process.is_alive():
                process.terminate()
        e2e.stop_services(services)
    if failure:
        print("\n" + "!" * 72 + f"\n!! DELIVERY FAILED: {failure}\n" + "!" * 72, file=sys.stderr)
        print(f"DELIVERY FAILED: {failure}")
        return 1
    print("delivery: every client received every frame", file=sys.stderr)
    return 0


def cpu_per_frame(used: dict[str, float], delivered: int) -> dict[str, float | None]:
    """CPU microseconds per delivered frame: the daphne processes (all of them) and the WebSocket clients."""
    daphne = sum(v for k, v in used.items() if k.startswith("ws-"))
    clients = sum(v for k, v in used.items() if k.startswith("ws_clients_"))
    if not delivered:
        return {"daphne": None, "ws_clients": None}
    return {
        "daphne": round(daphne / delivered * 1e6, 1) if daphne else None,
        "ws_clients": round(clients / delivered * 1e6, 1),
    }


def flow_figures(results: list[e2e.ClientResult], load: tuple[float, float], before: int) -> dict[str, Any]:
    window = max(load[1] - load[0], 1e-9)
    requests = sum(r.placement_requests + r.cancel_requests for r in results)
    accepted = sum(len(r.accepted) for r in results)
    trades = len(trade_ids_since(before))
    rejected: Counter[str] = Counter()
    for r in results:
        rejected.update(r.rejected)
    return {
        "requests_per_s": round(requests / window, 1),
        "accepted_per_s": round(accepted / window, 1),
        "rejected": dict(rejected),
        "trades": trades,
        "trades_per_s": round(trades / window, 1),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100, help="WebSocket connections (default 100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="order flow duration (default 10)")
    parser.add_argument("--rate", type=float, default=20.0, help="order requests per second sent (default 20)")
    parser.add_argument("--ws-processes", type=int, default=1, help="daphne processes (default 1)")
    parser.add_argument(
        "--client-processes", type=int, default=None, help="WebSocket client processes (default 1 per 500 clients)"
    )
    parser.add_argument(
        "--streams", default=",".join(STREAM_KINDS), help="public streams each client subscribes to (default all)"
    )
    parser.add_argument("--flow-processes", type=int, default=2, help="HTTP order-flow processes (default 2)")
    parser.add_argument("--users", type=int, default=20, help="users with API keys for the flow (default 20)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes (default 2)")
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="longest wait for delivery after the load (default 60)"
    )
    parser.add_argument("--url", default=None, help="use a running exchange at this URL instead of starting one")
    parser.add_argument("--ws-url", action="append", default=[], help="its WebSocket endpoint(s), with --url")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    args.streams = [s for s in args.streams.split(",") if s]
    if not args.streams or set(args.streams) - set(STREAM_KINDS):
        parser.error(f"--streams takes a comma-separated subset of {','.join(STREAM_KINDS)}")
    if args.client_processes is None:
        args.client_processes = max(1, min(4, math.ceil(args.clients / 500)))
    if not 1 <= args.clients <= 20_000:
        parser.error("--clients must be between 1 and 20000")
    if not 1 <= args.client_processes <= args.clients:
        parser.error("--client-processes must be between 1 and --clients")
    if not 1 <= args.ws_processes <= 16:
        parser.error("--ws-processes must be between 1 and 16")
    if args.rate <= 0 or args.seconds <= 0 or args.seconds > 3600:
        parser.error("--rate must be positive and --seconds in (0, 3600]")
    if args.users < args.flow_processes:
        parser.error("--users must be at least --flow-processes")
    if args.url is not None and not args.ws_url:
        parser.error("--url needs --ws-url (the exchange's WebSocket endpoint, e.g. ws://127.0.0.1:8001/ws)")
    if args.url is None and args.ws_url:
        parser.error("--ws-url goes with --url")
    if args.url is not None:
        args.ws_processes = len(args.ws_url)
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

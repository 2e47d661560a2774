"""Profile the order-placement path in-process: signed POST /api/v1/orders through Django's handler.

    python bench/profile_place.py [--requests N] [--top K] [--batch B]

No HTTP server and no engine: it measures what one web worker spends per
request (auth, validation, the database round trips, the stream write,
serialization), prints the mean time per request, the database queries and
Redis commands per request, and cProfile's top functions by cumulative time,
then a JSON line.  It runs on the embedded servers under ``.data/profile/``
(a fresh database each run).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def setup_django() -> None:
    from exchange_site import embedded

    data_dir = REPO / ".data" / "profile"
    services = embedded.up(data_dir, fast=True)
    os.environ.update(services)
    os.environ["DJANGO_SETTINGS_MODULE"] = "exchange_site.settings.dev"
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # One user sends every request: limits far above that, so the throttles count (and cost) but never refuse.
    os.environ.setdefault("THROTTLE_USER", "10000000/minute")
    os.environ.setdefault("THROTTLE_ORDERS", "10000000/minute")
    # One user places every order and no engine ends any: lift the open-order cap (decision 010).
    os.environ.setdefault("MAX_OPEN_ORDERS", "1000000")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)
    from exchange_site.redis import get_redis

    get_redis().flushdb()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sort", default="cumulative", help="pstats order: cumulative or tottime")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--batch", type=int, default=1, help="orders per request (1: POST /orders; >1: /orders/batch)")
    parser.add_argument(
        "--cancel", action="store_true", help="profile DELETE /api/v1/orders/{id} (orders placed beforehand, untimed)"
    )
    args = parser.parse_args(argv)
    setup_django()

    from django.db import connection
    from django.test import Client

    from accounts import services as money
    from accounts.models import Asset, User
    from exchange_site.redis import get_redis
    from markets.selectors import market_get
    from markets.services import market_create
    from tests.signing import signed_headers

    btc = Asset.objects.create(symbol="BTC", name="Bitcoin", precision=8)
    usdt = Asset.objects.create(symbol="USDT", name="Tether", precision=8)
    market_create(base=btc, quote=usdt, tick_size=Decimal("0.01"), lot_size=Decimal("0.00001"))
    user = User.objects.create(username="profiler")
    money.deposit(user=user, asset=usdt, amount=Decimal(10) ** 12)
    api_key, secret = money.api_key_create(user=user)
    client = Client()

    to_cancel: list[int] = []
    if args.cancel:
        from orders import services as order_services

        place = order_services.OrderRequest(side="buy", type="limit", price=Decimal(100), quantity=Decimal("0.01"))
        market = market_get(symbol="BTC_USDT")
        to_cancel = [
            order_services.place_order(user=user, market=market, request=place).pk
            for _ in range(2 * args.requests + 60)
        ]

    def request(i: int):
        if args.cancel:
            path = f"/api/v1/orders/{to_cancel.pop()}"
            headers = signed_headers(key=api_key.key, secret=secret, method="DELETE", path=path, body=b"")
            response = client.delete(path, **headers)
            assert response.status_code == 202, response.content
            return response
        order = {
            "market": "BTC_USDT",
            "side": "buy",
            "type": "limit",
            "price": f"{100 + i % 50}.00",
            "quantity": "0.01",
        }
        if args.batch > 1:
            path, body = "/api/v1/orders/batch", json.dumps({"orders": [order] * args.batch}).encode()
        else:
            path, body = "/api/v1/orders", json.dumps(order).encode()
        headers = signed_headers(key=api_key.key, secret=secret, method="POST", path=path, body=body)
        response = client.post(path, body, content_type="application/json", **headers)
        assert response.status_code in (200, 201), response.content
        return response

    for i in range(50):  # warm up caches, connections and imports
        request(i)
    redis = get_redis()
    redis_before = int(redis.info("stats")["total_commands_processed"])
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        request(0)
    redis_calls = int(redis.info("stats")["total_commands_processed"]) - redis_before - 1  # minus the INFO itself

    started = time.perf_counter()
    for i in range(args.requests):
        request(i)
    plain_us = (time.perf_counter() - started) / args.requests * 1e6

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i in range(args.requests):
        request(i)
    profiler.disable()
    elapsed = time.perf_counter() - started
    per_request_us = elapsed / args.requests * 1e6

    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    print("queries per request:")
    for sql in statements:
        print(f"  {sql[:160]}")
    print(f"requests={args.requests} orders_per_request={args.batch}")
    print(f"us_per_request={plain_us:.0f} (profiled: {per_request_us:.0f})")
    print(f"db_queries_per_request={len(statements)} redis_commands_per_request={redis_calls}")
    print(
        json.dumps(
            {
                "bench": "profile_place",
                "requests": args.requests,
                "orders_per_request": args.batch,
                "us_per_request": round(plain_us),
                "us_per_request_profiled": round(per_request_us),
                "db_queries_per_request": len(statements),
                "redis_commands_per_request": redis_calls,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

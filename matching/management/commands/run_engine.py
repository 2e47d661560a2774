"""``manage.py run_engine [--markets BTC_USDT,ETH_USDT]``: the matching engine worker."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from markets.models import Market
from matching.engine import Engine, MarketTaken


class Command(BaseCommand):
    help = "Match orders from the markets' Redis streams and settle them in PostgreSQL (one engine per market)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--markets", default="", help="Comma-separated symbols; default: every market.")
        parser.add_argument("--batch-size", type=int, default=None, help="Most commands per market per batch.")

    def handle(self, *args, markets: str, batch_size: int | None, **options) -> None:
        wanted = [s.strip().upper() for s in markets.split(",") if s.strip()]
        queryset = Market.objects.select_related("base", "quote").order_by("symbol")
        found = list(queryset.filter(symbol__in=wanted) if wanted else queryset)
        missing = sorted(set(wanted) - {m.symbol for m in found})
        if missing:
            raise CommandError(f"Unknown market(s): {', '.join(missing)}. Create them first (manage.py seed_demo).")
        if not found:
            raise CommandError("There are no markets yet. Run `manage.py seed_demo` or create one in the admin.")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"engine: markets {', '.join(m.symbol for m in found)}; Ctrl-C stops after the current batch")
        try:
            Engine(found, batch_size=batch_size).run(stop)
        except MarketTaken as error:
            raise CommandError(str(error)) from None

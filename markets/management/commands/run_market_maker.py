"""``manage.py run_market_maker [--markets BTC_USDT,ETH_USDT]``: the demo liquidity bot.

It trades through the REST API and the WebSocket like any outside client
(settings ``MARKET_MAKER``; see markets/market_maker/).  SIGTERM or Ctrl-C
stops it after the current cycle; it then cancels its quotes unless told not to.
"""

from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exchange_site.demo import credentials_path
from markets.market_maker.bot import MarketMaker
from markets.market_maker.client import ExchangeClient
from markets.market_maker.config import ConfigError, MakerConfig


class Command(BaseCommand):
    help = "Keep a ladder of bids and asks on the markets through the public API, as an outside bot would."
    # An outside client: it uses no model and no database, so the project's system checks are not its business.
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--markets", default=None, help="Comma-separated symbols; default: every trading market.")
        parser.add_argument(
            "--keep-quotes", action="store_true", help="Leave the quotes on the book on exit (default: cancel them)."
        )

    def handle(self, *args, markets: str | None, keep_quotes: bool, **options) -> None:
        values = dict(settings.MARKET_MAKER)
        if keep_quotes:
            values["CANCEL_ON_EXIT"] = False
        try:
            config = MakerConfig.from_settings(
                values,
                markets=None if markets is None else tuple(markets.split(",")),
                credentials_file=credentials_path(),
            )
            asyncio.run(self._run(config))
        except ConfigError as error:
            raise CommandError(str(error)) from None

    async def _run(self, config: MakerConfig) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        client = ExchangeClient(
            api_url=config.api_url,
            ws_url=config.ws_url,
            key=config.api_key,
            secret=config.api_secret,
            timeout=config.timeout_s,
        )
        self.stdout.write(
            f"market maker: REST {config.api_url}, WebSocket {config.ws_url}; Ctrl-C cancels its quotes and stops"
        )
        await MarketMaker(config, client).run(stop)

"""The market maker's loop: the I/O shell around the pure quoting core.

Every cycle, per market: step the reference price, work out the ladder
(``quoting.build_ladder``) for the current inventory and budgets, compare it
with our live orders (``quoting.plan_requote``), cancel what moved and place
what is missing (one ``cancel-batch`` and one ``batch`` call for all markets),
and now and then send a small IOC order across the spread so trades and
candles happen.

What the bot knows of its orders, balances and fills comes from the
WebSocket (private ``orders``, ``fills`` and ``balances`` streams; public
``depth@M`` for the book) while it is connected, with a REST resync after
every (re)connect and every ``resync_s``.  When the WebSocket is down the bot
polls the same facts over REST every cycle, so quoting never waits for it.
When the REST API is down the loop backs off (exponential, with jitter) and
resyncs its open orders once the exchange answers again.

The bot only manages orders whose client order id starts with ``mm-`` (its
quotes) in the markets it runs: orders a person placed with the same key are
left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import websockets

from markets.market_maker.backoff import Backoff
from markets.market_maker.book import LocalBook
from markets.market_maker.client import ApiError, ExchangeClient, ExchangeUnavailable
from markets.market_maker.config import ConfigError, MakerConfig
from markets.market_maker.portfolio import Portfolio
from markets.market_maker.pricing import PriceFile, RandomWalk
from markets.market_maker.quoting import (
    BUY,
    SELL,
    ZERO,
    LiveOrder,
    MarketFilters,
    Quote,
    build_ladder,
    clear_of_book,
    inventory_skew,
    locked_by,
    plan_requote,
    take_side,
    taker_quote,
)

logger = logging.getLogger(__name__)

QUOTE_PREFIX = "mm-"
TAKER_PREFIX = "mmt-"
LIVE_STATUSES = frozenset({"pending", "open", "partially_filled"})
# Ids of orders known to have ended, so a late snapshot or response cannot bring one back.
ENDED_MEMORY = 10_000
SNAPSHOT_RETRY_S = 5.0
WAKE_DEBOUNCE_S = 0.1
SUBSCRIBE_ID = 1


@dataclass
class OwnOrder:
    id: int
    market: str
    side: str
    price: Decimal
    quantity: Decimal
    filled: Decimal
    cancel_requested: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> OwnOrder:
        return cls(
            id=int(data["id"]),
            market=data["market"],
            side=data["side"],
            price=Decimal(data["price"]),
            quantity=Decimal(data["quantity"]),
            filled=Decimal(data.get("filled_quantity") or 0),
            cancel_requested=bool(data.get("cancel_requested", False)),
        )

    def live(self) -> LiveOrder:
        return LiveOrder(self.id, self.side, self.price, self.quantity - self.filled)


@dataclass
class MarketState:
    filters: MarketFilters
    price_source: RandomWalk | PriceFile
    book: LocalBook = field(default_factory=LocalBook)
    reference: Decimal | None = None
    first_trade_id: int = 0  # our trades up to this one happened before the bot started
    next_snapshot_at: float = 0.0

    def step(self) -> Decimal | None:
        source = self.price_source
        self.reference = source.step() if isinstance(source, RandomWalk) else source.current()
        return self.reference


@dataclass
class Counters:
    placed: int = 0
    cancelled: int = 0
    rejected: int = 0
    takes: int = 0
    fills: int = 0


class MarketMaker:
    """Runs until ``stop`` is set; see the module docstring."""

    def __init__(
        self,
        config: MakerConfig,
        client: ExchangeClient,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        connect: Callable[..., Any] = websockets.connect,
    ) -> None:
        self.config = config
        self.client = client
        self.rng = rng or random.Random(config.seed)
        self.clock = clock
        self._connect = connect
        self.markets: dict[str, MarketState] = {}
        self.orders: dict[int, OwnOrder] = {}
        self._ended: OrderedDict[int, None] = OrderedDict()
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}  # asset -> (available, locked)
        self.portfolio = Portfolio()
        self.counters = Counters()
        self.ws_live = False
        self.exchange_up = False
        self._resync_due = True
        self._next_resync = 0.0
        self._next_markets_refresh = 0.0
        self._next_summary = 0.0
        self._wake = asyncio.Event()
        self._seen_fills: OrderedDict[tuple[int, int], None] = OrderedDict()

    # The loop.

    async def run(self, stop: asyncio.Event) -> None:
        """Quote until ``stop`` is set, then (by default) cancel our quotes and return.

        Raises ConfigError when the exchange has none of the markets asked for.
        """
        backoff = Backoff(base=self.config.backoff_base_s, cap=self.config.backoff_max_s, rng=self.rng)
        ws_task = asyncio.create_task(self._follow_ws(stop))
        self._next_summary = self.clock() + self.config.summary_s
        try:
            while not stop.is_set():
                try:
                    if not self.markets:
                        await self._bootstrap()
                    await self.cycle()
                    if not self.exchange_up:
                        logger.info("exchange reachable", extra={"api_url": self.config.api_url})
                        self.exchange_up = True
                    backoff.reset()
                    delay = self.config.cycle_s
                except (ExchangeUnavailable, ApiError) as error:
                    # Whatever happened while we could not see, a snapshot will tell.
                    self._resync_due = True
                    delay = backoff.next_delay()
                    self._report_outage(error, delay)
                self._maybe_log_summary()
                await self._pause(delay, stop)
        finally:
            ws_task.cancel()
            await asyncio.gather(ws_task, return_exceptions=True)
            if self.config.cancel_on_exit and self.markets:
                await self._cancel_all_quotes()
            await self.client.close()

    def _report_outage(self, error: Exception, delay: float) -> None:
        fields = {"error": str(error), "retry_in_s": round(delay, 2)}
        if isinstance(error, ApiError) and error.status in (401, 403):
            logger.error("exchange refused the market maker's API key", extra=fields)
        elif self.exchange_up or not self.markets:
            logger.warning("exchange unavailable", extra=fields)
        else:
            logger.debug("exchange still unavailable", extra=fields)
        self.exchange_up = False

    async def _pause(self, seconds: float, stop: asyncio.Event) -> None:
        """Sleep ``seconds``, or less when stopped or woken (a fill, even one during the cycle: re-quote soon)."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self._wake.is_set() and not stop.is_set():
            await asyncio.sleep(WAKE_DEBOUNCE_S)  # let a burst of fills arrive together
        self._wake.clear()

    async def _bootstrap(self) -> None:
        """Learn the markets and their filters, and where each one's reference price starts."""
        listed = {m["symbol"]: MarketFilters.from_api(m) for m in await self.client.markets()}
        wanted = self.config.markets or tuple(s for s, m in listed.items() if m.trading)
        missing = sorted(set(wanted) - set(listed))
        if missing:
            raise ConfigError(f"The exchange has no market {', '.join(missing)} (it lists {', '.join(listed)}).")
        states: dict[str, MarketState] = {}
        for symbol in wanted:
            source = await self._price_source(listed[symbol])
            if source is not None:
                states[symbol] = MarketState(filters=listed[symbol], price_source=source)
                states[symbol].first_trade_id = await self._newest_trade_id(symbol)
        if not states:
            raise ConfigError(
                "No market has a starting price: set MARKET_MAKER_START_PRICES (e.g. BTC_USDT=60000) "
                "or MARKET_MAKER_PRICE_FILES."
            )
        self.markets = states
        self._resync_due = True
        self._next_markets_refresh = self.clock() + self.config.resync_s
        logger.info(
            "market maker started",
            extra={
                "markets": ",".join(states),
                "levels": self.config.ladder.levels,
                "spread_bps": self.config.ladder.spread_bps,
                "api_url": self.config.api_url,
                "ws_url": self.config.ws_url,
            },
        )

    async def _price_source(self, market: MarketFilters) -> RandomWalk | PriceFile | None:
        path = self.config.price_files.get(market.symbol)
        if path:
            return PriceFile(path)
        centre = self.config.start_prices.get(market.symbol)
        last = await self._last_price(market.symbol)
        if centre is None and last is None:
            logger.warning(
                "no starting price; market not quoted",
                extra={"market": market.symbol, "hint": "set MARKET_MAKER_START_PRICES"},
            )
            return None
        # Continue from the market's last trade (drawn into the band), so a restart of the
        # bot does not jump the price back to the configured start.
        seed = None if self.config.seed is None else f"{self.config.seed}:{market.symbol}"
        return RandomWalk(
            centre=centre or last,
            start=last,
            band_pct=self.config.walk_band_pct,
            step_bps=self.config.walk_step_bps,
            quantum=market.tick_size,
            rng=random.Random(seed),
        )

    async def _last_price(self, symbol: str) -> Decimal | None:
        try:
            trades = await self.client.recent_trades(symbol, limit=1)
        except ApiError:
            return None  # an exchange without the public trades endpoint: start from the setting
        return Decimal(trades[-1]["price"]) if trades else None

    async def _newest_trade_id(self, symbol: str) -> int:
        trades = await self.client.my_trades(symbol, limit=1)
        return int(trades[0]["id"]) if trades else 0

    # One cycle.

    async def cycle(self) -> None:
        now = self.clock()
        if self._resync_due or not self.ws_live or now >= self._next_resync:
            await self.resync()
        if self.ws_live:
            await self._refresh_books(now)
        plans = {}
        for symbol, state in self.markets.items():
            reference = state.step()
            if reference is None:
                continue  # no price yet (an empty price file): leave this market as it is
            desired = self._desired_ladder(state, reference)
            if state.book.synced:
                desired = clear_of_book(desired, best_bid=state.book.best_bid(), best_ask=state.book.best_ask())
            live = [o.live() for o in self._quotes(symbol)]
            plans[symbol] = plan_requote(
                live=live,
                desired=desired,
                price_tolerance_bps=self.config.price_tolerance_bps,
                quantity_tolerance=self.config.quantity_tolerance,
            )
        cancels = [order.id for plan in plans.values() for order in plan.cancel]
        if cancels:
            await self._cancel(cancels)
        placements = [(symbol, quote) for symbol, plan in plans.items() for quote in plan.place]
        if placements:
            await self._place(placements)
        for symbol in plans:
            if self.rng.random() < self.config.take_probability:
                await self._take(self.markets[symbol])

    def _quotes(self, symbol: str) -> list[OwnOrder]:
        """Our live quotes in ``symbol`` that we are not already cancelling."""
        return [o for o in self.orders.values() if o.market == symbol and not o.cancel_requested]

    def _desired_ladder(self, state: MarketState, reference: Decimal) -> list[Quote]:
        market = state.filters
        live = [o.live() for o in self._quotes(market.symbol)]
        skew = inventory_skew(
            position=self.portfolio.position(market.base),
            reference=reference,
            max_inventory_quote=self.config.ladder.max_inventory_quote,
        )
        return build_ladder(
            market=market,
            reference=reference,
            skew=skew,
            # Our orders we may keep hold their funds already; what is free is shared by
            # every market that trades the asset.
            base_budget=self._free_share(market.base) + locked_by(live, SELL),
            quote_budget=self._free_share(market.quote) + locked_by(live, BUY),
            params=self.config.ladder,
        )

    def _free_share(self, asset: str) -> Decimal:
        available = self.balances.get(asset, (ZERO, ZERO))[0]
        sharing = sum(1 for s in self.markets.values() if asset in (s.filters.base, s.filters.quote))
        return available / max(sharing, 1)

    async def _cancel(self, order_ids: list[int]) -> None:
        results = await self.client.cancel_batch(order_ids)
        for order_id, result in zip(order_ids, results, strict=True):
            if result["status"] == 202:
                self.counters.cancelled += 1
                if order_id in self.orders:
                    self.orders[order_id].cancel_requested = True
            else:
                # order_not_found / order_not_cancellable: it ended before our cancel reached it.
                self._forget(order_id)

    async def _place(self, placements: list[tuple[str, Quote]]) -> None:
        bodies = [
            {
                "market": symbol,
                "side": quote.side,
                "type": "limit_maker",  # post-only: a quote never takes by accident
                "price": f"{quote.price:f}",
                "quantity": f"{quote.quantity:f}",
                "client_order_id": QUOTE_PREFIX + secrets.token_hex(12),
            }
            for symbol, quote in placements
        ]
        results = await self.client.place_batch(bodies)
        for body, result in zip(bodies, results, strict=True):
            if result["status"] == 201:
                self.counters.placed += 1
                order = result["order"]
                if not self.ws_live:
                    self._hold(order)  # the WebSocket's balance events say so themselves
                if order["status"] in LIVE_STATUSES and int(order["id"]) not in self._ended:
                    self.orders.setdefault(int(order["id"]), OwnOrder.from_api(order))
            else:
                # Most often insufficient_funds while cancelled orders still hold their
                # funds: the next cycle places it again.
                self.counters.rejected += 1
                logger.debug("quote refused", extra={"market": body["market"], "error": result.get("error")})

    def _hold(self, order: Mapping[str, Any]) -> None:
        """Move what a new order locked from available to locked, until the exchange tells us more."""
        state = self.markets.get(order["market"])
        if state is None:
            return
        asset = state.filters.quote if order["side"] == BUY else state.filters.base
        amount = Decimal(order.get("locked_amount") or 0)
        available, locked = self.balances.get(asset, (ZERO, ZERO))
        self.balances[asset] = (available - amount, locked + amount)

    async def _take(self, state: MarketState) -> None:
        """Cross the spread with a small IOC order at the best opposite price."""
        market = state.filters
        skew = inventory_skew(
            position=self.portfolio.position(market.base),
            reference=state.reference or ZERO,
            max_inventory_quote=self.config.ladder.max_inventory_quote,
        )
        side = take_side(draw=self.rng.random(), skew=skew)
        price = self._best_opposite(state, side)
        if price is None:
            return
        asset = market.quote if side == BUY else market.base
        quote = taker_quote(
            market=market,
            side=side,
            price=price,
            size_quote=self.config.take_size_quote,
            budget=self.balances.get(asset, (ZERO, ZERO))[0],
        )
        if quote is None:
            return
        body = {
            "market": market.symbol,
            "side": side,
            "type": "limit",
            "time_in_force": "ioc",
            "price": f"{quote.price:f}",
            "quantity": f"{quote.quantity:f}",
            "client_order_id": TAKER_PREFIX + secrets.token_hex(12),
        }
        try:
            order = await self.client.place(body)
        except ApiError as error:
            self.counters.rejected += 1
            logger.debug("take refused", extra={"market": market.symbol, "code": error.code})
            return
        self.counters.takes += 1
        if not self.ws_live:
            self._hold(order)

    def _best_opposite(self, state: MarketState, side: str) -> Decimal | None:
        """The price a taker on ``side`` would hit: from the book when we follow it, else our own quotes."""
        book_price = state.book.best_ask() if side == BUY else state.book.best_bid()
        if book_price is not None:
            return book_price
        prices = [o.price for o in self._quotes(state.filters.symbol) if o.side != side]
        if not prices:
            return None
        return min(prices) if side == BUY else max(prices)

    # Keeping our picture of the exchange current.

    async def resync(self) -> None:
        """Replace what we believe with the exchange's own answer: open orders, balances, markets, fills."""
        if self.clock() >= self._next_markets_refresh:
            # Public and throttled per address: not every cycle, but often enough to see a halt.
            for data in await self.client.markets():
                state = self.markets.get(data["symbol"])
                if state is not None:
                    state.filters = MarketFilters.from_api(data)  # a halted market gets no quotes
            self._next_markets_refresh = self.clock() + self.config.resync_s
        snapshot = await self.client.open_orders()
        self.orders = {
            order.id: order
            for order in (OwnOrder.from_api(o) for o in snapshot if _is_quote(o))
            if order.market in self.markets and order.id not in self._ended
        }
        self._set_balances(await self.client.balances())
        # Fills the WebSocket did not carry (it was down, or we were reconnecting); counted once
        # whichever way they arrive.  A trade with ourselves is one row here and two fills there.
        for symbol, state in self.markets.items():
            for trade in await self.client.my_trades(symbol, limit=100):
                self._count_fill(state, int(trade["id"]), int(trade["order_id"]))
        self._resync_due = False
        self._next_resync = self.clock() + self.config.resync_s

    def _set_balances(self, balances: Iterable[Mapping[str, Any]]) -> None:
        for row in balances:
            self.balances[row["asset"]] = (Decimal(row["available"]), Decimal(row["locked"]))
        self.portfolio.update({asset: available + locked for asset, (available, locked) in self.balances.items()})

    async def _refresh_books(self, now: float) -> None:
        for symbol, state in self.markets.items():
            if state.book.synced or now < state.next_snapshot_at:
                continue
            state.next_snapshot_at = now + SNAPSHOT_RETRY_S
            try:
                snapshot = await self.client.depth(symbol, limit=100)
            except ApiError as error:
                logger.debug("depth snapshot refused", extra={"market": symbol, "code": error.code})
                continue
            state.book.load_snapshot(snapshot)

    def _forget(self, order_id: int) -> None:
        self.orders.pop(order_id, None)
        self._ended[order_id] = None
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    # The WebSocket.

    async def _follow_ws(self, stop: asyncio.Event) -> None:
        """Keep a WebSocket open (reconnecting with backoff) and apply what it says."""
        backoff = Backoff(base=self.config.backoff_base_s, cap=self.config.backoff_max_s, rng=self.rng)
        complained = False
        while not stop.is_set():
            if not self.markets:
                await asyncio.sleep(self.config.cycle_s)  # nothing to subscribe to before bootstrap
                continue
            try:
                async with self._connect(
                    self.config.ws_url,
                    additional_headers=self.client.ws_headers(),
                    open_timeout=self.config.timeout_s,
                    proxy=None,
                ) as ws:
                    streams = [f"depth@{symbol}" for symbol in self.markets] + ["orders", "fills", "balances"]
                    await ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": SUBSCRIBE_ID}))
                    async for raw in ws:
                        if self.on_ws_message(json.loads(raw)):
                            backoff.reset()
                            complained = False
                            logger.info("websocket subscribed", extra={"streams": len(streams)})
            except (OSError, TimeoutError, ValueError, websockets.WebSocketException) as error:
                # ValueError covers a frame that is not JSON; the connection is dropped and remade.
                level = logging.DEBUG if complained else logging.WARNING
                reason = f"{type(error).__name__} {error}"
                logger.log(level, "websocket unavailable; polling REST", extra={"error": reason})
                complained = True
            finally:
                self._ws_down()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff.next_delay())

    def _ws_down(self) -> None:
        self.ws_live = False
        for state in self.markets.values():
            state.book.invalidate()

    def on_ws_message(self, message: Mapping[str, Any]) -> bool:
        """Apply one WebSocket message; True when it confirms our subscription (we are live from then on)."""
        if message.get("id") == SUBSCRIBE_ID and "result" in message:
            self.ws_live = True
            self._resync_due = True  # events may have been missed while we were not subscribed
            return True
        if "error" in message:
            logger.warning("websocket error frame", extra={"error": message["error"], "id": message.get("id")})
            return False
        stream, data = message.get("stream"), message.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            return False
        if stream == "orders":
            self._on_order(data)
        elif stream == "fills":
            self._on_fill(data)
        elif stream == "balances":
            self._set_balances(data.get("balances", ()))
        elif stream.startswith("depth@"):
            state = self.markets.get(stream.partition("@")[2])
            if state is not None:
                state.book.on_update(data)
        return False

    def _on_order(self, data: Mapping[str, Any]) -> None:
        if not _is_quote(data) or data.get("market") not in self.markets:
            return
        order_id = int(data["id"])
        if data["status"] not in LIVE_STATUSES:
            self._forget(order_id)
        elif order_id not in self._ended:
            known = self.orders.get(order_id)
            order = OwnOrder.from_api(data)
            order.cancel_requested = known.cancel_requested if known else False
            self.orders[order_id] = order

    def _on_fill(self, data: Mapping[str, Any]) -> None:
        state = self.markets.get(data.get("market", ""))
        if state is None:
            return
        if self._count_fill(state, int(data["trade_id"]), int(data["order_id"])):
            self._wake.set()

    def _count_fill(self, state: MarketState, trade_id: int, order_id: int) -> bool:
        key = (trade_id, order_id)
        if trade_id <= state.first_trade_id or key in self._seen_fills:
            return False
        self._seen_fills[key] = None
        while len(self._seen_fills) > ENDED_MEMORY:
            self._seen_fills.popitem(last=False)
        self.counters.fills += 1
        return True

    # Leaving.

    async def _cancel_all_quotes(self) -> None:
        """Cancel every quote of ours in our markets, from a fresh list (best effort: the exchange may be down)."""
        try:
            snapshot = await self.client.open_orders()
            ids = [int(o["id"]) for o in snapshot if _is_quote(o) and o["market"] in self.markets]
            if ids:
                await self.client.cancel_batch(ids)
            logger.info("quotes cancelled on exit", extra={"orders": len(ids)})
        except (ExchangeUnavailable, ApiError) as error:
            logger.warning("could not cancel quotes on exit", extra={"error": str(error)})

    # Reporting.

    def _maybe_log_summary(self) -> None:
        now = self.clock()
        if now < self._next_summary:
            return
        self._next_summary = now + self.config.summary_s
        logger.info("market maker summary", extra=self.summary())

    def summary(self) -> dict[str, object]:
        """One line's worth: quotes live, fills, inventory and PnL (in each quote asset)."""
        quotes, refs, inventory = [], [], []
        for symbol, state in self.markets.items():
            mine = self._quotes(symbol)
            quotes.append(f"{symbol}:{sum(o.side == BUY for o in mine)}b/{sum(o.side == SELL for o in mine)}a")
            if state.reference is not None:
                refs.append(f"{symbol}:{state.reference:f}")
            inventory.append(f"{state.filters.base}:{self.portfolio.position(state.filters.base):+f}")
        prices = {s: st.reference for s, st in self.markets.items() if st.reference is not None}
        pnl = self.portfolio.pnl(markets={s: st.filters for s, st in self.markets.items()}, prices=prices)
        counters = self.counters
        return {
            "exchange": "up" if self.exchange_up else "down",
            "ws": "up" if self.ws_live else "down",
            "quotes": " ".join(quotes),
            "reference": " ".join(refs),
            "fills": counters.fills,
            "takes": counters.takes,
            "placed": counters.placed,
            "cancelled": counters.cancelled,
            "rejected": counters.rejected,
            "inventory": " ".join(dict.fromkeys(inventory)),
            "pnl": " ".join(f"{asset}:{value.quantize(Decimal('0.01')):+f}" for asset, value in pnl.items()),
        }


def _is_quote(order: Mapping[str, Any]) -> bool:
    return str(order.get("client_order_id") or "").startswith(QUOTE_PREFIX)

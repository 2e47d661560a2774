"""The engine loop: read commands, match them in memory, settle each batch in one transaction.

``matching.book`` matches (pure Python, integers, no Django); this module is
the Django side around it:

* **Trust the database, not the stream.** A command names an order id; the
  engine loads the row and acts only if its state allows (a placement only
  while the order is PENDING), so a replayed or forged stream entry can do
  nothing, and neither can an entry seen twice after a crash.
* **One transaction per batch.** Trades, order updates, ledger entries and
  balance changes of a whole batch, and the checkpoint (trade id and book
  sequence counters), commit together or not at all.  If the commit fails the
  in-memory book is thrown away and rebuilt from the database.
* **Effects leave after commit.** Stream entries are acked and market data is
  published only once the batch is durable: the changed depth levels (with
  update ids counted per changed level and kept in the checkpoint, so they
  never go back), the trades, the 24h ticker and the owners' order, fill and
  balance events, all through ``marketdata.broadcast``.
* **Recovery is the normal start, and keeps the stream's order.** Books are
  rebuilt from live orders, then the consumer's own unacked entries are
  processed, then new ones, in stream order, so a crash never changes who
  trades with whom (docs/decisions/008).  Orders the database says are owed
  but whose entries were lost (PENDING, or with a cancel request) are swept in
  once the engine has caught up with its stream and they are a few seconds old.
* **A poison entry cannot block a market.** A command whose batch keeps failing
  (``DEAD_LETTER_AFTER`` times, for a reason other than a lost connection) is
  retried alone; if it still fails it moves to the market's dead-letter stream
  (``engine:{SYMBOL}:dead``) with an error in the log, and the rest of the
  market's commands go on.  Nothing is written for it: its order stays PENDING
  with its funds held until an operator re-drives or cancels it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

import redis as redis_lib
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import services as money
from accounts.models import LedgerEntry
from accounts.selectors import fee_user_id
from exchange_site import sql
from exchange_site.redis import get_redis
from marketdata import broadcast, klines
from marketdata.ticker import MinuteBucket, RollingTicker
from markets.models import Market
from markets.units import from_lots, from_ticks, notional_units, to_lots, to_ticks
from matching import book as mb
from matching.engine_gc import tune_gc
from matching.models import EngineState
from orders import streams
from orders.models import Order, Trade

logger = logging.getLogger(__name__)

GROUP = "engine"
HEARTBEAT_KEY = "engine:heartbeat"
HEARTBEAT_EVERY_S = 1.0
# The 24h ticker window slides with the clock; refresh it this often when nothing trades.
TICKER_REFRESH_S = 5.0
# A command whose batch failed this many times is retried alone, then dead-lettered.
DEAD_LETTER_AFTER = 3


# Failures of the connection itself say nothing about the command: they never dead-letter.
class MarketTaken(RuntimeError):
    """Another engine holds a market this one was asked to run (its advisory lock)."""


TRANSIENT_ERRORS = (OperationalError, InterfaceError, redis_lib.ConnectionError, redis_lib.TimeoutError)
Status = Order.Status
Reason = LedgerEntry.Reason
AVAILABLE = money.AVAILABLE
LOCKED = money.LOCKED

_SIDE = {Order.Side.BUY: mb.BUY, Order.Side.SELL: mb.SELL}
_TIF = {Order.TimeInForce.GTC: mb.GTC, Order.TimeInForce.IOC: mb.IOC, Order.TimeInForce.FOK: mb.FOK}
_STP = {
    Order.SelfTradePrevention.NONE: mb.STP_NONE,
    Order.SelfTradePrevention.EXPIRE_TAKER: mb.STP_EXPIRE_TAKER,
    Order.SelfTradePrevention.EXPIRE_MAKER: mb.STP_EXPIRE_MAKER,
    Order.SelfTradePrevention.EXPIRE_BOTH: mb.STP_EXPIRE_BOTH,
}
_DONE_STATUS = {
    mb.FILLED: Status.FILLED,
    mb.CANCELLED: Status.CANCELLED,
    mb.EXPIRED: Status.EXPIRED,
    mb.REJECTED: Status.REJECTED,
}
_ORDER_COLUMNS = (
    "id", "user_id", "side", "type", "time_in_force", "stp_mode", "price", "quantity", "quote_quantity",
    "protection_price", "status", "filled_quantity", "filled_quote", "locked_amount", "book_seq", "client_order_id",
    "created_at",
)  # fmt: skip


_ORDER_UPDATE_TYPES = ["bigint", "varchar", "numeric", "numeric", "numeric", "bigint", "varchar"]


class MarketHalted(Exception):
    """The market is halted: its batch was not applied and its commands wait for the resume."""


@dataclass(slots=True)
class LiveOrder:
    """What the engine must know of an order on its book, or in the batch at hand, to settle it."""

    id: int
    user_id: int
    side: str
    type: str
    # The price a buy's funds were locked at (limit or protection price); None for a
    # quote-budget market buy or a sell.  Paying less than this frees the difference.
    lock_price: Decimal | None
    status: str
    filled_quantity: Decimal
    filled_quote: Decimal
    locked_amount: Decimal
    book_seq: int | None
    # For the owner's order events, and (price) to find a resting order's level.
    price: Decimal | None
    quantity: Decimal | None
    client_order_id: str
    # What the owner's order events also say, as the order was placed.
    time_in_force: str
    stp_mode: str
    quote_quantity: Decimal | None
    created_ms: int
    end_reason: str = ""


@dataclass(slots=True)
class BatchEffects:
    """Everything one batch writes, gathered in memory and written set-based."""

    now: dt.datetime
    entries: list[money.Entry] = field(default_factory=list)
    trades: list[tuple] = field(default_factory=list)
    orders: dict[int, LiveOrder] = field(default_factory=dict)
    last_price: Decimal | None = None
    # Book levels the batch touched, as (book side, price in ticks): their new totals
    # are the depth update.
    levels: set[tuple[int, int]] = field(default_factory=set)
    depth: list[tuple[int, int, int]] = field(default_factory=list)  # (side, ticks, lots)
    first_update_id: int = 0


class MarketEngine:
    """One market: its book, the state of the orders on it, and its counters."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.symbol = market.symbol
        self.stream = streams.stream_key(market.symbol)
        self._base_unit = Decimal(1).scaleb(-market.base.precision)
        self._quote_unit = Decimal(1).scaleb(-market.quote.precision)
        self.book = mb.OrderBook()
        self.live: dict[int, LiveOrder] = {}
        self.last_trade_id = 0
        self.last_book_seq = 0
        self.last_update_id = 0
        self.trades_total = 0
        self.ticker = RollingTicker()
        # Set when a failed batch left the book ahead of the database and the rebuild
        # failed too (the connection was gone): the next batch rebuilds first.
        self.stale = False

    # --- state -------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Load the book and counters from the database: the book is only a cache of live orders."""
        state, _ = EngineState.objects.get_or_create(market=self.market)
        self.last_trade_id = state.last_trade_id
        self.last_book_seq = state.last_book_seq
        self.last_update_id = state.last_update_id
        self.book = mb.OrderBook()
        self.live = {}
        rows = (
            Order.objects.filter(market=self.market, status__in=(Status.OPEN, Status.PARTIALLY_FILLED))
            .order_by("book_seq")
            .values_list(*_ORDER_COLUMNS)
        )
        for row in rows:
            order = self._live_from_row(row)
            self.live[order.id] = order
            remaining = row[7] - order.filled_quantity
            self.book.restore(
                order.id,
                order.user_id,
                _SIDE[order.side],
                to_ticks(self.market, row[6]),
                to_lots(self.market, remaining),
            )
        self.ticker = _load_ticker(self.market)
        self.stale = False
        logger.info("book rebuilt", extra={"market": self.symbol, "orders": len(self.live)})

    def _live_from_row(self, row: Sequence) -> LiveOrder:
        (order_id, user_id, side, kind, tif, stp, price, qty, quote_quantity, protection, status,
         filled, filled_quote, locked, book_seq, client_order_id, created_at) = row  # fmt: skip
        # A buy by quote amount locked its budget, not a price: its protection price only caps it.
        lock_price = (price if kind != Order.Type.MARKET else protection) if side == Order.Side.BUY else None
        if quote_quantity is not None:
            lock_price = None
        return LiveOrder(
            order_id, user_id, side, kind, lock_price, status, filled, filled_quote, locked, book_seq,
            price, qty, client_order_id, tif, stp, quote_quantity, klines.to_millis(created_at),
        )  # fmt: skip

    # --- one batch ---------------------------------------------------------------------

    def process(self, commands: Sequence[tuple[str, int]]) -> BatchEffects:
        """Match and settle ``commands`` in one transaction; on failure rebuild and re-raise."""
        if self.stale:
            self.rebuild()
        try:
            with transaction.atomic(durable=True):
                self._check_not_halted()
                effects = self._apply(commands)
                self._write(effects, len(commands))
        except MarketHalted:
            raise  # nothing was touched: the book needs no rebuild
        except Exception:
            self.stale = True
            logger.exception("batch failed; rebuilding the book from the database", extra={"market": self.symbol})
            self.rebuild()
            raise
        self.trades_total += len(effects.trades)
        return effects

    def _check_not_halted(self) -> None:
        """Raise MarketHalted if an operator halted the market.  Call first in the batch's transaction.

        FOR SHARE: a halt (an UPDATE of the row) waits for the batch in flight and
        every later batch sees it, so once ``market_set_status`` returns, nothing
        more of this market settles until it is resumed.
        """
        with connection.cursor() as cursor:
            cursor.execute("SELECT status FROM markets_market WHERE id = %s FOR SHARE", [self.market.id])
            (status,) = cursor.fetchone()
        if status == Market.Status.HALTED:
            raise MarketHalted(self.symbol)

    def _apply(self, commands: Sequence[tuple[str, int]]) -> BatchEffects:
        effects = BatchEffects(now=timezone.now())
        ids = {order_id for _, order_id in commands}
        rows = {
            row[0]: row
            for row in Order.objects.filter(pk__in=ids, market=self.market)
            .exclude(status__in=Order.TERMINAL_STATUSES)
            .values_list(*_ORDER_COLUMNS)
        }
        for command, order_id in commands:
            row = rows.get(order_id)
            if command == streams.PLACE:
                # Only a PENDING row is placed, once: a second entry for it (replay,
                # sweep, redelivery) finds it already handled and does nothing.
                if row is not None and row[10] == Status.PENDING and order_id not in effects.orders:
                    self._place(row, effects)
            elif command == streams.CANCEL:
                self._cancel(order_id, row, effects)
        if effects.levels:
            level_quantity = self.book.level_quantity
            effects.depth = [(side, ticks, level_quantity(side, ticks)) for side, ticks in sorted(effects.levels)]
            effects.first_update_id = self.last_update_id + 1
            self.last_update_id += len(effects.depth)
        return effects

    def _place(self, row: Sequence, effects: BatchEffects) -> None:
        market = self.market
        order = self._live_from_row(row)
        effects.orders[order.id] = order
        kind, tif, stp = row[3], row[4], row[5]
        price, quantity, quote_quantity = row[6], row[7], row[8]
        qty_lots = to_lots(market, quantity) if quantity is not None else None
        protected = False
        if kind == Order.Type.MARKET:
            cap = row[9]  # the protection price: never trade beyond it, either side
            cap_ticks = to_ticks(market, cap) if cap is not None else None
            events = self.book.place(
                order.id, order.user_id, _SIDE[order.side], cap_ticks, qty_lots,
                kind=mb.MARKET, tif=mb.IOC, stp=_STP[stp],
                quote_budget=notional_units(market, quote_quantity) if quote_quantity is not None else None,
            )  # fmt: skip
            if cap_ticks is not None:
                protected = self._stopped_by_band(order, cap_ticks, events, quote_quantity)
        else:
            events = self.book.place(
                order.id, order.user_id, _SIDE[order.side], to_ticks(market, price), qty_lots,
                kind=mb.LIMIT, tif=_TIF[tif], post_only=kind == Order.Type.LIMIT_MAKER, stp=_STP[stp],
            )  # fmt: skip
        self._settle_events(order, events, effects, protected=protected)

    def _stopped_by_band(
        self, order: LiveOrder, cap_ticks: int, events: Sequence[tuple], quote_quantity: Decimal | None
    ) -> bool:
        """Whether the band, not the book, the budget or self-trade prevention, ended this market order.

        Liquidity left beyond the cap says the band stopped it, unless self-trade
        prevention expired one of the user's own makers on the way, or a quote
        budget was spent down to less than one lot at the next price.
        """
        buy = order.side == Order.Side.BUY
        beyond = self.book.best_ask() if buy else self.book.best_bid()
        if beyond is None or (beyond <= cap_ticks if buy else beyond >= cap_ticks):
            return False
        if any(event[0] == mb.DONE and event[1] != order.id for event in events):
            return False  # self-trade prevention ended it
        if quote_quantity is not None:
            spent = sum(event[5] * event[6] for event in events if event[0] == mb.FILL)
            return notional_units(self.market, quote_quantity) - spent >= beyond  # a lot at the next price
        return True

    def _cancel(self, order_id: int, row: Sequence | None, effects: BatchEffects) -> None:
        if order_id in self.live:
            self._settle_events(None, self.book.cancel(order_id), effects)
            return
        pending = effects.orders.get(order_id)
        if pending is None and row is not None and row[10] == Status.PENDING:
            # Cancelled before the engine ever saw it (its placement is later in the
            # stream, or was lost): nothing to take off the book, just release it.
            pending = self._live_from_row(row)
            effects.orders[order_id] = pending
        if pending is not None and pending.status == Status.PENDING:
            self._finish(pending, Status.CANCELLED, effects, reason="cancelled_before_booked")

    def _settle_events(
        self, taker: LiveOrder | None, events: Iterable[tuple], effects: BatchEffects, *, protected: bool = False
    ) -> None:
        """Turn the book's events (tagged tuples, see ``matching.events``) into state and ledger changes.

        ``protected``: the taker, a market order, stopped at its protection price.
        """
        for event in events:
            tag = event[0]
            if tag == mb.FILL:
                self._settle_fill(event, effects)
            elif tag == mb.RESTED:
                effects.levels.add((event[2], event[3]))
                order = effects.orders[event[1]]
                order.status = Status.PARTIALLY_FILLED if order.filled_quantity else Status.OPEN
                self.last_book_seq += 1
                order.book_seq = self.last_book_seq
                self.live[order.id] = order
            else:  # DONE
                _, order_id, book_status = event
                order = self.live.pop(order_id, None)
                if order is not None:  # it was resting: its level changed
                    effects.levels.add((_SIDE[order.side], to_ticks(self.market, order.price)))
                else:
                    order = effects.orders[order_id]
                effects.orders[order.id] = order
                status = _DONE_STATUS[book_status]
                is_taker = taker is not None and taker.id == order.id
                reason = _end_reason(order, status, is_taker=is_taker, protected=protected and is_taker)
                self._finish(order, status, effects, reason=reason)

    def _settle_fill(self, fill: tuple, effects: BatchEffects) -> None:
        _, taker_id, maker_id, _taker_user, _maker_user, price_ticks, lots, taker_side, maker_left = fill
        market = self.market
        effects.levels.add((mb.SELL if taker_side == mb.BUY else mb.BUY, price_ticks))
        taker = effects.orders[taker_id]
        maker = self.live[maker_id]
        effects.orders[maker.id] = maker
        buy, sell = (taker, maker) if taker_side == mb.BUY else (maker, taker)
        price = from_ticks(market, price_ticks)
        qty = from_lots(market, lots)
        quote = price * qty
        buyer_rate = market.taker_fee_rate if buy is taker else market.maker_fee_rate
        seller_rate = market.taker_fee_rate if sell is taker else market.maker_fee_rate
        # Fees are taken from what each side receives, rounded down to the asset's
        # precision: nobody pays above the advertised rate, and every unit is accounted for.
        buyer_fee = (qty * buyer_rate).quantize(self._base_unit, ROUND_DOWN)
        seller_fee = (quote * seller_rate).quantize(self._quote_unit, ROUND_DOWN)
        consumed = buy.lock_price * qty if buy.lock_price is not None else quote
        self.last_trade_id += 1
        trade_id = self.last_trade_id
        base_id, quote_id, fees = market.base_id, market.quote_id, fee_user_id()
        entries = effects.entries
        entries += (
            money.Entry(buy.user_id, quote_id, LOCKED, -quote, Reason.TRADE, buy.id, trade_id),
            money.Entry(sell.user_id, quote_id, AVAILABLE, quote - seller_fee, Reason.TRADE, sell.id, trade_id),
            money.Entry(fees, quote_id, AVAILABLE, seller_fee, Reason.FEE, sell.id, trade_id),
            money.Entry(sell.user_id, base_id, LOCKED, -qty, Reason.TRADE, sell.id, trade_id),
            money.Entry(buy.user_id, base_id, AVAILABLE, qty - buyer_fee, Reason.TRADE, buy.id, trade_id),
            money.Entry(fees, base_id, AVAILABLE, buyer_fee, Reason.FEE, buy.id, trade_id),
        )
        if consumed != quote:  # bought below the locked price: free the difference now
            entries += money.unlock_entries(
                user_id=buy.user_id, asset_id=quote_id, amount=consumed - quote, order_id=buy.id
            )
        buy.locked_amount -= consumed
        sell.locked_amount -= qty
        for order in (buy, sell):
            order.filled_quantity += qty
            order.filled_quote += quote
        if maker_left == 0:  # the maker left the book: filled
            del self.live[maker.id]
            self._finish(maker, Status.FILLED, effects)
        else:
            maker.status = Status.PARTIALLY_FILLED
        effects.trades.append(
            (market.id, trade_id, price, qty, quote, "buy" if taker_side == mb.BUY else "sell",
             buy.id, sell.id, buy.user_id, sell.user_id, buyer_fee, seller_fee, effects.now)
        )  # fmt: skip
        effects.last_price = price

    def _finish(self, order: LiveOrder, status: str, effects: BatchEffects, *, reason: str = "") -> None:
        """End ``order``: give back whatever it still holds."""
        if order.locked_amount:
            asset_id = self.market.quote_id if order.side == Order.Side.BUY else self.market.base_id
            effects.entries += money.unlock_entries(
                user_id=order.user_id, asset_id=asset_id, amount=order.locked_amount, order_id=order.id
            )
            order.locked_amount = Decimal(0)
        order.status = status
        order.end_reason = reason

    # --- writing -----------------------------------------------------------------------

    def _write(self, effects: BatchEffects, commands: int) -> None:
        with connection.cursor() as cursor:
            if effects.trades:
                with cursor.cursor.copy(
                    "COPY orders_trade (market_id, trade_id, price, quantity, quote_quantity, taker_side,"
                    " buy_order_id, sell_order_id, buyer_id, seller_id, buyer_fee, seller_fee, executed_at)"
                    " FROM STDIN"
                ) as copy:
                    for trade in effects.trades:
                        copy.write_row(trade)
            if effects.orders:
                rows = [
                    (o.id, o.status, o.filled_quantity, o.filled_quote, o.locked_amount, o.book_seq, o.end_reason)
                    for o in effects.orders.values()
                ]
                cursor.execute(
                    "UPDATE orders_order AS o SET status = v.status, filled_quantity = v.filled,"
                    " filled_quote = v.filled_quote, locked_amount = v.locked, book_seq = v.book_seq,"
                    " end_reason = v.end_reason, updated_at = now(),"
                    " processed_at = COALESCE(o.processed_at, clock_timestamp())"
                    f" FROM {sql.unnest(_ORDER_UPDATE_TYPES)}"
                    " AS v(id, status, filled, filled_quote, locked, book_seq, end_reason) WHERE o.id = v.id",
                    # Sorted by id: rows are locked in one order, as every writer does.
                    sql.columns(sorted(rows), len(_ORDER_UPDATE_TYPES)),
                )
            money.post_entries(effects.entries)
            self._uncount_ended(cursor, effects)
            cursor.execute(
                "UPDATE matching_enginestate SET last_trade_id = %s, last_book_seq = %s, last_update_id = %s,"
                " batches = batches + 1, commands = commands + %s, last_batch_at = %s WHERE market_id = %s",
                [self.last_trade_id, self.last_book_seq, self.last_update_id, commands, effects.now, self.market.id],
            )

    def _uncount_ended(self, cursor, effects: BatchEffects) -> None:
        """Take the batch's ended orders off their owners' open-order counters (docs/decisions/010).

        Every order in a batch was live when it entered it (terminal rows are never
        loaded), so each one that ends here is counted off exactly once.  After the
        balances: every writer locks balance rows before counter rows.
        """
        ended = Counter(o.user_id for o in effects.orders.values() if o.status in Order.TERMINAL_STATUSES)
        if not ended:
            return
        users = sorted(ended)
        cursor.execute(
            "UPDATE orders_openordercount AS c SET count = c.count - v.n"
            " FROM unnest(%s::bigint[], %s::int[]) AS v(user_id, n)"
            " WHERE c.market_id = %s AND c.user_id = v.user_id",
            [users, [ended[u] for u in users], self.market.id],
        )

    def _best_prices(self) -> tuple[Decimal | None, Decimal | None]:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        return (
            from_ticks(self.market, bid) if bid is not None else None,
            from_ticks(self.market, ask) if ask is not None else None,
        )

    def _levels(self, levels: Iterable[tuple[int, int]]) -> list[tuple[Decimal, int, Decimal]]:
        market = self.market
        return [(from_ticks(market, ticks), ticks, from_lots(market, lots)) for ticks, lots in levels]

    def publish(self, effects: BatchEffects) -> None:
        """After commit: update the read models and send the batch's public and private events."""
        market = self.market
        time_ms = int(effects.now.timestamp() * 1000)
        best_bid, best_ask = self._best_prices()
        batch = broadcast.MarketBatch(
            symbol=self.symbol,
            base_asset=market.base.symbol,
            quote_asset=market.quote.symbol,
            time_ms=time_ms,
            first_update_id=effects.first_update_id,
            last_update_id=self.last_update_id,
            bids=self._levels((ticks, lots) for side, ticks, lots in effects.depth if side == mb.BUY),
            asks=self._levels((ticks, lots) for side, ticks, lots in effects.depth if side == mb.SELL),
            best_bid=best_bid,
            best_ask=best_ask,
        )
        for trade in effects.trades:
            (_, trade_id, price, qty, quote, taker_side, buy_id, sell_id, buyer, seller, buyer_fee, seller_fee,
             _) = trade  # fmt: skip
            batch.trades.append(
                broadcast.TradeEvent(
                    trade_id, price, qty, quote, taker_side, buy_id, sell_id, buyer, seller, buyer_fee, seller_fee
                )
            )
            self.ticker.add_trade(price=price, qty=qty, quote=quote, time_ms=time_ms)
        if effects.trades:
            batch.ticker = self.ticker.snapshot(time_ms)
        batch.orders = [
            broadcast.OrderEvent(
                o.user_id,
                o.id,
                o.client_order_id,
                o.side,
                o.type,
                o.status,
                o.price,
                o.quantity,
                o.filled_quantity,
                o.filled_quote,
                o.end_reason,
                o.time_in_force,
                o.stp_mode,
                o.quote_quantity,
                o.created_ms,
            )
            for o in effects.orders.values()
        ]
        fees = fee_user_id()
        batch.balances = {(e.user_id, e.asset_id) for e in effects.entries if e.user_id != fees}
        # A placement's funds were held by order entry, outside this batch: its owner's
        # balance changed too, and this is the first event that can say so.
        batch.balances.update(
            (o.user_id, market.quote_id if o.side == Order.Side.BUY else market.base_id)
            for o in effects.orders.values()
        )
        broadcast.publish_market_batch(batch)
        if effects.trades:
            # Candles are the Celery worker's job: tell it which buckets went stale.
            klines.note_trades(symbol=self.symbol, earliest=effects.now)

    def publish_snapshot(self) -> None:
        """Replace the market's read models from the rebuilt book (engine start, after a failed batch)."""
        now_ms = int(time.time() * 1000)
        best_bid, best_ask = self._best_prices()
        recent = (
            Trade.objects.filter(market=self.market)
            .order_by("-trade_id")
            .values_list("trade_id", "price", "quantity", "quote_quantity", "taker_side", "executed_at")[
                : broadcast.TRADES_KEPT
            ]
        )
        trades = [
            broadcast.trade_row(
                trade_id=trade_id,
                price=price,
                qty=qty,
                quote=quote,
                taker_side=taker_side,
                time_ms=int(executed_at.timestamp() * 1000),
            )
            for trade_id, price, qty, quote, taker_side, executed_at in reversed(recent)
        ]
        broadcast.publish_market_snapshot(
            symbol=self.symbol,
            update_id=self.last_update_id,
            bids=self._levels(self.book.depth(mb.BUY, len(self.book) or 1)),
            asks=self._levels(self.book.depth(mb.SELL, len(self.book) or 1)),
            trades=trades,
            ticker=self.ticker.snapshot(now_ms),
            best_bid=best_bid,
            best_ask=best_ask,
            time_ms=now_ms,
        )

    def publish_ticker(self) -> None:
        """The 24h window slides with time: republish the ticker even when nothing trades."""
        now_ms = int(time.time() * 1000)
        best_bid, best_ask = self._best_prices()
        broadcast.publish_ticker(
            symbol=self.symbol, ticker=self.ticker.snapshot(now_ms), best_bid=best_bid, best_ask=best_ask,
            time_ms=now_ms,
        )  # fmt: skip

    # --- recovery ----------------------------------------------------------------------

    def overdue_commands(self, *, older_than: dt.timedelta | None) -> list[tuple[str, int]]:
        """Commands the database says are owed: PENDING placements and requested cancels."""
        live = Order.objects.filter(market=self.market, status__in=Order.LIVE_STATUSES)
        if older_than is not None:
            cutoff = timezone.now() - older_than
            # Each command by its own age: an old order with a fresh cancel request is
            # not overdue (its cancel entry is still on its way through the stream).
            live = live.filter(
                Q(status=Status.PENDING, created_at__lt=cutoff, cancel_requested_at__isnull=True)
                | Q(cancel_requested_at__lt=cutoff)
            )
        commands: list[tuple[str, int]] = []
        cancels: list[tuple[str, int]] = []
        for order_id, status, cancel_requested_at in live.order_by("pk").values_list(
            "pk", "status", "cancel_requested_at"
        ):
            # An order never booked whose cancel is already requested is only cancelled:
            # booking it first could trade what its owner asked to withdraw.
            if cancel_requested_at is not None:
                cancels.append((streams.CANCEL, order_id))
            elif status == Status.PENDING:
                commands.append((streams.PLACE, order_id))
        return commands + cancels


def _load_ticker(market: Market) -> RollingTicker:
    """The last 24 hours of ``market``'s trades, folded into minute buckets by the database."""
    ticker = RollingTicker()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('minute', executed_at) AS minute,"
            " (array_agg(price ORDER BY trade_id))[1], max(price), min(price),"
            " (array_agg(price ORDER BY trade_id DESC))[1], sum(quantity), sum(quote_quantity), count(*)"
            " FROM orders_trade WHERE market_id = %s AND executed_at >= now() - interval '1 day 1 minute'"
            " GROUP BY minute ORDER BY minute",
            [market.id],
        )
        for minute, open_, high, low, close, volume, quote_volume, trades in cursor.fetchall():
            ticker.add_bucket(
                MinuteBucket(int(minute.timestamp() * 1000), open_, high, low, close, volume, quote_volume, trades)
            )
    if not ticker.buckets:
        ticker.last_price = (
            Trade.objects.filter(market=market).order_by("-trade_id").values_list("price", flat=True).first()
        )
    return ticker


def _end_reason(order: LiveOrder, status: str, *, is_taker: bool, protected: bool = False) -> str:
    if status == Status.REJECTED:
        return "post_only_would_take"
    if status == Status.EXPIRED and not is_taker:
        return "self_trade_prevention"
    if status == Status.EXPIRED and protected:
        return "price_protection"
    if status == Status.EXPIRED:
        return "not_fully_fillable" if order.filled_quantity == 0 else "remainder_expired"
    return ""


def _backend_pid() -> int:
    """The PostgreSQL session this process talks through: advisory locks live and die with it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _entries(response: list) -> int:
    return sum(len(entries) for _, entries in response)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _merge(first: list, second: list) -> list:
    """Two XREADGROUP replies as one, entries of each stream in stream order."""
    merged: dict = {}
    for stream, entries in (*first, *second):
        merged.setdefault(stream, []).extend(entries)
    return list(merged.items())


class Engine:
    """Runs the markets it owns: reads their streams, processes batches, sweeps, logs."""

    def __init__(
        self,
        markets: Sequence[Market],
        *,
        redis: redis_lib.Redis | None = None,
        # Streams are per market and each market has one engine (an advisory lock
        # makes sure), so one stable consumer name lets a restarted engine find the
        # entries its previous life read but never acked.
        consumer: str = "engine",
        batch_size: int | None = None,
        block_ms: int | None = None,
        dead_letter_after: int = DEAD_LETTER_AFTER,
    ) -> None:
        config = settings.EXCHANGE
        self.redis = redis or get_redis()
        self.consumer = consumer
        self.batch_size = batch_size or config["ENGINE_BATCH_SIZE"]
        self.block_ms = block_ms or config["ENGINE_BLOCK_MS"]
        self.linger_s = config["ENGINE_LINGER_MS"] / 1000
        self.sweep_after = dt.timedelta(seconds=config["ENGINE_SWEEP_AFTER_S"])
        self.summary_every = config["ENGINE_SUMMARY_EVERY_S"]
        self.markets = {m.symbol: MarketEngine(m) for m in markets}
        self.session_pid: int | None = None
        self.by_stream = {engine.stream: engine for engine in self.markets.values()}
        self.commands_total = 0
        self.batches_total = 0
        self._next_sweep = 0.0
        self._next_summary = time.monotonic() + self.summary_every
        self._next_heartbeat = 0.0
        self._next_ticker = time.monotonic() + TICKER_REFRESH_S
        # Streams whose last read was a full batch: the engine is behind on them, and
        # sweeping their owed orders now would run them ahead of their own entries.
        self._behind: set[str] = set(self.by_stream)
        self.dead_letter_after = dead_letter_after
        self._failures: Counter[tuple[str, str, int]] = Counter()  # (symbol, command, order id) -> failed batches
        self._dead: set[tuple[str, str, int]] = set()  # dead-lettered commands the sweep must not retry
        self._isolating = False
        # Streams of halted markets: not read, their delivered entries left unacked until the resume.
        self.paused: set[str] = set()
        self.pause_check_s = config["ENGINE_PAUSE_CHECK_S"]
        self._next_pause_check = 0.0

    def start(self) -> None:
        """Own the markets, rebuild their books, then finish the entries the previous life read but never acked.

        Owed orders without an entry are left to the sweep, which waits until the
        stream is caught up: processing them now would put them ahead of entries
        still in the stream, and a crash would change the outcome (decision 008).
        """
        self.session_pid = None  # set once every market is claimed on this session
        for engine in self.markets.values():
            self._claim(engine.market)
            self._ensure_group(engine.stream)
            engine.rebuild()
            engine.publish_snapshot()
            self._load_dead_letters(engine)
        self.session_pid = _backend_pid()
        self.heartbeat()
        # Entries delivered to this consumer before a crash and never acked, in stream order.
        while self.read(pending=True):
            pass

    def settle_owed(self, engine: MarketEngine, *, older_than: dt.timedelta | None) -> int:
        """Process what the database says ``engine``'s market is owed (see ``overdue_commands``)."""
        if engine.stream in self.paused:
            return 0
        owed = engine.overdue_commands(older_than=older_than)
        if self._dead:
            owed = [command for command in owed if (engine.symbol, *command) not in self._dead]
        for start in range(0, len(owed), self.batch_size):
            if not self._process(engine, owed[start : start + self.batch_size], entry_ids=()):
                return start  # halted: the rest stays owed in the database
        return len(owed)

    def _ensure_group(self, stream: str) -> None:
        try:
            self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis_lib.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _claim(self, market: Market) -> None:
        """One engine per market: a session advisory lock held for the life of the process.

        Raises ``MarketTaken`` when another engine holds it: at start, or during
        ``recover`` after this engine's session died and another one took over.
        """
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [0x45584348, market.id])
            (claimed,) = cursor.fetchone()
        if not claimed:
            raise MarketTaken(
                f"Another engine already runs market {market.symbol}; stop it first or pick other --markets."
            )

    def step(self) -> int:
        """One cycle: read what is waiting (up to a batch per market), process, maybe sweep and log."""
        processed = self.read(pending=False)
        now = time.monotonic()
        if self.paused and now >= self._next_pause_check:
            self._next_pause_check = now + self.pause_check_s
            processed += self.resume_paused()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_after.total_seconds() / 2
            processed += self.sweep()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_EVERY_S
            self.heartbeat()
        if now >= self._next_ticker:
            self._next_ticker = now + TICKER_REFRESH_S
            for engine in self.markets.values():
                engine.publish_ticker()
        if now >= self._next_summary:
            self._next_summary = now + self.summary_every
            self.log_summary()
        return processed

    def heartbeat(self) -> None:
        """Say this engine is alive, per market (``/readyz`` reads it): ``engine:heartbeat`` {symbol: ms}."""
        now_ms = int(time.time() * 1000)
        self.redis.hset(HEARTBEAT_KEY, mapping=dict.fromkeys(self.markets, now_ms))

    def sweep(self) -> int:
        """Process orders left PENDING (or with an unserved cancel) past the sweep delay."""
        done = 0
        for engine in self.markets.values():
            if engine.stream in self._behind:
                continue
            if owed := self.settle_owed(engine, older_than=self.sweep_after):
                logger.warning("swept overdue commands", extra={"market": engine.symbol, "commands": owed})
            done += owed
        return done

    def resume_paused(self) -> int:
        """Resume the paused markets an operator resumed: first what they left unacked, in stream order.

        A halted market's batch was not applied: its entries stay in this
        consumer's pending list (and its owed orders in the database), so nothing
        queued is lost and nothing runs twice.  Returns the commands processed.
        """
        by_id = {engine.market.id: engine for engine in self.markets.values() if engine.stream in self.paused}
        resumed = [
            by_id[market_id].stream
            for market_id in Market.objects.filter(pk__in=by_id)
            .exclude(status=Market.Status.HALTED)
            .values_list("pk", flat=True)
        ]
        if not resumed:
            return 0
        self.paused.difference_update(resumed)
        logger.info("markets resumed; processing their queued commands", extra={"streams": ",".join(resumed)})
        processed = 0
        while done := self.read(pending=True, only=resumed):
            processed += done
        return processed

    def read(self, *, pending: bool, only: Iterable[str] | None = None) -> int:
        """Read and process the streams' new entries (or, with ``pending``, this consumer's unacked ones).

        ``only``: just these streams.  Paused (halted) markets' streams are never read.
        """
        wanted = self.by_stream if only is None else only
        streams_arg = {stream: "0" if pending else ">" for stream in wanted if stream not in self.paused}
        if not streams_arg:
            if not pending:
                time.sleep(self.block_ms / 1000)  # every market halted: idle like an empty read
            return 0
        try:
            response = self.redis.xreadgroup(
                GROUP, self.consumer, streams_arg, count=self.batch_size, block=None if pending else self.block_ms
            )
        except redis_lib.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # Redis lost our streams (restarted without persistence). Recreate them; the
            # orders whose entries were lost are still PENDING in the database, and the
            # sweep brings them in.
            logger.warning("command streams were lost; recreating them", extra={"error": str(error)})
            for stream in self.by_stream:
                self._ensure_group(stream)
            # The read models went with it: put them back from the books.
            for engine in self.markets.values():
                engine.publish_snapshot()
            return 0
        if not pending and response and self.linger_s and _entries(response) < self.batch_size // 2:
            # A thin batch pays the whole per-batch cost (a transaction, its commit, the
            # ack) for one or two orders: wait a few ms for what is arriving and take it too.
            time.sleep(self.linger_s)
            more = self.redis.xreadgroup(GROUP, self.consumer, streams_arg, count=self.batch_size)
            response = _merge(response, more or [])
        if not pending:
            self._behind = {_text(stream) for stream, entries in response or () if len(entries) >= self.batch_size}
        processed = 0
        for stream, entries in response or ():
            engine = self.by_stream[_text(stream)]
            commands, entry_ids, sources = [], [], []
            for entry_id, fields in entries:
                entry_ids.append(entry_id)
                if not fields:  # an entry trimmed from the stream while pending
                    continue
                try:
                    commands.append((fields[b"c"].decode(), int(fields[b"o"])))
                    sources.append(entry_id)
                except (KeyError, ValueError):
                    logger.warning("ignored malformed stream entry", extra={"market": engine.symbol, "id": entry_id})
            if self._process(engine, commands, entry_ids=entry_ids, sources=sources):
                processed += len(entry_ids)
        return processed

    def _process(
        self, engine: MarketEngine, commands: list[tuple[str, int]], *, entry_ids: Sequence, sources: Sequence = ()
    ) -> bool:
        """Settle ``commands`` (``sources``: the stream entry of each, if any), ack ``entry_ids``, publish.

        False when the market is halted: nothing was settled or acked, and the
        market is paused until ``resume_paused`` finds it resumed.
        """
        started = time.perf_counter()
        try:
            effects = engine.process(commands) if commands else None
        except MarketHalted:
            if engine.stream not in self.paused:
                logger.warning("market halted; pausing it with its commands queued", extra={"market": engine.symbol})
            self.paused.add(engine.stream)
            return False
        except Exception as error:
            if not self._keeps_failing(engine, commands, error):
                raise
            self._isolate(engine, commands, sources or [None] * len(commands))
            effects, commands = None, []  # each was settled (and counted) on its own
        if self._failures:
            for command in commands:
                self._failures.pop((engine.symbol, *command), None)
        if entry_ids:
            self.redis.xack(engine.stream, GROUP, *entry_ids)
        if effects is not None:
            engine.publish(effects)
        self.batches_total += 1
        self.commands_total += len(commands)
        logger.debug(
            "batch",
            extra={
                "market": engine.symbol,
                "commands": len(commands),
                "trades": len(effects.trades) if effects else 0,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return True

    def recover(self, stop: threading.Event) -> None:
        """After a failed step: re-read the unacked entries, or start over if the database session died.

        A dead session (PostgreSQL restarted, the connection killed) also took the
        advisory locks that make this engine the only one for its markets, and
        Django does not reconnect inside a loop by itself: close it, then do what
        a fresh start does (claim, rebuild, republish, finish the unacked entries).
        """
        while not stop.is_set():
            try:
                connection.close_if_unusable_or_obsolete()
                # Django reconnects silently on the next query (a failed rollback closes the
                # connection), so compare sessions rather than look for a closed connection.
                if _backend_pid() != self.session_pid:
                    logger.warning("database session lost; claiming the markets again and rebuilding")
                    self.start()
                else:
                    while self.read(pending=True):
                        pass
                return
            except MarketTaken:
                # Another engine claimed the market while our session was gone: it owns the
                # stream now, and two owners would double-match.  Stop rather than retry.
                raise
            except Exception:
                logger.exception("recovery failed; retrying")
                stop.wait(2.0)

    # --- poison commands ---------------------------------------------------------------

    def _keeps_failing(self, engine: MarketEngine, commands: Sequence[tuple[str, int]], error: Exception) -> bool:
        """Count a failed batch against each of its commands; True once one of them failed often enough."""
        if self._isolating or isinstance(error, TRANSIENT_ERRORS):
            return False
        keys = [(engine.symbol, *command) for command in commands]
        self._failures.update(keys)
        return max(self._failures[key] for key in keys) >= self.dead_letter_after

    def _isolate(self, engine: MarketEngine, commands: Sequence[tuple[str, int]], sources: Sequence) -> None:
        """Settle a batch that keeps failing one command at a time, in order; dead-letter the ones that fail."""
        logger.error(
            "batch keeps failing; settling its commands one by one to find the poison",
            extra={"market": engine.symbol, "commands": len(commands)},
        )
        self._isolating = True
        try:
            for command, source in zip(commands, sources, strict=True):
                try:
                    self._process(engine, [command], entry_ids=[source] if source is not None else ())
                except Exception as error:
                    if isinstance(error, TRANSIENT_ERRORS):
                        raise
                    self._dead_letter(engine, command, source, error)
        finally:
            self._isolating = False

    def _dead_letter(self, engine: MarketEngine, command: tuple[str, int], source, error: Exception) -> None:
        """Move ``command`` to the market's dead-letter stream and ack its entry; the order is left as it is."""
        entry = _text(source) if source is not None else ""
        self.redis.xadd(
            streams.dead_letter_key(engine.symbol),
            {"c": command[0], "o": command[1], "entry": entry, "error": f"{type(error).__name__}: {error}"[:500]},
            maxlen=streams.DEAD_LETTER_MAXLEN,
            approximate=True,
        )
        if source is not None:
            self.redis.xack(engine.stream, GROUP, source)
        key = (engine.symbol, *command)
        self._dead.add(key)
        self._failures.pop(key, None)
        logger.error(
            "dead-lettered a command that keeps failing; its order is untouched until an operator acts",
            extra={
                "market": engine.symbol,
                "command": command[0],
                "order_id": command[1],
                "entry_id": entry,
                "dead_letter_stream": streams.dead_letter_key(engine.symbol),
                "error": f"{type(error).__name__}: {error}",
            },
        )

    def _load_dead_letters(self, engine: MarketEngine) -> None:
        """Remember what earlier lives dead-lettered, so the sweep does not retry it over and over."""
        for _, fields in self.redis.xrange(streams.dead_letter_key(engine.symbol)):
            try:
                self._dead.add((engine.symbol, fields[b"c"].decode(), int(fields[b"o"])))
            except (KeyError, ValueError):
                continue

    def log_summary(self) -> None:
        for engine in self.markets.values():
            logger.info(
                "engine summary",
                extra={
                    "market": engine.symbol,
                    "resting": len(engine.book),
                    "trades_total": engine.trades_total,
                    "last_trade_id": engine.last_trade_id,
                    "best_bid": engine.book.best_bid(),
                    "best_ask": engine.book.best_ask(),
                },
            )

    def run(self, stop: threading.Event) -> None:
        """Start, then loop until ``stop`` is set; a failed batch is retried after a pause."""
        self.start()
        tune_gc()  # the rebuilt books are long-lived: keep them out of the collector's way
        logger.info("engine started", extra={"markets": ",".join(self.markets), "consumer": self.consumer})
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                # The batch rolled back and the book was rebuilt; its entries stay unacked
                # and are re-read by ``recover``, so nothing is lost.  Pause so a persistent
                # fault does not spin.
                logger.exception("engine step failed; retrying")
                stop.wait(1.0)
                self.recover(stop)
        self.log_summary()
        logger.info("engine stopped", extra={"markets": ",".join(self.markets)})

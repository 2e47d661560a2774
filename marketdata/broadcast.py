"""Where real-time data leaves the exchange: only here, and only after its batch committed.

Publishing: Sending frames to Channels groups from synchronous code (the engine, Celery tasks, services).

With ``RedisPubSubChannelLayer`` a ``group_send`` is one Redis ``PUBLISH`` of
the serialized message on the group's pub/sub channel.  Going through
``async_to_sync(group_send)`` from synchronous code costs an event loop and a
new connection per call (80 to 270 messages/s, see shared NOTES.md), so we
publish the very same bytes with the process's ordinary Redis client, every
message of an engine batch in one pipelined round trip, in order.

The layer's serializer is used as is; the channel name follows
channels-redis' pub/sub layer (``{prefix}__group__{group}``, one host;
shard with Redis Cluster instead). ``marketdata/tests/test_consumer.py`` proves a
real Channels consumer receives what is published here, so an upgrade that
changes either fails a test instead of going silent.

What leaves, per committed engine batch of a market (``publish_market_batch``):
the Redis read models (aggregated depth with its update id, recent trades,
the 24h ticker, the reference prices order entry uses for market-order price
protection) and, in the same MULTI, the frames of the public streams and the
private events of the users whose orders the batch touched.  On start the
engine replaces the read models from its rebuilt book (``publish_market_snapshot``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from exchange_site.amounts import plain, plain_or_none
from exchange_site.redis import get_redis
from marketdata import streams
from marketdata.selectors import TRADES_KEPT, depth_keys, reference_key, ticker_key, trades_key

logger = logging.getLogger(__name__)

Message = tuple[str, dict]  # (group, channels message)


@cache
def _layer_layout() -> tuple[str, int]:
    config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
    return config.get("prefix", "asgi"), len(config.get("hosts", [None]))


def _group_channel(group: str) -> str:
    prefix, shards = _layer_layout()
    if shards != 1:
        raise RuntimeError("Publishing assumes one Redis host for the channel layer (shard by Redis Cluster instead).")
    return f"{prefix}__group__{group}"


def publish(messages: Sequence[Message]) -> None:
    """Send ``messages`` to their groups, in order, in one round trip; failures are logged, not raised.

    Market data is rebuildable and clients resync on a gap in update ids, so a
    failed publish must never fail the engine batch that already committed.
    """
    if not messages:
        return
    pipe = get_redis().pipeline(transaction=False)
    _queue_messages(pipe, messages)
    try:
        pipe.execute()
    except Exception:
        logger.exception("publishing to channel groups failed", extra={"messages": len(messages)})


def _queue_messages(pipe, messages: Iterable[Message]) -> int:
    layer = get_channel_layer()
    count = 0
    for group, message in messages:
        pipe.publish(_group_channel(group), layer.serialize(message))
        count += 1
    return count


def stream_messages(group: str, stream: str, data: Any) -> Message:
    """One frame of ``stream`` for ``group``, serialized once for every member."""
    return group, streams.group_message(stream, streams.frame(stream, data))


def publish_reference_prices(
    *, symbol: str, best_bid: Decimal | None, best_ask: Decimal | None, last: Decimal | None
) -> None:
    values = {
        "best_bid": "" if best_bid is None else str(best_bid),
        "best_ask": "" if best_ask is None else str(best_ask),
    }
    if last is not None:
        values["last"] = str(last)
    get_redis().hset(reference_key(symbol), mapping=values)


# --- engine batches ------------------------------------------------------------------


@dataclass(slots=True)
class TradeEvent:
    trade_id: int
    price: Decimal
    qty: Decimal
    quote: Decimal
    taker_side: str
    buy_order_id: int
    sell_order_id: int
    buyer_id: int
    seller_id: int
    buyer_fee: Decimal
    seller_fee: Decimal


@dataclass(slots=True)
class OrderEvent:
    """An order's state after the batch, as its owner sees it on the ``orders`` stream."""

    user_id: int
    id: int
    client_order_id: str
    side: str
    type: str
    status: str
    price: Decimal | None
    quantity: Decimal | None
    filled_quantity: Decimal
    filled_quote: Decimal
    end_reason: str
    time_in_force: str
    stp_mode: str
    quote_quantity: Decimal | None
    created_ms: int


@dataclass(slots=True)
class MarketBatch:
    """What one committed engine batch changed in one market, ready to publish."""

    symbol: str
    base_asset: str
    quote_asset: str
    time_ms: int
    first_update_id: int = 0
    last_update_id: int = 0
    # Changed levels with their new total quantity; quantity 0 removes the level.
    bids: list[tuple[Decimal, int, Decimal]] = field(default_factory=list)  # (price, ticks, qty)
    asks: list[tuple[Decimal, int, Decimal]] = field(default_factory=list)
    trades: list[TradeEvent] = field(default_factory=list)
    orders: list[OrderEvent] = field(default_factory=list)
    ticker: dict[str, Any] | None = None
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    # (user, asset) pairs whose balance changed, for the ``balances`` stream.
    balances: set[tuple[int, int]] = field(default_factory=set)


def publish_market_batch(batch: MarketBatch) -> None:
    """Update the read models and send every frame of ``batch``, in one MULTI round trip.

    Called after the batch committed.  A failure is logged, not raised: the
    read models are rebuilt on the engine's next start and clients resync on a
    gap in depth update ids.
    """
    symbol = batch.symbol
    pipe = get_redis().pipeline(transaction=True)
    messages: list[Message] = []
    if batch.bids or batch.asks:
        _queue_depth_levels(pipe, symbol, batch.bids, batch.asks, batch.last_update_id)
        update = {
            "e": "depthUpdate", "E": batch.time_ms, "s": symbol, "U": batch.first_update_id, "u": batch.last_update_id,
            "b": [[plain(p), plain(q)] for p, _, q in batch.bids],
            "a": [[plain(p), plain(q)] for p, _, q in batch.asks],
        }  # fmt: skip
        messages.append(
            stream_messages(streams.public_group("depth", symbol), streams.public_stream("depth", symbol), update)
        )
    if batch.trades:
        trades_stream, trades_group = streams.public_stream("trades", symbol), streams.public_group("trades", symbol)
        rows = []
        for trade in batch.trades:
            rows.append(json.dumps(_trade_row(trade, batch.time_ms), separators=(",", ":")))
            messages.append(stream_messages(trades_group, trades_stream, _trade_frame(trade, symbol, batch.time_ms)))
        pipe.rpush(trades_key(symbol), *rows)
        pipe.ltrim(trades_key(symbol), -TRADES_KEPT, -1)
    pipe.hset(
        reference_key(symbol),
        mapping={
            "best_bid": plain_or_none(batch.best_bid) or "",
            "best_ask": plain_or_none(batch.best_ask) or "",
            **({"last": plain(batch.trades[-1].price)} if batch.trades else {}),
        },
    )
    if batch.ticker is not None:
        messages += _queue_ticker(pipe, symbol, batch.ticker, batch.best_bid, batch.best_ask, batch.time_ms)
    messages += _private_messages(batch)
    _queue_messages(pipe, messages)
    try:
        pipe.execute()
    except Exception:
        logger.exception("publishing a batch failed", extra={"market": symbol, "messages": len(messages)})


def publish_market_snapshot(
    *,
    symbol: str,
    update_id: int,
    bids: list[tuple[Decimal, int, Decimal]],
    asks: list[tuple[Decimal, int, Decimal]],
    trades: list[dict[str, Any]],
    ticker: dict[str, Any],
    best_bid: Decimal | None,
    best_ask: Decimal | None,
    time_ms: int,
) -> None:
    """Replace every read model of ``symbol`` (engine start): depth, recent trades, ticker, reference prices."""
    pipe = get_redis().pipeline(transaction=True)
    pipe.delete(*depth_keys(symbol), trades_key(symbol), reference_key(symbol))
    _queue_depth_levels(pipe, symbol, bids, asks, update_id)
    if trades:
        pipe.rpush(trades_key(symbol), *(json.dumps(row, separators=(",", ":")) for row in trades[-TRADES_KEPT:]))
    reference = {"best_bid": plain_or_none(best_bid) or "", "best_ask": plain_or_none(best_ask) or ""}
    if trades:
        reference["last"] = trades[-1]["price"]
    pipe.hset(reference_key(symbol), mapping=reference)
    _queue_messages(pipe, _queue_ticker(pipe, symbol, ticker, best_bid, best_ask, time_ms))
    pipe.execute()


def publish_ticker(
    *, symbol: str, ticker: dict[str, Any], best_bid: Decimal | None, best_ask: Decimal | None, time_ms: int
) -> None:
    """Refresh the ticker alone: the 24h window slides even when nothing trades."""
    pipe = get_redis().pipeline(transaction=True)
    _queue_messages(pipe, _queue_ticker(pipe, symbol, ticker, best_bid, best_ask, time_ms))
    try:
        pipe.execute()
    except Exception:
        logger.exception("publishing the ticker failed", extra={"market": symbol})


def trade_row(
    *, trade_id: int, price: Decimal, qty: Decimal, quote: Decimal, taker_side: str, time_ms: int
) -> dict[str, Any]:
    """A trade as REST's recent-trades list shows it."""
    return {
        "id": trade_id, "price": plain(price), "qty": plain(qty), "quote_qty": plain(quote), "time": time_ms,
        "taker_side": taker_side, "is_buyer_maker": taker_side == "sell",
    }  # fmt: skip


def _trade_row(trade: TradeEvent, time_ms: int) -> dict[str, Any]:
    return trade_row(
        trade_id=trade.trade_id, price=trade.price, qty=trade.qty, quote=trade.quote,
        taker_side=trade.taker_side, time_ms=time_ms,
    )  # fmt: skip


def _trade_frame(trade: TradeEvent, symbol: str, time_ms: int) -> dict[str, Any]:
    return {
        "e": "trade", "E": time_ms, "s": symbol, "t": trade.trade_id, "p": plain(trade.price),
        "q": plain(trade.qty), "T": time_ms, "m": trade.taker_side == "sell",
    }  # fmt: skip


def _queue_depth_levels(pipe, symbol: str, bids, asks, update_id: int) -> None:
    bid_prices, ask_prices, bid_qty, ask_qty, id_key = depth_keys(symbol)
    for prices, quantities, levels in ((bid_prices, bid_qty, bids), (ask_prices, ask_qty, asks)):
        gone = [plain(price) for price, _, qty in levels if not qty]
        live = [(plain(price), ticks, plain(qty)) for price, ticks, qty in levels if qty]
        if gone:
            pipe.zrem(prices, *gone)
            pipe.hdel(quantities, *gone)
        if live:
            pipe.zadd(prices, {price: ticks for price, ticks, _ in live})
            pipe.hset(quantities, mapping={price: qty for price, _, qty in live})
    pipe.set(id_key, update_id)


def _queue_ticker(pipe, symbol: str, ticker: dict[str, Any], best_bid, best_ask, time_ms: int) -> list[Message]:
    row = {
        "market": symbol,
        **{key: plain_or_none(ticker[key]) for key in ("open", "high", "low", "close", "volume", "quote_volume")},
        "change": plain_or_none(ticker["change"]),
        "change_percent": plain_or_none(ticker["change_percent"]),
        "trades": ticker["trades"],
        "best_bid": plain_or_none(best_bid),
        "best_ask": plain_or_none(best_ask),
        "open_time": ticker["open_time"],
        "close_time": ticker["close_time"],
    }
    pipe.set(ticker_key(symbol), json.dumps(row, separators=(",", ":")))
    frame = {
        "e": "24hrTicker", "E": time_ms, "s": symbol, "o": row["open"], "h": row["high"], "l": row["low"],
        "c": row["close"], "v": row["volume"], "q": row["quote_volume"], "p": row["change"],
        "P": row["change_percent"], "n": row["trades"], "b": row["best_bid"], "a": row["best_ask"],
        "O": row["open_time"], "C": row["close_time"],
    }  # fmt: skip
    return [stream_messages(streams.public_group("ticker", symbol), streams.public_stream("ticker", symbol), frame)]


# --- private events ------------------------------------------------------------------


def _private_messages(batch: MarketBatch) -> list[Message]:
    """A user's events of one batch, in this order: their fills, then their orders' new states, then balances.

    The batch goes out in one MULTI, so a user's frames of one batch arrive
    together and in this order: when an order's frame arrives, every fill that
    led to it has arrived before (the Binance adapter turns each fill into a
    trade report with the order's running totals, then reports the order's end).
    """
    messages: list[Message] = []
    for trade in batch.trades:
        for user_id, order_id, side, fee, fee_asset in (
            (trade.buyer_id, trade.buy_order_id, "buy", trade.buyer_fee, batch.base_asset),
            (trade.seller_id, trade.sell_order_id, "sell", trade.seller_fee, batch.quote_asset),
        ):
            fill = {
                "e": "fill", "E": batch.time_ms, "trade_id": trade.trade_id, "order_id": order_id,
                "market": batch.symbol, "side": side, "price": plain(trade.price), "qty": plain(trade.qty),
                "quote_qty": plain(trade.quote), "fee": plain(fee), "fee_asset": fee_asset,
                "role": "taker" if side == trade.taker_side else "maker", "T": batch.time_ms,
            }  # fmt: skip
            messages.append(stream_messages(streams.user_group(user_id), "fills", fill))
    messages += [
        stream_messages(streams.user_group(order.user_id), "orders", _order_frame(order, batch))
        for order in batch.orders
    ]
    if batch.balances:
        messages += balance_messages(batch.balances, time_ms=batch.time_ms)
    return messages


def _order_frame(order: OrderEvent, batch: MarketBatch) -> dict[str, Any]:
    return {
        "e": "order", "E": batch.time_ms, "id": order.id, "client_order_id": order.client_order_id,
        "market": batch.symbol, "side": order.side, "type": order.type, "status": order.status,
        "price": plain_or_none(order.price), "quantity": plain_or_none(order.quantity),
        "filled_quantity": plain(order.filled_quantity), "filled_quote": plain(order.filled_quote),
        "end_reason": order.end_reason, "time_in_force": order.time_in_force, "stp_mode": order.stp_mode,
        "quote_quantity": plain_or_none(order.quote_quantity), "created_at": order.created_ms,
    }  # fmt: skip


def balance_messages(
    pairs: Iterable[tuple[int, int]], *, time_ms: int, change: dict[str, str] | None = None
) -> list[Message]:
    """One ``balances`` frame per user with the current amounts of the assets in ``pairs`` (one query).

    ``change`` (``{"asset", "amount", "reason"}``, amount signed) describes a
    movement from outside trading (a deposit or withdrawal) and is added to the
    frame as is, so a client can tell it from order activity.
    """
    pairs = sorted(set(pairs))
    if not pairs:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT b.user_id, a.symbol, b.available, b.locked FROM accounts_balance b"
            " JOIN accounts_asset a ON a.id = b.asset_id"
            " JOIN unnest(%s::bigint[], %s::bigint[]) AS t(user_id, asset_id)"
            " ON b.user_id = t.user_id AND b.asset_id = t.asset_id"
            " ORDER BY b.user_id, a.symbol",
            [[user for user, _ in pairs], [asset for _, asset in pairs]],
        )
        rows = cursor.fetchall()
    by_user: dict[int, list[dict[str, str]]] = {}
    for user_id, asset, available, locked in rows:
        by_user.setdefault(user_id, []).append({"asset": asset, "available": plain(available), "locked": plain(locked)})
    extra = {} if change is None else {"change": change}
    return [
        stream_messages(
            streams.user_group(user_id), "balances", {"e": "balances", "E": time_ms, "balances": rows, **extra}
        )
        for user_id, rows in by_user.items()
    ]


class GroupSubscription:
    """The frames published to ``groups`` from now on, read from synchronous code (mirrors ``publish``).

    Used to wait for an event (e.g. the engine's verdict on an order just
    placed): subscribe first, then act, then read, so nothing is missed.
    Holds one Redis connection until ``close`` (or the ``with`` block ends).
    """

    def __init__(self, *groups: str, confirm_within: float = 1.0) -> None:
        self._pubsub = get_redis().pubsub()
        self._pubsub.subscribe(*(_group_channel(group) for group in groups))
        self._layer = get_channel_layer()
        # Wait for Redis to confirm, so whatever the caller does next is published after we listen.
        unconfirmed = len(groups)
        deadline = time.monotonic() + confirm_within
        while unconfirmed and (left := deadline - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=left)
            if message is not None and message["type"] == "subscribe":
                unconfirmed -= 1

    def next_frame(self, timeout: float) -> tuple[str, str] | None:
        """``(stream, frame text)`` of the next message, or None when nothing came within ``timeout`` seconds."""
        message = self._pubsub.get_message(timeout=max(timeout, 0.0))
        if message is None or message.get("type") != "message":
            return None
        event = self._layer.deserialize(message["data"])
        return event["stream"], event["text"]

    def close(self) -> None:
        self._pubsub.close()

    def __enter__(self) -> GroupSubscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

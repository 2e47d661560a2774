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
shard with Redis Cluster instead). ``marketdata/tests/test_publisher.py`` proves a
real Channels consumer receives what is published here, so an upgrade that
changes either fails a test instead of going silent.

The engine also keeps the reference prices (best bid, best ask, last trade)
that order entry uses for market-order price protection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from functools import cache

from channels.layers import get_channel_layer
from django.conf import settings

from exchange_site.redis import get_redis
from marketdata.selectors import reference_key

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
    layer = get_channel_layer()
    pipe = get_redis().pipeline(transaction=False)
    for group, message in messages:
        pipe.publish(_group_channel(group), layer.serialize(message))
    try:
        pipe.execute()
    except Exception:
        logger.exception("publishing to channel groups failed", extra={"messages": len(messages)})


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

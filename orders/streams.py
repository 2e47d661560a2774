"""The per-market command streams the web tier writes and the engine consumes.

An entry carries only a command and an order id: the engine trusts the
database row, never the payload, so a replayed or forged entry can do nothing.
Keys of one market share a hash tag (``{BTC_USDT}``) so Redis Cluster keeps
them on one node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exchange_site.redis import get_redis

PLACE = "place"
CANCEL = "cancel"
# Acked entries are useless once their batch committed; keep the stream bounded.
STREAM_MAXLEN = 1_000_000


def stream_key(symbol: str) -> str:
    return f"engine:{{{symbol}}}:commands"


# Commands the engine gave up on (matching.engine, "poison commands"): kept for an operator.
DEAD_LETTER_MAXLEN = 100_000


def dead_letter_key(symbol: str) -> str:
    return f"engine:{{{symbol}}}:dead"


def send_commands(symbol: str, commands: Iterable[tuple[str, int]]) -> None:
    """XADD each ``(command, order_id)`` to ``symbol``'s stream in one pipelined round trip."""
    send_command_batches({symbol: commands})


def send_command_batches(batches: Mapping[str, Iterable[tuple[str, int]]]) -> None:
    """XADD the commands of several markets, each to its own stream, in one pipelined round trip."""
    pipe = get_redis().pipeline(transaction=False)
    for symbol, commands in batches.items():
        key = stream_key(symbol)
        for command, order_id in commands:
            pipe.xadd(key, {"c": command, "o": order_id}, maxlen=STREAM_MAXLEN, approximate=True)
    pipe.execute()

"""The fan-out benchmark's own promises: clients spread evenly, and its loss check catches every kind of loss.

``bench/ws_fanout.py`` reports "every client received every frame" only when
``check_delivery`` finds nothing; a check that let a gap or a short client
through would make every figure of the benchmark meaningless.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import ws_fanout  # bench/ is not a package
from ws_fanout import ConnectionStats, Published, check_delivery, spread


def published_frames() -> list[Published]:
    frames = []
    for i, (stream, data) in enumerate(
        [
            ("depth@BTC_USDT", {"E": 1, "U": 10, "u": 12}),
            ("trades@BTC_USDT", {"E": 1, "t": 5}),
            ("trades@BTC_USDT", {"E": 1, "t": 6}),
            ("ticker@BTC_USDT", {"E": 1, "c": "1"}),
            ("depth@BTC_USDT", {"E": 2, "U": 13, "u": 13}),
        ]
    ):
        frames.append(Published(stream, json.dumps({"stream": stream, "data": data}), data, 1000.0 + i))
    return frames


def receive(published: list[Published], skip: set[int] = frozenset()) -> tuple[ConnectionStats, list[str]]:
    """What a connection records for the published frames except those at ``skip``, as the client does it."""
    stats = ConnectionStats(url="ws://x/ws", subscribed=True)
    texts = []
    for i, frame in enumerate(published):
        if i in skip:
            continue
        texts.append(frame.text)
        stats.frames[frame.stream] += 1
        if frame.stream.startswith("trades@"):
            t = frame.data["t"]
            if stats.last_trade is None:
                stats.first_trade = t
            elif t != stats.last_trade + 1:
                stats.trade_gaps += 1
            stats.last_trade = t
        elif frame.stream.startswith("depth@"):
            if stats.last_update is None:
                stats.first_update = frame.data["U"]
            elif frame.data["U"] != stats.last_update + 1:
                stats.depth_gaps += 1
            stats.last_update = frame.data["u"]
    return stats, texts


def receipts_of(*received: list[str]) -> dict[str, array]:
    out: dict[str, array] = {}
    for texts in received:
        for text in texts:
            out.setdefault(text, array("d")).append(2000.0)
    return out


def test_spread_gives_each_process_an_even_share_of_every_daphne():
    plan = spread(7, 2, ["a", "b"])
    assert [len(urls) for urls in plan] == [4, 3]
    assert Counter(url for urls in plan for url in urls) == {"a": 4, "b": 3}
    assert plan[0] == ["a", "b", "a", "b"]


def test_complete_delivery_passes():
    published = published_frames()
    (one, texts_one), (two, texts_two) = receive(published), receive(published)
    check = check_delivery([one, two], published, receipts_of(texts_one, texts_two), [5, 6])
    assert ws_fanout.failure_of(check, published) is None
    assert check["missing_frames"] == 0
    assert check["clients_with_loss"] == 0


def test_a_missed_trade_is_a_failure():
    published = published_frames()
    whole, texts_whole = receive(published)
    short, texts_short = receive(published, skip={1})  # trade 5
    check = check_delivery([whole, short], published, receipts_of(texts_whole, texts_short), [5, 6])
    assert check["missing_by_stream"] == {"trades@BTC_USDT": 1}
    assert check["clients_with_loss"] == 1
    assert "1 frames not delivered" in ws_fanout.failure_of(check, published)


def test_a_gap_in_depth_updates_is_a_failure():
    published = published_frames()
    whole, texts_whole = receive(published)
    gap, texts_gap = receive(published, skip={0})  # the first depth update: the client starts at U=13
    check = check_delivery([whole, gap], published, receipts_of(texts_whole, texts_gap), [5, 6])
    assert check["clients_with_loss"] == 1
    assert ws_fanout.failure_of(check, published) is not None


def test_a_frame_from_before_the_tap_is_not_a_loss():
    published = published_frames()
    earlier = Published("trades@BTC_USDT", '{"stream":"trades@BTC_USDT","data":{"E":0,"t":4}}', {"E": 0, "t": 4}, 999.0)
    stats, texts = receive([earlier, *published])
    check = check_delivery([stats], published, receipts_of(texts), [5, 6])
    assert ws_fanout.failure_of(check, published) is None


def test_a_committed_trade_never_published_and_a_failed_connection_are_failures():
    published = published_frames()
    stats, texts = receive(published)
    refused = ConnectionStats(url="ws://x/ws", error="connect: OSError: refused")
    check = check_delivery([stats, refused], published, receipts_of(texts), [5, 6, 7])
    failure = ws_fanout.failure_of(check, published)
    assert check["trades_not_published"] == 1
    assert check["failed_connections"] == 1
    assert "1 connections failed" in failure
    assert "1 committed trades never reached Redis" in failure

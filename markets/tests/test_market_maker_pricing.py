"""The market maker's reference prices: the bounded random walk and the price file."""

from __future__ import annotations

import logging
import os
import random
from decimal import Decimal as D

import pytest

from markets.market_maker.pricing import PriceFile, RandomWalk, parse_prices


def walk(seed=7, **overrides):
    options = {"centre": D(60_000), "band_pct": D(1), "step_bps": D(50), "quantum": D("0.01")} | overrides
    return RandomWalk(rng=random.Random(seed), **options)


def test_the_walk_never_leaves_its_band_and_stays_on_the_tick():
    narrow = walk()
    prices = [narrow.step() for _ in range(5000)]

    assert min(prices) >= D(59_400) and max(prices) <= D(60_600)
    assert all(p % D("0.01") == 0 for p in prices)
    # Big steps in a narrow band: it reaches both edges' neighbourhoods instead of sticking to one.
    assert min(prices) < D(59_500) and max(prices) > D(60_500)


def test_a_step_larger_than_the_band_is_still_kept_inside():
    wild = walk(band_pct=D("0.01"), step_bps=D(10_000))

    assert all(D("59994") <= wild.step() <= D("60006") for _ in range(500))


def test_each_step_moves_at_most_step_bps():
    steady = walk(band_pct=D(50), step_bps=D(4))
    previous = steady.price
    for _ in range(2000):
        price = steady.step()
        assert abs(price - previous) <= previous * D(4) / 10_000 + D("0.01")
        previous = price


def test_the_same_seed_gives_the_same_path_and_another_seed_another():
    first, second, other = walk(seed=1), walk(seed=1), walk(seed=2)

    path = [first.step() for _ in range(50)]

    assert path == [second.step() for _ in range(50)]
    assert path != [other.step() for _ in range(50)]


def test_the_walk_starts_at_a_given_price_drawn_into_the_band():
    assert walk(start=D("60100.123")).price == D("60100.12")
    assert walk(start=D(1)).price == D(59_400)  # a last trade far below the band starts at its edge


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"centre": D(0)}, "positive"),
        ({"band_pct": D(100)}, "band_pct"),
        ({"centre": D(60_500), "quantum": D(1000), "band_pct": D("0.1")}, "narrower"),
    ],
)
def test_a_walk_that_cannot_work_is_refused(options, message):
    with pytest.raises(ValueError, match=message):
        walk(**options)


def test_price_lines_one_per_line_or_csv_time_price_with_headers_and_comments_skipped():
    text = "time,price\n# a comment\n\n1700000000,60000.5\n2023-11-14T22:13:21Z,60001\n60002.25\n"

    parsed = parse_prices(text)

    assert parsed.prices == [D("60000.5"), D(60001), D("60002.25")]
    assert parsed.skipped == 1  # the header


@pytest.mark.parametrize("line", ["abc", "1700000000,-5", "1700000000,0", "1,NaN", "1,Infinity", "1,"])
def test_a_line_without_a_positive_price_is_skipped(line):
    parsed = parse_prices(f"{line}\n100\n")

    assert parsed.prices == [D(100)] and parsed.skipped == 1


def test_semicolons_separate_too():
    assert parse_prices("1700000000;42.5").prices == [D("42.5")]


def test_the_price_file_follows_its_newest_line_and_rereads_when_it_changes(tmp_path):
    path = tmp_path / "btc.csv"
    path.write_text("time,price\n1,60000\n2,60010\n")
    feed = PriceFile(path)

    assert feed.current() == D(60010)

    with path.open("a") as file:
        file.write("3,60020.5\n")
    os.utime(path, ns=(1, 10**18))  # a new modification time, whatever the file system's resolution
    assert feed.current() == D("60020.5")


def test_the_price_file_is_read_only_when_it_changed(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("100\n")
    reads = []
    feed = PriceFile(path, stat=lambda p: reads.append(p) or p.stat())
    feed.current()
    path.write_text("999\n")  # same size, and the stat below reports the old signature
    stat = path.stat()
    feed._signature = (stat.st_mtime_ns, stat.st_size)

    assert feed.current() == D(100)  # unchanged signature: not read again
    assert len(reads) == 2


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_missing_or_empty_price_file_keeps_the_last_good_price(tmp_path):
    # The project's loggers do not propagate to the root, where caplog listens.
    recorder = Recorder()
    logging.getLogger("markets.market_maker.pricing").addHandler(recorder)
    path = tmp_path / "p.txt"
    feed = PriceFile(path)

    assert feed.current() is None  # missing: no price yet
    path.write_text("123.4\n")
    assert feed.current() == D("123.4")
    path.write_text("time,price\n")
    os.utime(path, ns=(1, 2 * 10**18))
    assert feed.current() == D("123.4")
    path.unlink()
    assert feed.current() == D("123.4")
    # Said once per trouble, not once per cycle.
    logging.getLogger("markets.market_maker.pricing").removeHandler(recorder)
    assert recorder.messages == ["price file unreadable", "price file holds no price"]

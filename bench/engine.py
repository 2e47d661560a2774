#!/usr/bin/env python3
"""Replay the shared workload through ``matching.book.OrderBook`` and through the reference book; compare speed.

    .venv/bin/python bench/engine.py --orders 1000000 --seed 7

Both replays run in this process over the same pre-generated command list,
after a full GC with the list frozen out of later collections (it is input,
not work).  Each timing covers only the replay, and both include the same
per-trade digest work: the reference hashes inside its own matching loop; we
hash from the FILL events (tagged tuples) the book returns, inside the timed loop, with
the same f-string.  Converting "buy"/"sell" to BUY/SELL is inside our timed
loop too.  The resting bid/ask totals are read after the clock stops, for
both.  Each book is replayed ``--repeat`` times (alternating which goes first)
and its fastest replay counts, the usual way to take scheduler noise and
first-run heap growth out of a comparison on a shared machine.

Output, one per line: the summary in the exact format of
``workload.py --expect``, ``orders_per_sec=``, ``reference_orders_per_sec=``,
``ratio=`` (ours / reference) and a JSON line with all of it.  Exits 1 if
our summary differs from the reference's.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from matching.book import BUY, FILL, MARKET, SELL, OrderBook  # noqa: E402  (needs the repo on sys.path)
from matching.engine_gc import ENGINE_GC_THRESHOLD  # noqa: E402

DEFAULT_WORKLOAD = REPO.parent / "shared" / "bench" / "workload.py"


def load_workload(path: Path) -> ModuleType:
    """Import the shared workload module from its file (it is not a package we can import by name)."""
    spec = importlib.util.spec_from_file_location("shared_workload", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load workload from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def native_commands(commands: list[tuple]) -> list[tuple]:
    """The workload in our book's own input form: int sides and op codes, as the engine feeds it.

    Like the reference's string commands, this is prepared before timing: the
    engine converts at its boundary (``markets.units``), never inside the book.
    """
    sides = {"buy": BUY, "sell": SELL, None: None}
    ops = {"limit": _LIMIT_OP, "market": _MARKET_OP, "cancel": _CANCEL_OP}
    return [(ops[op], oid, user, sides[side], price, qty) for op, oid, user, side, price, qty in commands]


_LIMIT_OP, _MARKET_OP, _CANCEL_OP = 0, 1, 2


def replay_ours(commands: list[tuple]) -> tuple[OrderBook, int, int, int, str, float]:
    """Run native commands through OrderBook; return the book, trades, volume, notional, digest and seconds."""
    book = OrderBook()
    place = book.place
    cancel = book.cancel
    digest = hashlib.sha256()
    update = digest.update
    trades = volume = notional = 0
    start = time.perf_counter()
    for op, oid, user, side, price, qty in commands:
        if op == _LIMIT_OP:
            events = place(oid, user, side, price, qty)
        elif op == _CANCEL_OP:
            cancel(oid)
            continue
        else:
            events = place(oid, user, side, None, qty, MARKET)
        # An order that traded has at least one FILL plus its own outcome;
        # one with a single event only rested or ended.
        # (FILL, taker_id, maker_id, taker_user, maker_user, price, qty, taker_side, maker_left)
        if len(events) > 1:
            for e in events:
                if e[0] == FILL:
                    p = e[5]
                    q = e[6]
                    trades += 1
                    volume += q
                    notional += p * q
                    update(f"{e[1]},{e[2]},{p},{q}\n".encode())
    elapsed = time.perf_counter() - start
    return book, trades, volume, notional, digest.hexdigest()[:16], elapsed


def replay_reference(workload: ModuleType, commands: list[tuple]) -> tuple[str, float]:
    """Run the commands through the workload's ReferenceBook; return its summary and seconds."""
    ref = workload.ReferenceBook()
    apply = ref.apply
    start = time.perf_counter()
    for op, oid, _user, side, price, qty in commands:
        apply(op, oid, side, price, qty)
    elapsed = time.perf_counter() - start
    return ref.summary(), elapsed


def resting_lots(book: OrderBook, side: int) -> int:
    return sum(lots for _price, lots in book.depth(side, len(book) + 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD, help="path to the shared workload.py")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="replays of each book, alternating which goes first; the fastest of each counts (default 3)",
    )
    a = ap.parse_args(argv)

    workload = load_workload(a.workload)
    log = sys.stderr
    print(f"generating {a.orders} orders (seed {a.seed})...", file=log, flush=True)
    commands = list(workload.generate(a.orders, a.seed))
    ours_commands = native_commands(commands)
    gc.collect()
    gc.freeze()  # the command list is input: keep it out of both replays' collections
    # The engine process runs with this collector setting (see matching.engine.tune_gc):
    # neither book makes reference cycles, so frequent young collections only cost time.
    # Both books are timed under it.
    gc.set_threshold(*ENGINE_GC_THRESHOLD)

    ours_s = ref_s = float("inf")
    summaries: set[str] = set()
    ref_summaries: set[str] = set()
    for run in range(max(a.repeat, 1)):
        # Alternate the order so that neither book always pays for the first
        # replay on a fresh heap (page faults, arena growth) in a shared process.
        for who in ("ours", "reference") if run % 2 == 0 else ("reference", "ours"):
            print(f"{who} (run {run + 1}/{a.repeat})...", file=log, flush=True)
            gc.collect()
            if who == "ours":
                book, trades, volume, notional, digest, seconds = replay_ours(ours_commands)
                book.check_invariants()
                bids, asks = resting_lots(book, BUY), resting_lots(book, SELL)
                summaries.add(
                    f"trades={trades} volume={volume} notional={notional} bids={bids} asks={asks} digest={digest}"
                )
                ours_s = min(ours_s, seconds)
                del book
            else:
                ref_summary, seconds = replay_reference(workload, commands)
                ref_summaries.add(ref_summary)
                ref_s = min(ref_s, seconds)

    (summary,) = summaries  # the book is deterministic: every run must agree
    ours_rate = a.orders / ours_s
    ref_rate = a.orders / ref_s
    ratio = round(ours_rate / ref_rate, 2)
    print(summary)
    print(f"orders_per_sec={ours_rate:.0f}")
    print(f"reference_orders_per_sec={ref_rate:.0f}")
    print(f"ratio={ratio:.2f}")
    print(
        json.dumps(
            {
                "bench": "engine",
                "orders": a.orders,
                "seed": a.seed,
                "summary": summary,
                "orders_per_sec": round(ours_rate),
                "reference_orders_per_sec": round(ref_rate),
                "ratio": ratio,
            }
        )
    )
    if ref_summaries != {summary}:
        print(f"MISMATCH: ours      {summary}\n          reference {sorted(ref_summaries)}", file=log)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A user's private events as Binance's user data stream has them.

Three events: ``executionReport``, ``outboundAccountPosition`` and ``balanceUpdate``.

Our engine publishes, per committed batch and per user, the user's fills
(one per trade), then their orders' new states, then their balances
(``marketdata.broadcast._private_messages``).  Binance reports an order as a
sequence of execution reports: ``NEW`` when accepted, one ``TRADE`` per fill
with the order's running totals, then ``CANCELED``/``EXPIRED``/... when it
ends.  Because the fills of a batch arrive before the order's state, the
translator holds them until that state comes, then computes the running
totals backwards from it (filled before the batch = filled after it minus the
batch's fills): exact, without remembering anything between batches.

Each order frame also carries what Binance's reports repeat every time (time
in force, self-trade prevention mode, quote order quantity, creation time),
so translating needs no database read.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any

from compat.render import SIDE, TYPE, order_status, time_in_force
from exchange_site.amounts import plain

REMEMBERED_ORDERS = 2000
_END_EXECUTION = {"CANCELED": "CANCELED", "EXPIRED": "EXPIRED", "EXPIRED_IN_MATCH": "TRADE_PREVENTION",
                  "REJECTED": "REJECTED"}  # fmt: skip


class UserEventTranslator:
    """One connection's translation of one user's frames; feed frames in the order they arrive."""

    def __init__(self) -> None:
        self._fills: dict[int, list[dict[str, Any]]] = {}
        self._reported: OrderedDict[int, None] = OrderedDict()

    def translate(self, stream: str, data: dict[str, Any], *, symbol: str) -> list[dict[str, Any]]:
        """Binance's events for one of our frames (none for a fill: it is reported with its order's state)."""
        if stream == "fills":
            self._fills.setdefault(data["order_id"], []).append(data)
            while len(self._fills) > REMEMBERED_ORDERS:  # an order frame that never came: do not grow forever
                del self._fills[next(iter(self._fills))]
            return []
        if stream == "orders":
            return self._order_reports(data, self._fills.pop(data["id"], []), symbol)
        if stream == "balances":
            return self._balance_events(data)
        return []

    @staticmethod
    def _remember(memory: OrderedDict, key: int, value: Any) -> None:
        memory[key] = value
        memory.move_to_end(key)
        while len(memory) > REMEMBERED_ORDERS:
            memory.popitem(last=False)

    def _order_reports(self, order: dict[str, Any], fills: list[dict[str, Any]], symbol: str) -> list[dict[str, Any]]:
        status = order_status(order["status"], order["end_reason"])
        quantity = Decimal(order["quantity"]) if order["quantity"] is not None else None
        filled = Decimal(order["filled_quantity"]) - sum((Decimal(f["qty"]) for f in fills), Decimal(0))
        filled_quote = Decimal(order["filled_quote"]) - sum((Decimal(f["quote_qty"]) for f in fills), Decimal(0))
        base = {
            "e": "executionReport", "E": order["E"], "s": symbol, "c": order["client_order_id"],
            "S": SIDE[order["side"]], "o": TYPE[order["type"]],
            "f": time_in_force(order["type"], order["time_in_force"]),
            "q": plain(quantity) if quantity is not None else "0", "p": order["price"] or "0", "P": "0", "F": "0",
            "g": -1, "C": "", "r": "NONE", "i": order["id"], "T": order["E"], "I": 0, "M": False,
            "O": order["created_at"], "Q": order["quote_quantity"] or "0", "W": order["created_at"],
            "V": order["stp_mode"].upper(),
        }  # fmt: skip
        reports = []
        first = order["id"] not in self._reported and not filled
        self._remember(self._reported, order["id"], None)
        if first and status != "REJECTED":
            reports.append(self._report(base, x="NEW", status="NEW", filled=filled, quote=filled_quote))
        for index, fill in enumerate(fills):
            filled += Decimal(fill["qty"])
            filled_quote += Decimal(fill["quote_qty"])
            last = index == len(fills) - 1
            now = status if last and status in ("FILLED", "PARTIALLY_FILLED") else "PARTIALLY_FILLED"
            if quantity is not None and filled == quantity:
                now = "FILLED"
            reports.append(
                self._report(
                    base,
                    x="TRADE",
                    status=now,
                    filled=filled,
                    quote=filled_quote,
                    fill=fill,
                    on_book=last and status in ("NEW", "PARTIALLY_FILLED"),
                )
            )
        if status in _END_EXECUTION:
            reports.append(
                self._report(base, x=_END_EXECUTION[status], status=status, filled=filled, quote=filled_quote)
            )
        elif not reports:
            reports.append(self._report(base, x="NEW", status=status, filled=filled, quote=filled_quote, on_book=True))
        return reports

    @staticmethod
    def _report(
        base: dict[str, Any],
        *,
        x: str,
        status: str,
        filled: Decimal,
        quote: Decimal,
        fill: dict[str, Any] | None = None,
        on_book: bool = False,
    ) -> dict[str, Any]:
        report = {**base, "x": x, "X": status, "z": plain(filled), "Z": plain(quote), "w": on_book}
        if fill is None:
            report |= {"l": "0", "L": "0", "n": "0", "N": None, "t": -1, "m": False, "Y": "0"}
        else:
            report |= {
                "l": fill["qty"], "L": fill["price"], "n": fill["fee"], "N": fill["fee_asset"], "t": fill["trade_id"],
                "m": fill["role"] == "maker", "Y": fill["quote_qty"], "T": fill["T"],
            }  # fmt: skip
        return report

    @staticmethod
    def _balance_events(data: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        change = data.get("change")
        if change is not None:
            events.append({"e": "balanceUpdate", "E": data["E"], "a": change["asset"], "d": change["amount"],
                           "T": data["E"]})  # fmt: skip
        events.append(
            {
                "e": "outboundAccountPosition",
                "E": data["E"],
                "u": data["E"],
                "B": [{"a": b["asset"], "f": b["available"], "l": b["locked"]} for b in data["balances"]],
            }
        )
        return events

"""Celery tasks of market data: thin, the protocol lives in ``marketdata.klines``."""

from __future__ import annotations

from celery import shared_task

from marketdata import klines


@shared_task(ignore_result=True)
def aggregate_market(symbol: str) -> int:
    """Recompute and push ``symbol``'s stale candles (enqueued by ``klines.note_trades``)."""
    return klines.run_market(symbol=symbol)


@shared_task(ignore_result=True)
def sweep_klines() -> list[str]:
    """Beat: enqueue runs that a lost task or a lost note would otherwise never start."""
    return klines.sweep()

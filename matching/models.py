"""The engine's checkpoint, written in the same transaction as each batch it settles."""

from __future__ import annotations

from django.db import models

from markets.models import Market


class EngineState(models.Model):
    """Per market: the counters a replay must continue from, and when the engine last committed."""

    market = models.OneToOneField(Market, primary_key=True, on_delete=models.CASCADE, related_name="engine_state")
    last_trade_id = models.BigIntegerField(default=0)
    last_book_seq = models.BigIntegerField(default=0)
    # Counts changed depth levels: a depth update carries ids U..u without gaps.
    last_update_id = models.BigIntegerField(default=0)
    batches = models.BigIntegerField(default=0)
    commands = models.BigIntegerField(default=0)
    last_batch_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"engine state of {self.market_id}"

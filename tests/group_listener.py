"""Listen to Channels groups on Redis the way a consumer would, to see exactly what was published."""

from __future__ import annotations

import json
import time
from typing import Any

from channels.layers import get_channel_layer

from exchange_site.redis import get_redis
from marketdata.broadcast import _group_channel


class GroupListener:
    """Subscribes to ``groups`` now; ``frames()`` returns every frame published since, decoded."""

    def __init__(self, *groups: str) -> None:
        self.pubsub = get_redis().pubsub()
        self.pubsub.subscribe(*(_group_channel(group) for group in groups))
        self.layer = get_channel_layer()
        self.received: list[dict[str, Any]] = []
        self._drain(timeout=0.2)
        self.received.clear()

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.02)
            if message is None:
                continue
            event = self.layer.deserialize(message["data"])
            self.received.append(json.loads(event["text"]))

    def frames(self, stream: str | None = None, *, wait: float = 0.2) -> list[dict[str, Any]]:
        self._drain(timeout=wait)
        return [f for f in self.received if stream is None or f["stream"] == stream]

    def close(self) -> None:
        self.pubsub.close()

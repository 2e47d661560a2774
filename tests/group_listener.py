"""Listen to Channels groups on Redis the way a consumer would, to see exactly what was published."""

from __future__ import annotations

import json
import time
from typing import Any

from marketdata.broadcast import GroupSubscription


class GroupListener:
    """Subscribes to ``groups`` now; ``frames()`` returns every frame published since, decoded."""

    def __init__(self, *groups: str) -> None:
        self.subscription = GroupSubscription(*groups)
        self.received: list[dict[str, Any]] = []

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.subscription.next_frame(timeout=min(left, 0.02))
            if message is not None:
                self.received.append(json.loads(message[1]))

    def frames(self, stream: str | None = None, *, wait: float = 0.2) -> list[dict[str, Any]]:
        self._drain(timeout=wait)
        return [f for f in self.received if stream is None or f["stream"] == stream]

    def close(self) -> None:
        self.subscription.close()

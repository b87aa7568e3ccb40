"""The event loop's lag in this gateway process: how late a timer set for every 50 ms fires (GET /health)."""

from __future__ import annotations

import asyncio
import time
from collections import deque

import numpy as np

INTERVAL_S = 0.05
KEPT = 1200  # a minute of samples


class LoopLag:
    """Samples the lag of the running loop; `figures()` are over the last minute."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.samples_ms: deque[float] = deque(maxlen=KEPT)

    async def run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.samples_ms.append(max(0.0, (time.perf_counter() - asked - self.interval_s) * 1e3))

    def figures(self) -> dict:
        """p50, p99 and max over the last minute, in ms, with the count (None before any sample)."""
        if not self.samples_ms:
            return {"samples": 0, "p50": None, "p99": None, "max": None}
        values = np.fromiter(self.samples_ms, float)
        return {
            "samples": int(values.size),
            "p50": round(float(np.percentile(values, 50)), 2),
            "p99": round(float(np.percentile(values, 99)), 2),
            "max": round(float(values.max()), 2),
        }

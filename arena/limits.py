"""Per-provider limits: a concurrency cap taken first, then a rate limit that wakes waiters in order.

Why this shape: with thousands of jobs planned at once, a polling limiter (asyncio-throttle wakes
every waiter every 10 ms) burns the event loop that is timing requests. Here at most
`max_concurrency` tasks ever wait on the rate limiter (aiolimiter's leaky bucket, woken by timers,
no polling); everyone else waits on a FIFO semaphore that costs nothing while it waits.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter


class ProviderLimiter:
    """`async with limiter.slot():` holds one of `max_concurrency` slots; `await limiter.pace()`
    before each request keeps the send rate under `rate_per_s`, evenly spaced.

    No bursts: a bucket of one token. A burst of a full second's quota at start makes that many
    replies arrive together later, and the harness's measurements of them queue behind each other.
    """

    def __init__(self, rate_per_s: float, max_concurrency: int) -> None:
        self.rate_per_s = rate_per_s
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._rate = AsyncLimiter(1, 1.0 / rate_per_s)
        self.in_flight = 0
        self.peak_in_flight = 0

    @asynccontextmanager
    async def slot(self):
        await self._slots.acquire()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def pace(self) -> float:
        """Wait for the rate limit; returns the wait in ms (recorded, never part of generation time)."""
        start = time.perf_counter_ns()
        await self._rate.acquire()
        return (time.perf_counter_ns() - start) / 1e6

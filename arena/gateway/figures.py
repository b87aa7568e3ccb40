"""Each route's success-weighted latency over the window, read from the store and cached.

MINIMAL placeholder of the CORE helper's worktree (the ROUTING helper's module replaces it at
merge): no figures.
"""

from __future__ import annotations

import asyncio

from arena.gateway.routing import RouteFigures


class RouteFigureCache:
    def __init__(self, engine, window_days: float, refresh_s: float = 30.0) -> None:
        self.engine = engine
        self.window_days = window_days
        self.refresh_s = refresh_s

    def load(self) -> None:
        return None

    def figures(self, model: str) -> dict[str, RouteFigures]:
        return {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)

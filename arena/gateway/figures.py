"""Each route's figures over the window, read from the store and cached for routing's per-request use.

A load reads the non-warm-up attempts of the last window_days (benchmark and traffic: every
source) with only the columns routing needs, and swaps the whole table in at once; requests read
the table last loaded and never wait on the store. A load that fails keeps the figures it had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from arena.gateway.routing import RouteFigures, figures_from_frame
from arena.store import read_attempts
from arena.store.messages import one_line

log = logging.getLogger(__name__)

FIGURE_COLUMNS = ("model", "provider", "ok", "generation_ms", "started_at")


class RouteFigureCache:
    """provider -> RouteFigures per model, from the store, refreshed every refresh_s by run()."""

    def __init__(self, engine: sa.Engine, window_days: float, refresh_s: float = 30.0) -> None:
        self.engine = engine
        self.window_days = window_days
        self.refresh_s = refresh_s
        self._by_model: dict[str, dict[str, RouteFigures]] = {}
        self.loaded_at: datetime | None = None  # when the figures in use were read
        self.load_s: float | None = None  # how long that read took
        self.last_error: str | None = (
            None  # the last failed load's one-line reason, until one succeeds
        )

    def load(self) -> None:
        """Read the store now and replace the figures (blocking: run it in a thread).

        Raises what the store raised; the figures in use are then left as they were.
        """
        started = time.perf_counter()
        now = datetime.now(UTC)
        frame = read_attempts(
            self.engine,
            since=now - timedelta(days=self.window_days),
            columns=FIGURE_COLUMNS,
            labels_as_categories=True,  # the lean read: names as categoricals, chunked
        )
        by_model: dict[str, dict[str, RouteFigures]] = {}
        for (model, provider), figures in figures_from_frame(frame).items():
            by_model.setdefault(model, {})[provider] = figures
        self._by_model = by_model  # one assignment: a reader sees the old table or the new one
        self.loaded_at = now
        self.load_s = time.perf_counter() - started
        self.last_error = None

    def figures(self, model: str) -> dict[str, RouteFigures]:
        """provider -> figures for one model ({} when nothing of it was measured in the window)."""
        return self._by_model.get(model, {})

    async def refresh(self) -> bool:
        """One load in a thread; False (and a warning, the old figures kept) when it failed."""
        try:
            await asyncio.to_thread(self.load)
        except Exception as exc:  # the store's trouble must not end the gateway's refresh loop
            self.last_error = one_line(exc)
            log.warning("route figures not refreshed (keeping the last ones): %s", self.last_error)
            return False
        return True

    async def run(self) -> None:
        """The app's lifespan task: refresh now (or, when the figures were just read, after
        refresh_s), then every refresh_s, until cancelled."""
        if self.loaded_at is not None:  # the lifespan's first read, before requests came
            await asyncio.sleep(self.refresh_s)
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_s)

"""One circuit breaker per route: closed, open, half-open.

MINIMAL placeholder of the CORE helper's worktree (the ROUTING helper's module replaces it at
merge): breakers that never open.
"""

from __future__ import annotations

import time

from arena.config import GatewaySettings


class Breakers:
    def __init__(
        self,
        failure_share: float,
        min_attempts: int,
        window_s: float,
        cooldown_s: float,
        clock=time.monotonic,
    ) -> None:
        self.failure_share = failure_share
        self.min_attempts = min_attempts
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.clock = clock

    @classmethod
    def from_settings(cls, gateway: GatewaySettings) -> Breakers:
        return cls(
            gateway.breaker_failure_share,
            gateway.breaker_min_attempts,
            gateway.breaker_window_s,
            gateway.breaker_cooldown_s,
        )

    def allow(self, target: str) -> bool:
        return True

    def record(self, target: str, failure_class: str | None) -> None:
        return None

    def state(self, target: str) -> dict:
        return {"state": "closed", "window_attempts": 0, "window_failures": 0, "retry_in_s": None}

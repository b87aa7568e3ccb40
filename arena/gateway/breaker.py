"""One circuit breaker per route target ("model@provider"): closed, open, half-open, per process.

    closed     every request goes through. Each outcome is kept for window_s seconds. After a
               failure that leaves at least min_attempts outcomes in the window with
               failures / attempts >= failure_share, the breaker opens.
    open       allow() is False until cooldown_s have passed since it opened; then the next
               allow() turns it half-open and lets that one request through (the probe).
    half_open  allow() is False while the probe is out. The probe's outcome decides: a success
               closes the breaker (its window cleared), a failure re-opens it for another
               cooldown_s. A probe that reports nothing within probe_timeout_s (a cancelled
               request) is written off and the next allow() sends a new probe.

What counts: a success (record(target, None)) is an attempt; a failure that falls back
(routing.falls_back: rate limited, server error, timeout, network, bad reply, bad image, no
image, key refused) is an attempt and a failure. A refusal or a client error is no evidence about
the route (the request was at fault, not the route): it counts as neither, and a probe ending in one
leaves the breaker half-open with the probe slot free for the next request. Outcomes reported while
open (requests let through before it opened) are ignored; while half-open the first outcome
reported is taken as the probe's.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from arena.config import GatewaySettings
from arena.gateway.routing import falls_back

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class _Route:
    state: str = CLOSED
    outcomes: deque = field(default_factory=deque)  # (at_s, failed) in time order
    failures: int = 0  # failed outcomes in `outcomes`
    opened_at: float = 0.0
    probe_at: float | None = None  # when the half-open probe went out; None: none out


class Breakers:
    """The breakers of every route this process sends to; cheap, no I/O, safe across threads."""

    def __init__(
        self,
        failure_share: float,
        min_attempts: int,
        window_s: float,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        probe_timeout_s: float | None = None,
    ) -> None:
        if not 0 < failure_share <= 1:
            raise ValueError(f"failure_share must be above 0 and at most 1, got {failure_share!r}")
        if min_attempts < 1 or window_s <= 0 or cooldown_s <= 0:
            raise ValueError("min_attempts, window_s and cooldown_s must be positive")
        self.failure_share = failure_share
        self.min_attempts = min_attempts
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        # A probe longer than this is taken as lost; long enough for a provider's own timeout.
        self.probe_timeout_s = probe_timeout_s or max(cooldown_s, 600.0)
        self._clock = clock
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, gateway: GatewaySettings) -> Breakers:
        return cls(
            gateway.breaker_failure_share,
            gateway.breaker_min_attempts,
            gateway.breaker_window_s,
            gateway.breaker_cooldown_s,
        )

    def allow(self, target: str) -> bool:
        """Whether a request may go to this route now (closed; or the one half-open probe)."""
        with self._lock:
            route = self._routes.get(target)
            if route is None or route.state == CLOSED:
                return True
            now = self._clock()
            if route.state == OPEN:
                if now - route.opened_at < self.cooldown_s:
                    return False
                route.state = HALF_OPEN
                route.probe_at = None
            if route.probe_at is not None and now - route.probe_at < self.probe_timeout_s:
                return False
            route.probe_at = now
            return True

    def record(self, target: str, failure_class: str | None) -> None:
        """One outcome of a request sent to this route: None for a success, else its failure class."""
        failed = failure_class is not None
        if failed and not falls_back(failure_class):
            with self._lock:
                route = self._routes.get(target)
                if route is not None and route.state == HALF_OPEN:
                    route.probe_at = None  # no verdict: the next request probes
            return
        with self._lock:
            route = self._routes.setdefault(target, _Route())
            now = self._clock()
            if route.state == OPEN:
                return
            if route.state == HALF_OPEN:
                if failed:
                    self._open(route, now)
                else:
                    self._routes[target] = _Route()
                return
            route.outcomes.append((now, failed))
            route.failures += failed
            self._prune(route, now)
            attempts = len(route.outcomes)
            if (
                failed
                and attempts >= self.min_attempts
                and route.failures / attempts >= self.failure_share
            ):
                self._open(route, now)

    def state(self, target: str) -> dict:
        """The breaker as `GET /v1/models/{id}` shows it; `retry_in_s` only while open."""
        with self._lock:
            route = self._routes.get(target)
            if route is None:
                return _view(CLOSED, 0, 0, None)
            now = self._clock()
            self._prune(route, now)
            attempts, failures = len(route.outcomes), route.failures
            if route.state == OPEN:
                wait_s = route.opened_at + self.cooldown_s - now
                if wait_s > 0:
                    return _view(OPEN, attempts, failures, wait_s)
                return _view(HALF_OPEN, attempts, failures, None)  # the next request probes
            return _view(route.state, attempts, failures, None)

    def _open(self, route: _Route, now: float) -> None:
        route.state = OPEN
        route.opened_at = now
        route.probe_at = None

    def _prune(self, route: _Route, now: float) -> None:
        horizon = now - self.window_s
        outcomes = route.outcomes
        while outcomes and outcomes[0][0] <= horizon:
            _, failed = outcomes.popleft()
            route.failures -= failed


def _view(state: str, attempts: int, failures: int, retry_in_s: float | None) -> dict:
    return {
        "state": state,
        "window_attempts": attempts,
        "window_failures": failures,
        "retry_in_s": retry_in_s,
    }

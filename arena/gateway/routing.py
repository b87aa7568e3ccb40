"""The order a model's routes are tried in: a RoutePolicy over measured figures (pure).

MINIMAL placeholder of the CORE helper's worktree (the ROUTING helper's module replaces it at merge):
config order honouring policy.order and allow_fallbacks; no sorting by figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from arena.config import ModelConfig, Route, RoutePolicy, parse_policy
from arena.errors import ConfigError
from arena.gateway.replies import GatewayError


@dataclass(frozen=True)
class RouteFigures:
    attempts: int
    successes: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def success_rate(self) -> float | None:
        return None if self.attempts == 0 else self.successes / self.attempts

    @property
    def score_ms(self) -> float | None:
        rate = self.success_rate
        if self.p50_ms is None or not rate:
            return None
        return self.p50_ms / rate


RETRYABLE_FAILURES = frozenset(
    {
        "rate_limited",
        "server_error",
        "timeout",
        "network",
        "bad_response",
        "invalid_image",
        "empty_output",
        "auth",
    }
)


def falls_back(failure_class: str) -> bool:
    return failure_class in RETRYABLE_FAILURES


def request_policy(obj, model: ModelConfig, base: RoutePolicy) -> RoutePolicy:
    if obj is None:
        return base
    if not isinstance(obj, dict):
        raise GatewayError(
            400,
            "provider: must be an object",
            param="provider",
            code="invalid_provider_preferences",
        )
    merged = {
        "order": list(base.order),
        "sort": base.sort,
        "allow_fallbacks": base.allow_fallbacks,
        **({"max_p95_ms": base.max_p95_ms} if base.max_p95_ms is not None else {}),
        **obj,
    }
    try:
        return parse_policy(merged, "request", "provider", [r.provider for r in model.routes])
    except ConfigError as exc:
        raise GatewayError(
            400,
            f"{exc.field}: {exc.problem}",
            param=exc.field,
            code="invalid_provider_preferences",
        ) from None


def order_routes(
    routes: Sequence[Route], figures: Mapping[str, RouteFigures], policy: RoutePolicy
) -> list[Route]:
    by_name = {r.provider: r for r in routes}
    first = [by_name[name] for name in policy.order if name in by_name]
    ordered = first + [r for r in routes if r not in first]
    return ordered[:1] if not policy.allow_fallbacks else ordered

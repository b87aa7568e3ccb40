"""The order a model's routes are tried in: a RoutePolicy over each route's measured figures (pure).

Figures per route (model@provider) come from the non-warm-up attempts of the window (benchmark and
traffic alike, `[gateway] window_days`, default 30):

    attempts      every attempt sent; success rate = successes / attempts
    p50_ms/p95_ms generation time over successes (numpy's linear interpolation, as arena.stats)
    score_ms      success-weighted latency = p50_ms / success_rate

so a route that fails half the time counts twice as slow as its median: on average it takes
1 / success_rate tries to get an image from it. A route with no success has no score.

order_routes(routes, figures, policy):
  1. `max_p95_ms` drops every route measured (p95 known) slower than it; unmeasured ones stay.
  2. `order` names providers tried first, in that order.
  3. The rest by `sort`, each route placed in one of three tiers, tier by tier:
       scored      at least one success in the window (score_ms known)
       unmeasured  no attempt in the window
       failing     attempts but no success (known broken: behind the unknown ones)
     latency  scored by score_ms ascending;
     success  scored by success_rate descending, then score_ms ascending;
     price    by starting_price_usd ascending (unpriced last), ties by tier and score_ms:
              price is known without measuring, so it comes before the tiers.
     Remaining ties keep the config order (a stable sort over the routes as configured).
  4. `allow_fallbacks=False` keeps only the first.

Which failures fall back to the next route (RETRYABLE_FAILURES): the route's own trouble (rate
limited, server error, timeout, network, a reply or image it got wrong, its key refused). A refusal
(content policy) or a client error would fail the same way anywhere: never.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from arena.config import POLICY_KEYS, ModelConfig, Route, RoutePolicy, parse_policy
from arena.errors import ConfigError, Failure
from arena.gateway.replies import GatewayError

RETRYABLE_FAILURES: frozenset[str] = frozenset(
    {
        Failure.RATE_LIMITED.value,
        Failure.SERVER_ERROR.value,
        Failure.TIMEOUT.value,
        Failure.NETWORK.value,
        Failure.BAD_RESPONSE.value,
        Failure.INVALID_IMAGE.value,
        Failure.EMPTY_OUTPUT.value,
        Failure.AUTH.value,
    }
)

POLICY_CODE = "invalid_provider_preferences"


def falls_back(failure_class: str) -> bool:
    """Whether a failure of this class moves the request to the next route (refused, client_error: no)."""
    return failure_class in RETRYABLE_FAILURES


@dataclass(frozen=True)
class RouteFigures:
    """One route's measurements over the window: counts, and generation time over successes."""

    attempts: int
    successes: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.attempts if self.attempts else None

    @property
    def score_ms(self) -> float | None:
        """Success-weighted latency: p50_ms / success_rate (None unmeasured or with no success)."""
        rate = self.success_rate
        if not rate or self.p50_ms is None:
            return None
        return self.p50_ms / rate


UNMEASURED = RouteFigures(0, 0, None, None)
_SCORED, _UNMEASURED, _FAILING = 0, 1, 2


def _tier(figures: RouteFigures) -> int:
    if figures.score_ms is not None:
        return _SCORED
    return _FAILING if figures.attempts else _UNMEASURED


def _sort_key(sort: str, figures: RouteFigures, route: Route, index: int) -> tuple:
    tier = _tier(figures)
    score = figures.score_ms if tier == _SCORED else 0.0
    if sort == "price":
        price = route.starting_price_usd
        return (price is None, price or 0.0, tier, score, index)
    if sort == "success":
        rate = figures.success_rate if tier == _SCORED else 0.0
        return (tier, -rate, score, index)
    return (tier, score, index)


def order_routes(
    routes: Sequence[Route], figures: Mapping[str, RouteFigures], policy: RoutePolicy
) -> list[Route]:
    """The routes to try, in order (figures keyed by provider name); see the module docstring."""
    limit = policy.max_p95_ms
    kept = []
    seen = set()
    for route in routes:
        if route.provider in seen:  # a provider serves a model once; never try it twice
            continue
        seen.add(route.provider)
        p95 = figures.get(route.provider, UNMEASURED).p95_ms
        if limit is not None and p95 is not None and p95 > limit:
            continue
        kept.append(route)
    by_provider = {route.provider: route for route in kept}
    first = []
    for name in policy.order:
        route = by_provider.pop(name, None)
        if route is not None:
            first.append(route)
    rest = [
        (_sort_key(policy.sort, figures.get(r.provider, UNMEASURED), r, i), r)
        for i, r in enumerate(kept)
        if r.provider in by_provider
    ]
    rest.sort(key=lambda pair: pair[0])
    ordered = first + [route for _, route in rest]
    return ordered if policy.allow_fallbacks else ordered[:1]


def request_policy(obj, model: ModelConfig, base: RoutePolicy) -> RoutePolicy:
    """The request's `provider` object (OpenRouter's shape) laid over `base`; None keeps `base`.

    Only the fields given replace base's; a field given as null takes RoutePolicy's default (no
    order, sort by latency, no p95 limit, fallbacks allowed). Checked by config's parse_policy, so
    a request is held to the same rules as [gateway.models.NAME]; a bad field is a 400 naming it.
    """
    if obj is None:
        return base
    providers = [route.provider for route in model.routes]
    if isinstance(obj, dict):
        given = {key: value for key, value in obj.items() if value is not None}
    else:
        given = obj  # parse_policy names what is wrong with it
    try:
        parsed = parse_policy(given, "request", "provider", providers)
    except ConfigError as exc:
        field = exc.field or "provider"
        raise GatewayError(400, f"{field}: {exc.problem}", param=field, code=POLICY_CODE) from None
    defaults = RoutePolicy()
    changes = {
        key: getattr(parsed, key) if value is not None else getattr(defaults, key)
        for key, value in obj.items()
        if key in POLICY_KEYS
    }
    return replace(base, **changes)


def figures_from_frame(frame) -> dict[tuple[str, str], RouteFigures]:
    """RouteFigures per (model, provider) from attempts (columns model, provider, ok, generation_ms).

    The rows are taken as given (the reader leaves out warm-ups; a `warmup` column, if present, is
    honoured too). Percentiles are numpy's linear interpolation over successes with a time, the
    definition arena.stats.provider_table uses (a test holds the two equal).
    """
    if frame is None or len(frame) == 0:
        return {}
    if "warmup" in frame:
        frame = frame[~frame["warmup"].astype(bool)]
    ok = frame["ok"].astype(bool).to_numpy()
    times = frame["generation_ms"].to_numpy(dtype=float, na_value=np.nan)
    out = {}
    groups = frame.groupby(["model", "provider"], sort=True, observed=True).indices
    for (model, provider), at in groups.items():
        good = times[at[ok[at]]]
        timed = good[~np.isnan(good)]
        out[(str(model), str(provider))] = RouteFigures(
            attempts=len(at),
            successes=int(ok[at].sum()),
            p50_ms=float(np.percentile(timed, 50)) if len(timed) else None,
            p95_ms=float(np.percentile(timed, 95)) if len(timed) else None,
        )
    return out

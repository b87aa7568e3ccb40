"""Route order: success-weighted latency, the policy's order, sorts, tiers, p95 limit, fallbacks;
the request's `provider` object checked into a RoutePolicy; figures from an attempts frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.config import ModelConfig, Route, RoutePolicy
from arena.errors import FAILURE_CLASSES
from arena.gateway.replies import GatewayError
from arena.gateway.routing import (
    RETRYABLE_FAILURES,
    RouteFigures,
    falls_back,
    figures_from_frame,
    order_routes,
    request_policy,
)
from arena.stats import provider_table

NAMES = ["fal", "replicate", "openai", "together", "local", "azure"]


def _route(provider, price=None):
    return Route(model="m", provider=provider, model_id=f"{provider}-m", price_usd=price)


def _model(*providers):
    return ModelConfig(
        name="m", tasks=("text-to-image",), routes=tuple(_route(p) for p in providers)
    )


def _names(routes):
    return [r.provider for r in routes]


# --- the score -------------------------------------------------------------------------------


def test_a_route_failing_half_the_time_counts_twice_as_slow():
    flaky = RouteFigures(attempts=10, successes=5, p50_ms=1000.0, p95_ms=1200.0)
    steady = RouteFigures(attempts=10, successes=10, p50_ms=1500.0, p95_ms=1600.0)
    assert flaky.success_rate == 0.5
    assert flaky.score_ms == 2000.0
    assert steady.score_ms == 1500.0
    routes = [_route("fal"), _route("replicate")]
    order = order_routes(routes, {"fal": flaky, "replicate": steady}, RoutePolicy())
    assert _names(order) == ["replicate", "fal"]  # faster median, but slower once failures count


def test_unmeasured_and_unsuccessful_routes_have_no_score():
    assert RouteFigures(0, 0, None, None).success_rate is None
    assert RouteFigures(0, 0, None, None).score_ms is None
    assert RouteFigures(4, 0, None, None).success_rate == 0.0
    assert RouteFigures(4, 0, None, None).score_ms is None


def test_scored_routes_then_unmeasured_then_failing_ties_in_config_order():
    routes = [_route(n) for n in ["failing", "new1", "slow", "fast", "new2", "twin"]]
    figures = {
        "failing": RouteFigures(8, 0, None, None),
        "slow": RouteFigures(4, 4, 900.0, 1000.0),
        "fast": RouteFigures(4, 4, 300.0, 400.0),
        "twin": RouteFigures(2, 2, 300.0, 300.0),  # the same score as fast: config order decides
    }
    assert _names(order_routes(routes, figures, RoutePolicy())) == [
        "fast",
        "twin",
        "slow",
        "new1",
        "new2",
        "failing",
    ]


def test_order_comes_first_then_the_rest_sorted():
    routes = [_route(n) for n in ["a", "b", "c", "d"]]
    figures = {
        n: RouteFigures(1, 1, ms, ms)
        for n, ms in zip("abcd", [400.0, 300.0, 200.0, 100.0], strict=True)
    }
    policy = RoutePolicy(order=("b", "a", "b"))  # a name given twice is tried once
    assert _names(order_routes(routes, figures, policy)) == ["b", "a", "d", "c"]


def test_sort_by_price_puts_unpriced_last_and_measured_before_unmeasured_at_one_price():
    routes = [
        _route("dear", 0.08),
        _route("free", None),
        _route("cheap_new", 0.02),
        _route("cheap_slow", 0.02),
        _route("cheap_fast", 0.02),
    ]
    figures = {
        "cheap_slow": RouteFigures(2, 2, 900.0, 900.0),
        "cheap_fast": RouteFigures(2, 2, 100.0, 100.0),
    }
    order = order_routes(routes, figures, RoutePolicy(sort="price"))
    assert _names(order) == ["cheap_fast", "cheap_slow", "cheap_new", "dear", "free"]


def test_sort_by_success_then_by_score():
    routes = [_route(n) for n in ["half", "all_slow", "all_fast", "none"]]
    figures = {
        "half": RouteFigures(4, 2, 10.0, 10.0),
        "all_slow": RouteFigures(4, 4, 900.0, 900.0),
        "all_fast": RouteFigures(4, 4, 100.0, 100.0),
        "none": RouteFigures(4, 0, None, None),
    }
    order = order_routes(routes, figures, RoutePolicy(sort="success"))
    assert _names(order) == ["all_fast", "all_slow", "half", "none"]


def test_max_p95_drops_measured_routes_over_it_even_when_named_in_order():
    routes = [_route(n) for n in ["slow", "ok", "new"]]
    figures = {"slow": RouteFigures(3, 3, 100.0, 5000.0), "ok": RouteFigures(3, 3, 900.0, 1000.0)}
    policy = RoutePolicy(order=("slow",), max_p95_ms=1000.0)  # at the limit is kept
    assert _names(order_routes(routes, figures, policy)) == ["ok", "new"]


def test_no_fallbacks_tries_the_first_route_only():
    routes = [_route(n) for n in ["a", "b"]]
    assert _names(order_routes(routes, {}, RoutePolicy(allow_fallbacks=False))) == ["a"]
    assert _names(order_routes(routes, {}, RoutePolicy(order=("b",), allow_fallbacks=False))) == [
        "b"
    ]
    assert order_routes([], {}, RoutePolicy(allow_fallbacks=False)) == []


def test_the_fallback_classes():
    assert set(RETRYABLE_FAILURES) == {
        "rate_limited",
        "server_error",
        "timeout",
        "network",
        "bad_response",
        "invalid_image",
        "empty_output",
        "auth",
    }
    assert not falls_back("refused")
    assert not falls_back("client_error")
    assert set(FAILURE_CLASSES) == RETRYABLE_FAILURES | {"refused", "client_error"}
    assert all(falls_back(c) for c in RETRYABLE_FAILURES)


# --- properties of order_routes ----------------------------------------------------------------

_figures = st.one_of(
    st.just(RouteFigures(0, 0, None, None)),
    st.integers(1, 50).map(lambda n: RouteFigures(n, 0, None, None)),
    st.tuples(
        st.integers(1, 50),
        st.integers(0, 50),
        st.floats(1, 10_000, allow_nan=False),
        st.floats(0, 5_000, allow_nan=False),
    ).map(lambda t: RouteFigures(t[0], max(1, min(t[1], t[0])), t[2], t[2] + t[3])),
)


@st.composite
def _cases(draw):
    providers = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    prices = st.one_of(st.none(), st.sampled_from([0.01, 0.02, 0.04, 0.08]))
    routes = [_route(p, draw(prices)) for p in providers]
    if providers and draw(st.booleans()):
        routes.append(routes[0])  # a route given twice is tried once
    measured = draw(st.lists(st.sampled_from(NAMES), unique=True))
    figures = {p: draw(_figures) for p in measured}
    policy = RoutePolicy(
        order=tuple(draw(st.lists(st.sampled_from(NAMES), max_size=4))),
        sort=draw(st.sampled_from(["latency", "price", "success"])),
        max_p95_ms=draw(st.one_of(st.none(), st.floats(1, 20_000, allow_nan=False))),
        allow_fallbacks=draw(st.booleans()),
    )
    return routes, figures, policy


def _named_first(order, routes, policy):
    """How many leading routes are the policy's order; checks they follow it."""
    present = {r.provider for r in order}
    wanted = list(dict.fromkeys(p for p in policy.order if p in present))
    assert _names(order[: len(wanted)]) == wanted
    return len(wanted)


@settings(max_examples=400, deadline=None)
@given(_cases())
def test_order_routes_properties(case):
    routes, figures, policy = case
    order = order_routes(routes, figures, policy)
    assert order == order_routes(list(routes), dict(reversed(figures.items())), policy)
    assert all(r in routes for r in order)
    assert len(set(_names(order))) == len(order)
    limit = policy.max_p95_ms
    for route in order:
        p95 = figures.get(route.provider, RouteFigures(0, 0, None, None)).p95_ms
        assert limit is None or p95 is None or p95 <= limit
    full = order_routes(routes, figures, RoutePolicy(**{**vars(policy), "allow_fallbacks": True}))
    if not policy.allow_fallbacks:
        assert order == full[:1]
        return
    # nothing dropped but routes over max_p95_ms
    kept = {
        r.provider
        for r in routes
        if limit is None
        or (figures.get(r.provider) is None or figures[r.provider].p95_ms is None)
        or figures[r.provider].p95_ms <= limit
    }
    assert set(_names(order)) == kept
    rest = order[_named_first(order, routes, policy) :]
    if policy.sort == "price":
        prices = [r.starting_price_usd for r in rest]
        priced = [p for p in prices if p is not None]
        assert prices[: len(priced)] == priced == sorted(priced)
        return
    tiers = []
    for route in rest:
        f = figures.get(route.provider, RouteFigures(0, 0, None, None))
        tiers.append(0 if f.score_ms is not None else (2 if f.attempts else 1))
    assert tiers == sorted(tiers)  # measured with a success, then unmeasured, then failing
    scored = [figures[r.provider] for r, t in zip(rest, tiers, strict=True) if t == 0]
    if policy.sort == "latency":
        scores = [f.score_ms for f in scored]
        assert scores == sorted(scores)
    else:
        rates = [f.success_rate for f in scored]
        assert rates == sorted(rates, reverse=True)


# --- the request's provider object -------------------------------------------------------------

BASE = RoutePolicy(order=("fal",), sort="price", max_p95_ms=5000.0, allow_fallbacks=True)


def test_no_provider_object_keeps_the_base():
    assert request_policy(None, _model("fal", "openai"), BASE) is BASE


def test_given_fields_replace_the_base_and_the_rest_stay():
    model = _model("fal", "openai", "local")
    assert request_policy({"sort": "success"}, model, BASE) == RoutePolicy(
        ("fal",), "success", 5000.0, True
    )
    assert request_policy(
        {"order": ["local", "openai"], "max_p95_ms": 800, "allow_fallbacks": False}, model, BASE
    ) == RoutePolicy(("local", "openai"), "price", 800.0, False)
    assert request_policy({}, model, BASE) == BASE


def test_a_null_field_takes_the_default():
    model = _model("fal", "openai")
    policy = request_policy({"order": None, "sort": None, "max_p95_ms": None}, model, BASE)
    assert policy == RoutePolicy((), "latency", None, True)
    assert request_policy({"allow_fallbacks": None}, model, BASE).allow_fallbacks is True


@pytest.mark.parametrize(
    ("obj", "param", "words"),
    [
        ({"order": ["fal", "nope"]}, "provider.order", "'nope' does not serve this model"),
        ({"order": "fal"}, "provider.order", "must be a list of provider names"),
        ({"order": ["fal", 3]}, "provider.order", "must be a list of provider names"),
        ({"sort": "throughput"}, "provider.sort", "must be one of latency, price, success"),
        ({"sort": 1}, "provider.sort", "must be a string"),
        ({"max_p95_ms": 0}, "provider.max_p95_ms", "must be positive"),
        ({"max_p95_ms": -5.5}, "provider.max_p95_ms", "must be positive"),
        ({"max_p95_ms": "900"}, "provider.max_p95_ms", "must be a number"),
        ({"max_p95_ms": True}, "provider.max_p95_ms", "must be a number"),
        ({"max_p95_ms": math.inf}, "provider.max_p95_ms", "must be a finite number"),
        ({"allow_fallbacks": "no"}, "provider.allow_fallbacks", "must be true or false"),
        ({"allow_fallbacks": 0}, "provider.allow_fallbacks", "must be true or false"),
        ({"only": ["fal"]}, "provider.only", "unknown setting"),
        ({"sort": "price", "ignore": ["x"]}, "provider.ignore", "unknown setting"),
        (["fal"], "provider", "must be a table (an object)"),
        ("fal", "provider", "must be a table (an object)"),
    ],
)
def test_a_bad_provider_object_is_a_400_naming_the_field(obj, param, words):
    with pytest.raises(GatewayError) as caught:
        request_policy(obj, _model("fal", "openai"), BASE)
    error = caught.value
    assert (error.status, error.param, error.code) == (400, param, "invalid_provider_preferences")
    assert words in error.message
    assert error.message.startswith(f"{param}: ")
    assert "\n" not in error.message
    assert error.body()["error"]["type"] == "invalid_request_error"


def test_an_unknown_provider_is_named_with_the_models_providers():
    with pytest.raises(GatewayError) as caught:
        request_policy({"order": ["nope"]}, _model("fal", "openai"), RoutePolicy())
    assert "'nope'" in caught.value.message and "fal, openai" in caught.value.message


# --- figures from a frame ----------------------------------------------------------------------


def test_figures_from_a_frame_count_every_attempt_and_time_successes():
    frame = pd.DataFrame(
        {
            "model": ["m", "m", "m", "m", "n"],
            "provider": ["a", "a", "a", "b", "a"],
            "ok": [True, True, False, False, True],
            "generation_ms": [100.0, 300.0, None, None, 50.0],
            "warmup": [False, False, False, False, True],
        }
    )
    figures = figures_from_frame(frame)
    assert figures == {
        ("m", "a"): RouteFigures(3, 2, 200.0, 290.0),
        ("m", "b"): RouteFigures(1, 0, None, None),
    }
    assert figures_from_frame(frame.iloc[:0]) == {}


_rows = st.lists(
    st.tuples(
        st.sampled_from(["m", "n"]),
        st.sampled_from(["a", "b", "c"]),
        st.booleans(),
        st.floats(1, 100_000, allow_nan=False),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(_rows)
def test_figures_agree_with_the_stats_table(rows):
    frame = pd.DataFrame(
        [(m, p, ok, ms if ok else None, None if ok else "timeout") for m, p, ok, ms in rows],
        columns=["model", "provider", "ok", "generation_ms", "failure_class"],
    )
    frame["warmup"] = False
    frame["ttfb_ms"] = frame["download_ms"] = frame["cost_usd"] = np.nan
    figures = figures_from_frame(frame)
    table = provider_table(frame)
    assert len(figures) == len(table)
    for row in table.to_dict(orient="records"):
        f = figures[(row["model"], row["provider"])]
        assert (f.attempts, f.successes) == (row["n"], row["successes"])
        for ours, theirs in ((f.p50_ms, row["p50_ms"]), (f.p95_ms, row["p95_ms"])):
            if ours is None:
                assert theirs is None or np.isnan(theirs)
            else:
                assert ours == pytest.approx(theirs)

"""Forwarding through loopback upstreams (tests/faultserver.py, behaviour by model id): a retryable
failure of the first route falls back to the second and both attempts are stored; a refusal, a
client error and a pinned route do not fall back; all routes down is 503 all_providers_exhausted;
the app asks the Breakers it is given before each route and tells it every outcome."""

from __future__ import annotations

import httpx
import pytest

from arena.gateway.breaker import Breakers

from .kit import (
    FixedFigures,
    gateway_settings,
    make_key,
    running_gateway,
    traffic_rows,
)


@pytest.fixture
def two_routes(tmp_path, db_url, fault_server):
    """Model "m" on providers first and second (both the fault server; the model id picks the
    behaviour): build(first_id, second_id) -> settings."""

    def build(first: str, second: str = "ok", **gateway):
        return gateway_settings(
            tmp_path,
            db_url,
            providers={
                "first": {
                    "protocol": "openai",
                    "base_url": fault_server.base_url,
                    "timeout_s": 0.5,
                },
                "second": {"protocol": "openai", "base_url": fault_server.base_url},
            },
            models={"m": {"routes": {"first": first, "second": second}}},
            gateway=gateway or None,
        )

    return build


def generate(url: str, key: str, model: str = "m", **body) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/images/generations",
        json={"model": model, "prompt": "a lighthouse", **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("first", "failure_class"),
    [("server-error", "server_error"), ("always-429", "rate_limited"), ("hang", "timeout")],
)
def test_a_retryable_failure_falls_back_and_both_attempts_are_stored(
    two_routes, fault_server, first, failure_class
):
    settings = two_routes(first)
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        reply = generate(url, key)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-arena-provider"] == "second"
    metadata = reply.json()["metadata"]
    assert metadata["provider"] == "second" and metadata["model_id"] == "ok"
    assert [(a["provider"], a["failure_class"]) for a in metadata["attempts"]] == [
        ("first", failure_class),
        ("second", None),
    ]
    assert fault_server.requests[first] == 1 and fault_server.requests["ok"] == 1
    rows = traffic_rows(settings)  # the gateway's shutdown flushed its writer
    assert [(r["provider"], r["failure_class"], r["ok"]) for r in rows] == [
        ("first", failure_class, False),
        ("second", None, True),
    ]
    assert {r["source"] for r in rows} == {"traffic"}
    assert {r["gateway_request_id"] for r in rows} == {reply.headers["x-arena-request-id"]}
    assert [r["attempt"] for r in rows] == [1, 2]
    assert rows[0]["generation_ms"] is None and rows[1]["generation_ms"] > 0


def test_a_refusal_does_not_fall_back(two_routes, fault_server):
    settings = two_routes("refuse")
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        reply = generate(url, key)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "content_policy_violation" and error["type"] == "invalid_request_error"
    assert "safety system" in error["message"]
    assert [a["provider"] for a in error["attempts"]] == ["first"]
    assert "ok" not in fault_server.requests
    assert [r["failure_class"] for r in traffic_rows(settings)] == ["refused"]


def test_a_client_error_does_not_fall_back(two_routes, fault_server):
    settings = two_routes("no-such-upstream-model")  # the fault server answers 404
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        reply = generate(url, key)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "provider_rejected_request" and "first" in error["message"]
    assert "ok" not in fault_server.requests


def test_a_pinned_route_never_falls_back(two_routes, fault_server):
    settings = two_routes("server-error")
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        reply = generate(url, key, model="first/m")
        pinned_ok = generate(url, key, model="second/m")
        unknown = generate(url, key, model="third/m")
    assert reply.status_code == 503
    error = reply.json()["error"]
    assert error["code"] == "all_providers_exhausted"
    assert [(a["provider"], a["failure_class"]) for a in error["attempts"]] == [
        ("first", "server_error")
    ]
    assert pinned_ok.status_code == 200 and pinned_ok.json()["metadata"]["provider"] == "second"
    assert fault_server.requests == {"server-error": 1, "ok": 1}
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_all_routes_down_is_503_with_every_attempt(two_routes):
    settings = two_routes("server-error", "always-429")
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        reply = generate(url, key)
    assert reply.status_code == 503
    error = reply.json()["error"]
    assert error["type"] == "service_unavailable" and error["code"] == "all_providers_exhausted"
    assert [(a["provider"], a["failure_class"]) for a in error["attempts"]] == [
        ("first", "server_error"),
        ("second", "rate_limited"),
    ]
    assert reply.headers["x-arena-request-id"].startswith("req_")
    assert len(traffic_rows(settings)) == 2


def test_the_request_policy_orders_and_forbids_fallbacks(two_routes, fault_server):
    settings = two_routes("server-error")
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        first_second = generate(url, key, provider={"order": ["second"]})
        no_fallback = generate(url, key, provider={"allow_fallbacks": False})
        bad = generate(url, key, provider={"order": ["nowhere"]})
    attempts = first_second.json()["metadata"]["attempts"]
    assert [(a["provider"], a["failure_class"]) for a in attempts] == [("second", None)]
    assert no_fallback.status_code == 503
    assert len(no_fallback.json()["error"]["attempts"]) == 1
    assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("provider")


class RecordingBreakers(Breakers):
    """Breakers whose open routes the test names, remembering what the app asked and told."""

    def __init__(self, open_targets: set[str]) -> None:
        super().__init__(0.5, 5, 60.0, 30.0)
        self.open_targets = open_targets
        self.asked: list[str] = []
        self.recorded: list[tuple[str, str | None]] = []

    def allow(self, target: str) -> bool:
        self.asked.append(target)
        return target not in self.open_targets

    def record(self, target: str, failure_class: str | None) -> None:
        self.recorded.append((target, failure_class))

    def state(self, target: str) -> dict:
        opened = target in self.open_targets
        return {
            "state": "open" if opened else "closed",
            "window_attempts": 0,
            "window_failures": 0,
            "retry_in_s": 10.0 if opened else None,
        }


def test_the_app_consults_the_breakers_it_is_given(two_routes, fault_server):
    settings = two_routes("server-error")
    key = make_key(settings)
    breakers = RecordingBreakers({"m@first"})
    with running_gateway(settings, breakers=breakers) as (url, _):
        reply = generate(url, key)
        model = httpx.get(f"{url}/v1/models/m", timeout=30).json()
        breakers.open_targets = {"m@first", "m@second"}
        closed = generate(url, key)
    assert reply.status_code == 200 and reply.json()["metadata"]["provider"] == "second"
    assert "server-error" not in fault_server.requests  # the open route was never called
    assert breakers.asked[:2] == ["m@first", "m@second"]
    assert breakers.recorded == [("m@second", None)]
    states = {r["provider"]: r["breaker"]["state"] for r in model["routes"]}
    assert states == {"first": "open", "second": "closed"}
    assert closed.status_code == 503
    error = closed.json()["error"]
    assert error["code"] == "all_providers_exhausted" and error["skipped"] == ["first", "second"]
    assert "circuit open" in error["message"]


def test_failures_are_told_to_the_breakers(two_routes):
    settings = two_routes("server-error")
    key = make_key(settings)
    breakers = RecordingBreakers(set())
    with running_gateway(settings, breakers=breakers) as (url, _):
        generate(url, key)
    assert breakers.recorded == [("m@first", "server_error"), ("m@second", None)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_route_opens_its_breaker_is_skipped_half_opens_and_closes(
    two_routes, fault_server
):
    """The real breakers on a clock the test moves: two failures open the first route's breaker,
    the next request skips it, and after the cooldown one probe finds it recovered and closes it."""
    settings = two_routes("switch")
    key = make_key(settings)
    clock = FakeClock()
    breakers = Breakers(failure_share=0.5, min_attempts=2, window_s=60, cooldown_s=30, clock=clock)
    fault_server.switch_failing.set()

    def first_state(url: str) -> dict:
        model = httpx.get(f"{url}/v1/models/m", timeout=30).json()
        return next(r["breaker"] for r in model["routes"] if r["provider"] == "first")

    # unmeasured routes in config order throughout: the store's figures are not read mid-test
    figures = FixedFigures({})
    with running_gateway(settings, breakers=breakers, figures=figures) as (url, _):
        for _ in range(2):
            reply = generate(url, key)
            assert reply.json()["metadata"]["provider"] == "second"  # each fell back
        assert fault_server.requests["switch"] == 2
        state = first_state(url)
        assert state["state"] == "open" and state["window_failures"] == 2
        assert 0 < state["retry_in_s"] <= 30

        skipped = generate(url, key)  # open: the first route is not even asked
        assert [a["provider"] for a in skipped.json()["metadata"]["attempts"]] == ["second"]
        assert fault_server.requests["switch"] == 2

        clock.now += 31  # the cooldown passed; the provider recovered
        fault_server.switch_failing.clear()
        assert first_state(url)["state"] == "half_open"
        probe = generate(url, key)
        assert probe.json()["metadata"]["provider"] == "first"  # the probe went through
        assert fault_server.requests["switch"] == 3
        assert first_state(url)["state"] == "closed"
        assert generate(url, key).json()["metadata"]["provider"] == "first"

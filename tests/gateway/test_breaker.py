"""The circuit breaker per route on a fake clock: opens, skips, half-opens with one probe, closes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.config import GatewaySettings
from arena.gateway.breaker import Breakers

T = "m@p"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def _breakers(clock, **kwargs):
    values = {"failure_share": 0.5, "min_attempts": 4, "window_s": 60.0, "cooldown_s": 30.0}
    return Breakers(**{**values, **kwargs}, clock=clock)


def _record(breakers, *outcomes):
    for outcome in outcomes:
        breakers.record(T, outcome)


def _open(breakers):
    _record(breakers, *["server_error"] * 4)
    assert breakers.state(T)["state"] == "open"


def test_an_unknown_route_is_closed():
    breakers = _breakers(FakeClock())
    assert breakers.allow(T)
    assert breakers.state(T) == {
        "state": "closed",
        "window_attempts": 0,
        "window_failures": 0,
        "retry_in_s": None,
    }


def test_opens_at_the_failure_share_over_the_minimum_count(clock):
    breakers = _breakers(clock)
    _record(breakers, "timeout", "rate_limited", "network")  # 3 of 3 failed, below 4 attempts
    assert breakers.allow(T) and breakers.state(T)["state"] == "closed"
    _record(breakers, None)  # 3 of 4 failed, but a success does not open it
    assert breakers.state(T)["state"] == "closed"
    _record(breakers, "auth")
    assert breakers.state(T) == {
        "state": "open",
        "window_attempts": 5,
        "window_failures": 4,
        "retry_in_s": 30.0,
    }
    assert not breakers.allow(T)
    assert breakers.allow("m@other")  # each route has its own


def test_below_the_share_it_stays_closed(clock):
    breakers = _breakers(clock, failure_share=0.5)
    _record(breakers, None, None, None, "server_error", "server_error")  # 2 of 5
    assert breakers.state(T)["state"] == "closed"
    _record(breakers, "server_error")  # 3 of 6: at the share
    assert breakers.state(T)["state"] == "open"


def test_failures_leave_the_window_after_window_s(clock):
    breakers = _breakers(clock)
    _record(breakers, "server_error", "server_error", "server_error")
    clock.now += 60.0
    assert breakers.state(T)["window_attempts"] == 0
    _record(breakers, "server_error")
    assert breakers.state(T) | {"retry_in_s": None} == {
        "state": "closed",
        "window_attempts": 1,
        "window_failures": 1,
        "retry_in_s": None,
    }


def test_refusals_and_client_errors_count_as_neither(clock):
    breakers = _breakers(clock)
    _record(breakers, *["refused", "client_error"] * 10)
    assert breakers.state(T)["window_attempts"] == 0
    _record(breakers, "server_error", "refused", "server_error", "client_error", "server_error")
    assert breakers.state(T)["state"] == "closed"  # 3 counted attempts: under the minimum
    _record(breakers, "server_error")
    assert breakers.state(T)["state"] == "open"


def test_half_open_after_the_cooldown_lets_one_probe_through_and_a_success_closes(clock):
    breakers = _breakers(clock)
    _open(breakers)
    clock.now += 29.9
    assert not breakers.allow(T)
    assert breakers.state(T)["retry_in_s"] == pytest.approx(0.1)
    clock.now += 0.1
    assert breakers.state(T)["state"] == "half_open"
    assert breakers.allow(T)  # the probe
    assert not breakers.allow(T)  # a concurrent caller
    assert not breakers.allow(T)
    assert breakers.state(T) == {
        "state": "half_open",
        "window_attempts": 4,
        "window_failures": 4,
        "retry_in_s": None,
    }
    breakers.record(T, None)
    assert breakers.state(T) == {
        "state": "closed",
        "window_attempts": 0,
        "window_failures": 0,
        "retry_in_s": None,
    }
    assert breakers.allow(T) and breakers.allow(T)
    _record(breakers, "server_error", "server_error", "server_error")
    assert breakers.state(T)["state"] == "closed"  # the window started again from nothing


def test_a_failed_probe_reopens_for_another_cooldown(clock):
    breakers = _breakers(clock)
    _open(breakers)
    clock.now += 30.0
    assert breakers.allow(T)
    clock.now += 5.0
    breakers.record(T, "timeout")
    assert breakers.state(T)["state"] == "open"
    assert breakers.state(T)["retry_in_s"] == 30.0
    assert not breakers.allow(T)
    clock.now += 30.0
    assert breakers.allow(T)
    assert not breakers.allow(T)


def test_a_probe_ending_in_a_refusal_gives_no_verdict(clock):
    breakers = _breakers(clock)
    _open(breakers)
    clock.now += 30.0
    assert breakers.allow(T)
    breakers.record(T, "refused")
    assert breakers.state(T)["state"] == "half_open"
    assert breakers.allow(T)  # the next request probes
    assert not breakers.allow(T)


def test_outcomes_reported_while_open_are_ignored(clock):
    breakers = _breakers(clock)
    _open(breakers)
    _record(breakers, None, None, None)  # requests let through before it opened, finishing late
    assert breakers.state(T)["state"] == "open"
    assert not breakers.allow(T)


def test_a_probe_that_never_reports_is_written_off(clock):
    breakers = _breakers(clock, probe_timeout_s=120.0)
    _open(breakers)
    clock.now += 30.0
    assert breakers.allow(T)  # this request is cancelled and never records
    clock.now += 119.0
    assert not breakers.allow(T)
    clock.now += 1.0
    assert breakers.allow(T)
    assert not breakers.allow(T)


def test_from_settings_and_checks():
    gateway = GatewaySettings(
        breaker_failure_share=0.25,
        breaker_min_attempts=2,
        breaker_window_s=10.0,
        breaker_cooldown_s=5.0,
    )
    breakers = Breakers.from_settings(gateway)
    assert (breakers.failure_share, breakers.min_attempts) == (0.25, 2)
    assert (breakers.window_s, breakers.cooldown_s) == (10.0, 5.0)
    _record(breakers, None, None, "server_error")  # 1 of 3 over 0.25
    assert breakers.state(T)["state"] == "open"
    with pytest.raises(ValueError, match="failure_share"):
        Breakers(0, 1, 1.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        Breakers(0.5, 0, 1.0, 1.0)


_ops = st.lists(
    st.one_of(
        st.just(("allow",)),
        st.tuples(
            st.just("record"),
            st.sampled_from([None, None, "server_error", "timeout", "refused", "client_error"]),
        ),
        st.tuples(st.just("tick"), st.floats(0, 40, allow_nan=False)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=_ops,
    min_attempts=st.integers(1, 6),
    share=st.sampled_from([0.2, 0.5, 0.75, 1.0]),
)
def test_the_state_machine_never_lets_two_probes_out_nor_opens_below_the_minimum(
    ops, min_attempts, share
):
    clock = FakeClock()
    breakers = Breakers(share, min_attempts, 60.0, 30.0, clock, probe_timeout_s=1e9)
    probes_out = 0
    for op in ops:
        before = breakers.state(T)
        if op[0] == "tick":
            clock.now += op[1]
        elif op[0] == "allow":
            allowed = breakers.allow(T)
            if before["state"] == "closed":
                assert allowed
            elif before["state"] == "open":
                assert not allowed
            else:  # half-open: one probe at a time
                assert allowed == (probes_out == 0)
                probes_out += allowed
            assert probes_out <= 1
        else:
            breakers.record(T, op[1])
            after = breakers.state(T)
            if before["state"] == "closed" and after["state"] != "closed":
                assert op[1] in ("server_error", "timeout")
                attempts = before["window_attempts"] + 1
                assert attempts >= min_attempts
                assert (before["window_failures"] + 1) / attempts >= share
            if before["state"] == "half_open":
                probes_out = 0
            if after["state"] == "closed" and before["state"] != "closed":
                assert after["window_attempts"] == 0

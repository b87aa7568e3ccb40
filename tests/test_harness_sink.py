"""The harness and a sink that cannot save: nothing new is sent while it fails; when it gives up the
run stops, and what was in flight still reaches it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from support.local import StampedLocalProvider, write_local_config

from arena.challenges import load_challenges
from arena.config import load_settings
from arena.harness import Harness, plan_jobs
from arena.providers import protocol_facts

pytestmark = pytest.mark.slow  # a loopback server and seconds of outage

# A request that passed the sink's check just before it started failing may reach the server a
# moment later; anything later than this was sent while the sink was known to be failing.
IN_FLIGHT_GRACE_S = 0.3


class FlakySink:
    """Fails at its `fail_at`-th result for `outage_s` (from a timer thread, as the writer's thread
    would), then is healthy again or, with then="failed", gives up."""

    def __init__(self, fail_at: int, outage_s: float, then: str = "healthy") -> None:
        self.fail_at, self.outage_s, self.then = fail_at, outage_s, then
        self.health = "healthy"
        self.results = []
        self.window: tuple[float, float] | None = None
        self._listeners = []

    def watch_health(self, listener):
        self._listeners.append(listener)
        listener(self.health)
        return lambda: self._listeners.remove(listener)

    def _set(self, health: str) -> None:
        self.health = health
        for listener in list(self._listeners):
            listener(health)

    def submit(self, attempt, image, info, final) -> None:
        self.results.append(attempt)
        if len(self.results) == self.fail_at:
            start = time.time()
            self._set("failing")

            def later() -> None:
                self.window = (start, time.time())
                self._set(self.then)

            threading.Timer(self.outage_s, later).start()


def _execute(tmp_path, local, sink, samples):
    cfg = write_local_config(
        tmp_path,
        base_url=local.base_url,
        db_url=f"sqlite:///{tmp_path / 'unused.db'}",
        data_dir=tmp_path / "data",
        challenges=2,
        samples=samples,
        rate=50.0,
        max_concurrency=4,
    )
    settings = load_settings(cfg, protocols=protocol_facts())
    challenges = load_challenges(settings.challenges_dir)
    jobs = plan_jobs(settings, challenges)
    for number, job in enumerate(jobs, start=1):
        job.id = number
    harness = Harness(settings, {c.slug: c for c in challenges}, sink)
    return jobs, asyncio.run(harness.execute("r1", jobs))


def _sent_while_failing(local, window) -> list[float]:
    start, end = window
    return [t for t in local.arrivals if start + IN_FLIGHT_GRACE_S < t < end]


def test_no_request_is_sent_while_the_sink_fails_and_every_job_is_done_once_it_is_back(tmp_path):
    with StampedLocalProvider(delay_s=0.05) as local:
        sink = FlakySink(fail_at=6, outage_s=1.5)
        jobs, outcome = _execute(tmp_path, local, sink, samples=30)
    assert sink.window is not None and sink.window[1] - sink.window[0] >= 1.5
    assert _sent_while_failing(local, sink.window) == []
    assert sorted(a.job_id for a in sink.results) == [j.id for j in jobs]
    assert local.replies == len(jobs) and outcome.succeeded == len(jobs)
    assert not outcome.store_failed


def test_a_sink_that_gives_up_stops_the_run_and_still_gets_what_was_in_flight(tmp_path):
    with StampedLocalProvider(delay_s=0.2) as local:
        sink = FlakySink(fail_at=6, outage_s=0.5, then="failed")
        jobs, outcome = _execute(tmp_path, local, sink, samples=10)
        replies = local.replies
    assert outcome.store_failed and not outcome.budget_stopped
    assert [t for t in local.arrivals if t > sink.window[0] + IN_FLIGHT_GRACE_S] == []
    # Every request the server answered (paid for) reached the sink; the rest were never sent.
    assert len(sink.results) == replies == len(local.arrivals) < len(jobs)

"""QueuedAdapter's phase timing and cancel rules, on a toy protocol served by a function fake."""

from __future__ import annotations

import asyncio
import base64
import time

import httpx
import pytest

from arena.config import ProviderConfig
from arena.errors import ProviderError
from arena.providers.base import ImageRequest, ProviderReply, Stopwatch
from arena.providers.queued import Job, Phase, QueuedAdapter
from arena.providers.wire import decode_b64

IMAGE = b"\x89PNG not really, the base judges no pixels"
STATES = {"queued": Phase.QUEUED, "running": Phase.RUNNING, "done": Phase.DONE}


class ToyAdapter(QueuedAdapter):
    """POST /jobs -> {id, state}; GET /jobs/ID -> {state}; result inline or at /jobs/ID/result."""

    protocol = "toy"

    def __init__(self, provider, client, *, result_url: bool) -> None:
        super().__init__(provider, client, None)
        self.result_url = result_url

    def submit_request(self, request: ImageRequest) -> httpx.Request:
        return self.client.build_request("POST", "http://toy/jobs", json={"p": request.prompt})

    def read_job(self, submitted: dict, headers: httpx.Headers) -> Job:
        return Job(
            submitted,
            id=submitted["id"],
            status_url=f"http://toy/jobs/{submitted['id']}",
            cancel_method="DELETE",
            cancel_url=f"http://toy/jobs/{submitted['id']}",
            phase=STATES.get(submitted["state"], Phase.QUEUED),
        )

    def phase_of(self, status: dict) -> Phase:
        if status["state"] == "failed":
            return Phase.FAILED
        if status["state"] not in STATES:
            raise ProviderError("bad_response", f"state {status['state']!r}")
        return STATES[status["state"]]

    def failure_of(self, status: dict) -> ProviderError:
        return ProviderError("refused", "toy said no")

    def result_request(self, job: Job, status: dict) -> httpx.Request | None:
        return (
            self.client.build_request("GET", f"{job.status_url}/result")
            if self.result_url
            else None
        )

    async def read_result(self, result: dict, job: Job, watch: Stopwatch) -> ProviderReply:
        return ProviderReply(images=[decode_b64(result["image"], "image")])


class ToyServer:
    """Answers the submit with `first`, then each poll with the next of `states`; times every reply."""

    def __init__(self, first: str, states: list[str]) -> None:
        self.first, self.states = first, list(states)
        self.calls: list[tuple[str, str, int]] = []  # method, path, perf_counter_ns when answered

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path, time.perf_counter_ns()))
        image = {"image": base64.b64encode(IMAGE).decode()}
        if request.method == "POST":
            return httpx.Response(200, json={"id": "j1", "state": self.first, **image})
        if request.method == "DELETE" or path.endswith("/result"):
            return httpx.Response(200, json=image)
        return httpx.Response(200, json={"state": self.states.pop(0), **image})

    def answered(self, method: str) -> list[int]:
        return [at for m, path, at in self.calls if m == method and not path.endswith("/result")]


def run(server: ToyServer, *, result_url: bool = False, timeout_s: float = 5.0):
    provider = ProviderConfig(
        name="toy", protocol="toy", base_url="http://toy", poll_interval_s=0.005
    )

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            adapter, watch = ToyAdapter(provider, client, result_url=result_url), Stopwatch()
            try:
                async with asyncio.timeout(timeout_s):
                    return (
                        await adapter.generate(ImageRequest("text-to-image", "x", "m"), watch),
                        None,
                        watch,
                    )
            except (ProviderError, TimeoutError) as exc:
                return None, exc, watch

    return asyncio.run(go())


def test_started_is_the_first_running_reply_and_the_final_status_carries_the_result():
    server = ToyServer("queued", ["queued", "running", "running", "done"])
    reply, error, watch = run(server)
    assert error is None and reply.images == [IMAGE] and reply.request_id == "j1"
    marks = watch.marks_ns
    polls = server.answered("GET")
    assert len(polls) == 4
    # Each mark is when that reply's headers were read: after the fake answered, before the next.
    assert polls[1] < marks["started"] < polls[2]
    assert polls[3] < marks["completed"] == marks["ttfb"]
    assert marks["download_start"] == marks["ttfb"] and marks["done"] == marks["body_done"]
    assert reply.queue_ms == pytest.approx(watch.ms("started", since="submit_ack"))
    assert reply.processing_ms == pytest.approx(watch.ms("completed", since="started"))
    assert not server.answered("DELETE")


def test_a_separate_result_fetch_is_the_ttfb():
    server = ToyServer("queued", ["running", "done"])
    reply, error, watch = run(server, result_url=True)
    assert error is None and reply.images == [IMAGE]
    marks = watch.marks_ns
    (result_at,) = [at for _, path, at in server.calls if path.endswith("/result")]
    assert marks["completed"] < result_at < marks["ttfb"] <= marks["body_done"] == marks["done"]


def test_a_job_done_within_the_submit_is_never_polled():
    server = ToyServer("done", [])
    reply, error, watch = run(server)
    assert error is None and reply.images == [IMAGE]
    marks = watch.marks_ns
    assert marks["submit_ack"] == marks["completed"] == marks["ttfb"]
    assert "started" not in marks and reply.queue_ms is None
    assert [m for m, _, _ in server.calls] == ["POST"]


def test_a_failed_job_raises_its_failure_and_is_not_cancelled():
    server = ToyServer("queued", ["running", "failed"])
    reply, error, watch = run(server)
    assert reply is None and error.failure_class == "refused"
    assert watch.marks_ns["completed"] == watch.marks_ns["ttfb"]
    assert not server.answered("DELETE")  # it had already ended


@pytest.mark.parametrize("states", [["running", "exploded"], ["queued"] * 10_000])
def test_an_unreadable_status_or_our_timeout_cancels_the_job(states):
    server = ToyServer("queued", states)
    reply, error, _ = run(server, timeout_s=0.2)
    assert reply is None
    expected = "bad_response" if "exploded" in states else None
    assert (getattr(error, "failure_class", None)) == expected
    assert isinstance(error, ProviderError if expected else TimeoutError)
    assert len(server.answered("DELETE")) == 1

"""The queued-protocol base: submit -> poll -> fetch, with the phase timing written once.

A queued provider acknowledges the submit at once and does the work later; arena times each phase
on the Stopwatch (the measured definitions are in base.py's docstring):

    sent ─► submit_ack ─► started ─► completed ─► ttfb ─► download_start ─► done
            submit's      first poll  the poll    headers of  the image     image bytes
            headers       saying it   saying it   the reply   transfer      in hand
                          runs        ended       carrying the result

    queue_ms = submit_ack -> started     processing_ms = started -> completed
    (a subclass may prefer the provider's own figures where our polls only see snapshots)

The base sends the submit, polls the status URL until the job ends (cancelling it if we stop
waiting: our timeout or a failed poll), fetches the result and stamps the marks. A subclass supplies
the protocol: the submit request, the job read from the submit reply, a status reply's Phase, the
failure of a failed job, the result request (or none, when the final status carries the result),
and the images read from the result.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from dataclasses import dataclass
from enum import Enum

import httpx

from arena.errors import Failure, ProviderError
from arena.providers.base import Adapter, ImageRequest, ProviderReply, Stopwatch
from arena.providers.wire import (
    cancel_on_exit,
    default_error,
    exchange,
    get_status,
    parse_json,
    stamp,
)


class Phase(Enum):
    """Where a job is, as one status reply says."""

    QUEUED = "queued"  # accepted, not yet running
    RUNNING = "running"  # the provider is working on it: the first such reply stamps "started"
    DONE = "done"  # ended with a result to fetch
    FAILED = "failed"  # ended without one; failure_of() names the failure class


@dataclass
class Job:
    """What the submit reply told us: the job's id, where to poll it, how to cancel it."""

    submitted: dict  # the submit reply as parsed
    id: str | None = None
    status_url: str | None = None  # used exactly as returned (it may name another host or path)
    cancel_method: str = "POST"
    cancel_url: str | None = None  # None: the protocol has no cancel
    phase: Phase = Phase.QUEUED  # what the submit reply itself says (a held request may be done)


class QueuedAdapter(Adapter):
    """Adapter.generate as submit -> poll -> fetch; subclasses speak the protocol's pieces."""

    def _headers(self) -> dict[str, str]:
        """The headers every request of the protocol carries (authentication)."""
        return {}

    @abstractmethod
    def submit_request(self, request: ImageRequest) -> httpx.Request:
        """The request that starts the work (built before the clock starts: errors cost no time)."""

    @abstractmethod
    def read_job(self, submitted: dict, headers: httpx.Headers) -> Job:
        """The job the submit reply describes; a ProviderError if it describes none."""

    @abstractmethod
    def phase_of(self, status: dict) -> Phase:
        """The phase one status reply says; a bad_response ProviderError for one we cannot read."""

    def failure_of(self, status: dict) -> ProviderError:
        """Why a FAILED job failed (the provider's words, redacted)."""
        return ProviderError(Failure.SERVER_ERROR, f"{self.protocol} job failed")

    def result_request(self, job: Job, status: dict) -> httpx.Request | None:
        """The request that fetches a DONE job's result; None when the final status carries it."""
        return None

    @abstractmethod
    async def read_result(self, result: dict, job: Job, watch: Stopwatch) -> ProviderReply:
        """The images in a result: decoded inline or downloaded (self.download stamps the transfer)."""

    def error_from_reply(self, response: httpx.Response, body: bytes) -> ProviderError:
        """The failure an HTTP error reply (submit, status or result) stands for."""
        return default_error(self, response, body)

    def set_phases(self, reply: ProviderReply, status: dict, watch: Stopwatch) -> None:
        """queue_ms and processing_ms from our marks; a subclass may prefer the provider's figures."""
        if "started" in watch.marks_ns:
            reply.queue_ms = watch.ms("started", since="submit_ack")
            reply.processing_ms = watch.ms("completed", since="started")

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        submit = self.submit_request(request)
        watch.start()
        response, body, ack_ns = await exchange(self, submit, f"{self.protocol} submit")
        stamp(watch, "submit_ack", ack_ns)
        if response.status_code >= 400:
            raise self.error_from_reply(response, body)
        job = self.read_job(parse_json(body, f"{self.protocol} submit reply"), response.headers)
        status, phase, at_ns = await self.wait_until_ended(job, ack_ns, watch)
        stamp(watch, "completed", at_ns)
        fetch = self.result_request(job, status) if phase is Phase.DONE else None
        if fetch is None:
            # The reply that said the job ended carries its outcome: its headers are the TTFB.
            stamp(watch, "ttfb", at_ns)
            watch.mark("body_done")
            if phase is Phase.FAILED:
                raise self.failure_of(status)
            result = status
        else:
            response, body, ttfb_ns = await exchange(self, fetch, f"{self.protocol} result")
            stamp(watch, "ttfb", ttfb_ns)
            watch.mark("body_done")
            if response.status_code >= 400:
                raise self.error_from_reply(response, body)
            result = parse_json(body, f"{self.protocol} result")
        reply = await self.read_result(result, job, watch)
        if "download_start" not in watch.marks_ns:
            # The images came inside the result body: its transfer was the download.
            stamp(watch, "download_start", watch.marks_ns["ttfb"])
            stamp(watch, "done", watch.marks_ns["body_done"])
        reply.request_id = job.id
        self.set_phases(reply, status, watch)
        return reply

    async def wait_until_ended(
        self, job: Job, ack_ns: int, watch: Stopwatch
    ) -> tuple[dict, Phase, int]:
        """Poll until DONE or FAILED; returns the last status, its phase, and when its headers came.

        If we stop waiting (our timeout cancels the task, or a poll fails) the job is cancelled:
        nobody will collect the result, so nobody should pay for it.
        """
        status, phase, at_ns = job.submitted, job.phase, ack_ns
        if phase in (Phase.DONE, Phase.FAILED):
            return status, phase, at_ns
        if not job.status_url:
            raise ProviderError(
                Failure.BAD_RESPONSE, f"{self.protocol} submit reply names no status URL to poll"
            )
        headers = self._headers()
        try:
            while phase not in (Phase.DONE, Phase.FAILED):
                if phase is Phase.RUNNING and "started" not in watch.marks_ns:
                    stamp(watch, "started", at_ns)
                await asyncio.sleep(self.provider.poll_interval_s)
                status, at_ns = await get_status(
                    self, job.status_url, headers, f"{self.protocol} status", self.error_from_reply
                )
                phase = self.phase_of(status)
        except (Exception, asyncio.CancelledError):
            await cancel_on_exit(self, job.cancel_method, job.cancel_url, headers)
            raise
        return status, phase, at_ns

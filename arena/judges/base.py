"""What every judge client speaks: the request (prompt, sources, two candidates), the reply (a
verdict and a short reason, timed), and the Judge base class that sends one request.

A judge call is timed like a provider attempt (docs/methodology.md): duration = request sent ->
whole reply in hand; TTFB = request sent -> the reply's status line and headers. Failures are
ProviderErrors with the same classes (arena.errors.Failure); a judge reply we cannot read as a
verdict is bad_response.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import httpx

from arena.config import JudgeConfig
from arena.errors import ProviderError
from arena.providers import wire
from arena.providers.base import InputImage

VERDICTS = ("first", "second", "tie", "both_bad")


@dataclass(frozen=True)
class JudgeRequest:
    """One question to a judge: which of two outputs answers the prompt better.

    `sources` are an edit's source images (none for text-to-image); `first` is the candidate shown
    as "Candidate 1", `second` as "Candidate 2".
    """

    prompt: str
    task: str  # "text-to-image" or "edit"
    first: InputImage
    second: InputImage
    sources: tuple[InputImage, ...] = ()


@dataclass(frozen=True)
class JudgeReply:
    """A verdict in the order shown: "first", "second", "tie" or "both_bad"."""

    verdict: str
    reason: str
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    status_code: int | None = None


class Judge(ABC):
    """One judge protocol: a JudgeRequest -> one HTTP request -> a JudgeReply or a ProviderError.

    `protocol` is the name `[judges.NAME] protocol = "..."` uses. The key is read once, from the
    environment variable the config names, and only ever placed in request headers.
    """

    protocol: str = ""

    def __init__(
        self, config: JudgeConfig, client: httpx.AsyncClient, api_key: str | None = None
    ) -> None:
        self.config = config
        self.client = client
        self._api_key = api_key

    def __repr__(self) -> str:  # never show the key
        return f"<{type(self).__name__} {self.config.name}>"

    def redact(self, text: str) -> str:
        """Remove the key from text that might echo it."""
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    @abstractmethod
    def build_request(self, request: JudgeRequest) -> httpx.Request:
        """The HTTP request that asks the question."""

    @abstractmethod
    def read_text(self, data: dict) -> str:
        """The judge's answer text from a success reply's JSON; ProviderError if refused or empty."""

    def error_from_reply(self, response: httpx.Response, body: bytes) -> ProviderError:
        error = wire.error_from_status(
            response.status_code, response.headers, body.decode("utf-8", "replace"), self.redact
        )
        return wire.name_the_key(error, self.config)

    async def judge(self, request: JudgeRequest) -> JudgeReply:
        """Ask once; the whole exchange is bounded by the judge's timeout_s."""
        from arena.judges.instructions import parse_verdict

        http_request = self.build_request(request)
        sent_ns = time.perf_counter_ns()
        try:
            async with asyncio.timeout(self.config.timeout_s):
                response, body, headers_ns = await wire.exchange(
                    self, http_request, f"judge {self.config.name}"
                )
        except TimeoutError:
            raise ProviderError(
                "timeout", f"judge {self.config.name}: no reply within {self.config.timeout_s:g} s"
            ) from None
        done_ns = time.perf_counter_ns()
        if response.status_code >= 400:
            raise self.error_from_reply(response, body)
        try:
            text = self.read_text(wire.parse_json(body, f"judge {self.config.name} reply"))
            verdict, reason = parse_verdict(text)
        except ProviderError as exc:
            raise ProviderError(
                exc.failure_class,
                self.redact(str(exc).split(": ", 1)[-1]),
                status_code=response.status_code,
            ) from None
        return JudgeReply(
            verdict=verdict,
            reason=self.redact(reason),
            ttfb_ms=(headers_ns - sent_ns) / 1e6,
            duration_ms=(done_ns - sent_ns) / 1e6,
            status_code=response.status_code,
        )

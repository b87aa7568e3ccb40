"""Request and result types every adapter speaks, the Adapter base class, and the measured definitions.

Measured definitions (also in docs/methodology.md), all from time.perf_counter_ns:

- request sent: the moment the request that starts the work is handed to its connection (the
  transport's hook calls request_handed(); see harness.make_client). The body is built before, and
  the wait for a connection (a free slot in the pool, or opening one) is recorded apart as
  client_wait_ms, so neither lands in the figures below. Without such a hook (a client arena did
  not make) the moment the adapter called watch.start() stands in, and client_wait_ms is unknown.
- generation time: request sent -> final image bytes in hand. Polling and the download of a result
  URL are included. "In hand" is stamped when the last byte arrives, before any parsing or decoding,
  so the harness's own CPU work is never counted.
- TTFB: request sent -> first byte (the status line and headers) of the response that carries the
  result. For queued providers that is the final result response; the submit acknowledgement, the
  time the job started and the time it completed are recorded beside it (queue_ms, processing_ms).
- download: the transfer of the image itself; for a result URL the GET of that URL, for an inline
  (base64) reply the body transfer after the headers.
- success: an HTTP success carrying an image that decodes at a plausible size (checked in images.py).
- every failure has exactly one class, an arena.errors.Failure (its meanings are drawn there).

How replies are read and errors classified lives in wire.py; the queued phases in queued.py.
"""

from __future__ import annotations

import base64
import time
from abc import ABC, abstractmethod
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import httpx

from arena.config import ProviderConfig
from arena.params import Handling
from arena.providers import wire


@dataclass(frozen=True)
class InputImage:
    """A source image sent with an edit."""

    data: bytes
    mime: str
    name: str

    @cached_property
    def base64(self) -> str:
        """The bytes as base64, encoded once per source image rather than once per request."""
        return base64.b64encode(self.data).decode("ascii")

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.base64}"


@dataclass(frozen=True)
class ImageRequest:
    """One image request in arena's own vocabulary; adapters translate it."""

    task: str  # "text-to-image" or "edit"
    prompt: str
    model_id: str
    images: tuple[InputImage, ...] = ()
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    n: int = 1
    params: dict = field(default_factory=dict)  # passed through to the provider as given
    mask: InputImage | None = None  # an edit's mask (the OpenAI protocol's `mask` file)


# The Stopwatch of the attempt running in this task: the transport's hook stamps it (a ContextVar,
# so n parallel requests of one emulated call, each in a task of its own, stamp their own).
_RUNNING: ContextVar[Stopwatch | None] = ContextVar("arena_stopwatch", default=None)


class Stopwatch:
    """Monotonic marks relative to the moment the request was sent (handed to its connection)."""

    def __init__(self) -> None:
        self.sent_ns: int | None = None
        self.ready_ns: int | None = None  # the request was built and ready to go
        self.handed_ns: int | None = None  # the transport took it onto a connection
        self.marks_ns: dict[str, int] = {}

    def start(self) -> None:
        """Called by an adapter once the request that starts the work is built, right before it
        goes to the client; the transport's hook then moves `sent_ns` to the hand-over."""
        self.ready_ns = self.sent_ns = time.perf_counter_ns()
        self.sent_at = datetime.now(UTC)
        self.handed_ns = None
        _RUNNING.set(self)

    def handed(self, at_ns: int) -> None:
        """The first request after start() reached its connection: the clock starts here."""
        if self.handed_ns is None and self.ready_ns is not None:
            self.handed_ns = self.sent_ns = at_ns
            self.sent_at = datetime.now(UTC)

    @property
    def client_wait_ms(self) -> float | None:
        """Ready -> handed to a connection (pool slot, connect); None when no hook said."""
        if self.handed_ns is None or self.ready_ns is None:
            return None
        return (self.handed_ns - self.ready_ns) / 1e6

    def mark(self, name: str) -> int:
        now = time.perf_counter_ns()
        self.marks_ns[name] = now
        return now

    def mark_once(self, name: str) -> None:
        if name not in self.marks_ns:
            self.mark(name)

    def ms(self, name: str, since: str | None = None) -> float | None:
        end = self.marks_ns.get(name)
        start = self.sent_ns if since is None else self.marks_ns.get(since)
        if end is None or start is None:
            return None
        return (end - start) / 1e6


def request_handed() -> None:
    """The transport's hook: a request of the running attempt was just handed to its connection."""
    watch = _RUNNING.get()
    if watch is not None:
        watch.handed(time.perf_counter_ns())


@dataclass
class ProviderReply:
    """What an adapter hands back on success: raw image bytes plus what the provider told us."""

    images: list[bytes]
    cost_usd: float | None = None  # as reported by the provider, when it does
    served_by: str | None = None  # the upstream a gateway routed to, when it says
    request_id: str | None = None
    queue_ms: float | None = None  # submit acknowledged -> started (queued providers)
    processing_ms: float | None = None  # started -> completed, or the server's own figure
    first_partial_ms: float | None = None  # streaming: request sent -> first partial image
    extra: dict = field(default_factory=dict)
    # Each image's base64 text (bytes) as the reply carried it, when every image came inline: a
    # gateway passes it on instead of encoding the bytes again. None once an image is converted.
    encoded: list[bytes] | None = None


class Adapter(ABC):
    """One provider protocol: translate ImageRequest to HTTP and the reply back.

    Adapters call watch.start() right before sending the request that starts the work,
    watch.mark("ttfb") when the headers of the result-bearing response arrive and
    watch.mark("done") when the final image bytes are in hand (before decoding them).

    A protocol's facts are class attributes, so a plugin adapter declares them the way a
    built-in does; the registry reads them for config, normalization, emulation and
    `arena providers`:

    - protocol: the name providers use in arena.toml (`protocol = "..."`).
    - needs_key: whether a provider of this protocol must name `api_key_env`.
    - shape_form: "size" (the API takes WxH pixels) or "ratio" (aspect_ratio + resolution tier);
      decides the form when a capability table does not.
    - parameters: request parameter -> params.Handling (passthrough / renamed / converted /
      emulated); parameters not listed pass through as given. "emulated" ones are made to hold
      by arena (providers.emulation), so the adapter never sees them.
    - default_capabilities: the capability table (params.CAPABILITY_KEYS) for a route that
      declares none; values the protocol's API accepts. A route's own table wins.
      capabilities_for(model_id) narrows it for a model that takes less (the class's table by
      default). Adapters also keep their bodies within what the API takes, whatever reaches them.
    - baseline: its providers are baselines (labelled so) unless they say otherwise.
    - default_base_url: None when a provider must give base_url; "" when arena starts the
      server itself if none is given.
    """

    protocol: str = ""
    needs_key: bool = True
    shape_form: str = "ratio"
    parameters: dict[str, Handling] = {}
    default_capabilities: dict = {}
    baseline: bool = False
    default_base_url: str | None = None

    def __init__(
        self, provider: ProviderConfig, client: httpx.AsyncClient, api_key: str | None
    ) -> None:
        self.provider = provider
        self.client = client
        self._api_key = api_key  # only ever placed in request headers

    def __repr__(self) -> str:  # never show the key
        return f"<{type(self).__name__} {self.provider.name}>"

    @classmethod
    def capabilities_for(cls, model_id: str) -> dict:
        """The default table for one model of the protocol (some take less than others)."""
        return cls.default_capabilities

    @abstractmethod
    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        """Send one request; return the images or raise ProviderError with a failure class."""

    def redact(self, text: str) -> str:
        """Remove the key from provider text that might echo it."""
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    async def download(self, url: str, watch: Stopwatch) -> bytes:
        """GET a result URL at once (result URLs expire); the transfer is timed as download."""
        return await wire.download(self, url, watch)

"""Plan jobs, execute them asynchronously within each provider's limits, hand every attempt to a sink.

No SQL here: the sink (store.StoreWriter in production) persists what it is given, off the event loop.
call_adapter() is how one reply is judged (timeout, image check, failure class, cost): every attempt
of a run and `arena probe` go through it, so a probe shows what a run would record.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import mimetypes
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Protocol

import httpx

from arena.challenges import Challenge, check_params_on_route
from arena.config import ProviderConfig, Route, Settings
from arena.errors import ImageError, ProviderError, StoreError
from arena.images import ImageInfo, inspect_image
from arena.limits import ProviderLimiter
from arena.params import merge_params, normalize_request
from arena.providers import adapter_class, route_capabilities
from arena.providers.base import (
    Adapter,
    ImageRequest,
    InputImage,
    ProviderReply,
    Stopwatch,
    request_handed,
)
from arena.providers.emulation import emulate
from arena.providers.wire import classify_exception, name_the_key
from arena.store.tables import Job

# One attempt as the harness hands it on: tables.Attempt's columns as attributes. Not the SQLModel
# class itself: building one costs ~0.3 ms of GIL per job, time the event loop waits for.
AttemptRecord = SimpleNamespace


class ResultSink(Protocol):
    """Where attempts go. A sink that can fail may also report its health (store.StoreWriter does):
    `health` is "healthy", "failing" (it holds results it could not save and tries again: send
    nothing new) or "failed" (it gave up: stop), and `watch_health(listener)` calls listener(health)
    now and at every change, from any thread, returning the function that stops it."""

    def submit(
        self, attempt: AttemptRecord, image: bytes | None, info: ImageInfo | None, final: bool
    ) -> None: ...


class Budget(Protocol):
    """A run's budget kept elsewhere (store.quotas.SharedBudget: across a run's workers)."""

    async def hold(self, job: Job) -> bool: ...

    async def release(self, job: Job) -> None: ...


class SinkFailed(Exception):
    """The sink gave up on saving results: nothing more is sent (raised where a request would go)."""


class SendStopped(Exception):
    """This executor may no longer send (its lease is lost): raised where a request would go."""


class _GatedLimiter:
    """A provider's limiter that also holds each request while the sink cannot save results.

    The sink is asked again after the rate limit's wait, since it may have started failing while
    the request waited its turn; a request held then waits its turn again once the sink is back.
    """

    def __init__(self, limiter: ProviderLimiter, harness: Harness) -> None:
        self._limiter = limiter
        self._harness = harness

    def __getattr__(self, name: str):
        return getattr(self._limiter, name)

    def slot(self):
        return self._limiter.slot()

    async def pace(self) -> float:
        waited_ms = 0.0
        while True:
            await self._harness.sink_ready()
            waited_ms += await self._limiter.pace()
            if not self._harness._may_send():  # the rate limit's wait may have outlived the lease
                raise SendStopped(self._harness.outcome.stopped_reason)
            if self._harness.sink_health() == "healthy":
                return waited_ms


def plan_jobs(
    settings: Settings, challenges: list[Challenge], samples: int | None = None
) -> list[Job]:
    """Every challenge x every route of every model that does its task x every sample, in a stable order."""
    samples = samples or settings.samples
    jobs = []
    for challenge in challenges:
        for model in settings.models.values():
            if challenge.kind not in model.tasks:
                continue
            for route in model.routes:
                if challenge.params:  # before anything is stored: the route must take them
                    protocol = settings.providers[route.provider].protocol
                    check_params_on_route(
                        challenge, route.target, protocol, adapter_class(protocol).parameters
                    )
                for sample in range(samples):
                    jobs.append(
                        Job(
                            run_id="",
                            challenge=challenge.slug,
                            task=challenge.kind,
                            category=challenge.category,
                            model=model.name,
                            provider=route.provider,
                            model_id=route.model_id,
                            sample=sample,
                            expected_cost_usd=route.price_for(challenge.resolution),
                        )
                    )
    return jobs


def build_request(challenge: Challenge, route: Route) -> ImageRequest:
    """Arena's request for a challenge on one route (source images read from disk)."""
    images = tuple(
        InputImage(
            data=path.read_bytes(),
            mime=mimetypes.guess_type(path.name)[0] or "image/png",
            name=path.name,
        )
        for path in challenge.source_images
    )
    return ImageRequest(
        task=challenge.kind,
        prompt=challenge.prompt,
        model_id=route.model_id,
        images=images,
        size=challenge.size,
        aspect_ratio=challenge.aspect_ratio,
        resolution=challenge.resolution,
        params=merge_params(route.params, challenge.params),
    )


def prepare_request(challenge: Challenge, route: Route, adapter) -> ImageRequest:
    """The request a run sends for a challenge on one route: built, then normalized to the route's
    capability table (its own, else the adapter's default). A size, ratio or tier no table allows
    is a ConfigError naming the challenge and the route."""
    return fit_to_route(
        build_request(challenge, route),
        route,
        adapter,
        source=f"challenge {challenge.slug} on {route.target}",
    )


def fit_to_route(request: ImageRequest, route: Route, adapter, source: str) -> ImageRequest:
    """A request's size / aspect_ratio / resolution normalized to the route's capability table (its
    own, else the adapter's default): what a run, the probe and the gateway send. A value no table
    allows is a ConfigError from `source`."""
    return normalize_request(
        request,
        route_capabilities(route.capabilities, adapter, route.model_id),
        adapter.shape_form,
        source=source,
    )


async def send_with_timeout(
    adapter: Adapter, request: ImageRequest
) -> tuple[ProviderReply | None, Stopwatch, ProviderError | None]:
    """One call of an adapter within its provider's timeout; every failure comes back classified."""
    watch = Stopwatch()
    timeout_s = adapter.provider.timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await adapter.generate(request, watch), watch, None
    except ProviderError as exc:
        return None, watch, name_the_key(exc, adapter.provider)
    except TimeoutError:
        return None, watch, ProviderError("timeout", f"no result within {timeout_s:g} s")
    except Exception as exc:  # an adapter bug or an unexpected reply must not stop a run
        return None, watch, classify_exception(exc)


@dataclass
class CallResult:
    """One adapter call settled: at most one failure, else a checked image; with its timings and cost."""

    reply: ProviderReply | None
    watch: Stopwatch
    failure: ProviderError | None
    image: bytes | None = None  # the first image, when it decoded at a plausible size
    info: ImageInfo | None = None
    infos: list[ImageInfo] = field(default_factory=list)  # every image's, when all were checked
    cost_usd: float | None = (
        None  # the provider's own figure, else the configured price of a success
    )

    @property
    def ok(self) -> bool:
        return self.failure is None

    def timings_ms(self) -> dict[str, float | None]:
        """The measured figures (base.py's definitions); a failure has no generation time."""
        reply, watch = self.reply, self.watch
        return {
            "client_wait_ms": watch.client_wait_ms,
            "ttfb_ms": watch.ms("ttfb"),
            "first_partial_ms": reply.first_partial_ms if reply else None,
            "queue_ms": reply.queue_ms if reply else None,
            "processing_ms": reply.processing_ms if reply else None,
            "download_ms": watch.ms("done", since="download_start"),
            "generation_ms": watch.ms("done") if self.ok else None,
        }


async def call_adapter(
    adapter: Adapter,
    request: ImageRequest,
    price_usd: float | None,
    checker: Executor | None = None,
    *,
    every_image: bool = False,
) -> CallResult:
    """Send one request and settle the reply the way every attempt is judged.

    A reply without an image is empty_output; a first image that does not decode at a plausible
    size is invalid_image (checked on `checker`, off the event loop that times other requests).
    `every_image` checks each image of the reply so (the gateway hands them all on), and fills
    `infos`. The cost is the provider's reported figure, else `price_usd` for a success.
    """
    reply, watch, failure = await send_with_timeout(adapter, request)
    result = CallResult(reply, watch, failure)
    if reply is None:
        return result
    if not reply.images:
        result.failure = ProviderError("empty_output", "the reply carried no image")
    else:
        loop = asyncio.get_running_loop()
        checked = reply.images if every_image else reply.images[:1]
        try:
            for index, data in enumerate(checked):
                try:
                    result.infos.append(await loop.run_in_executor(checker, inspect_image, data))
                except ImageError as exc:
                    where = f"image {index + 1} of {len(checked)}: " if len(checked) > 1 else ""
                    raise ImageError(f"{where}{exc}") from None
        except ImageError as exc:
            result.failure = ProviderError("invalid_image", str(exc))
            result.infos = []
        else:
            result.info, result.image = result.infos[0], reply.images[0]
    result.cost_usd = (
        reply.cost_usd if reply.cost_usd is not None else (price_usd if result.ok else None)
    )
    return result


def outcome_fields(result: CallResult) -> dict:
    """The attempts table's columns a settled call fills (its start, outcome, timings, cost and
    first image): the same for the benchmark's attempts and the gateway's traffic."""
    reply, watch, failure, info = result.reply, result.watch, result.failure, result.info
    ok, timings = result.ok, result.timings_ms()
    return {
        "started_at": getattr(watch, "sent_at", None) or datetime.now(UTC),
        "ok": ok,
        "failure_class": None if ok else failure.failure_class,
        "status_code": None if ok else failure.status_code,
        "error": None if ok else str(failure)[:500],
        "generation_ms": timings["generation_ms"],
        "ttfb_ms": timings["ttfb_ms"],
        "download_ms": timings["download_ms"],
        "queue_ms": timings["queue_ms"],
        "processing_ms": timings["processing_ms"],
        "first_partial_ms": timings["first_partial_ms"],
        "client_wait_ms": timings["client_wait_ms"],
        "retry_after_s": None if ok else failure.retry_after_s,
        "cost_usd": result.cost_usd,
        "image_sha256": info.sha256 if info else None,
        "width": info.width if info else None,
        "height": info.height if info else None,
        "format": info.format if info else None,
        "served_by": reply.served_by if reply else None,
        "request_id": reply.request_id if reply else None,
    }


@dataclass
class RunOutcome:
    """What happened in one execute(): counts, spend, and whether the budget stopped it."""

    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    spent_usd: float = 0.0
    budget_stopped: bool = False
    store_failed: bool = False  # the sink gave up on saving: scheduling stopped
    stopped_reason: str | None = None  # why sending stopped before the plan was done (a lost lease)
    failures: dict[str, int] = field(default_factory=dict)
    loop_lag_ms: list[float] = field(default_factory=list)


def make_client(
    provider: ProviderConfig,
    transport: str = "aiohttp",
    *,
    max_connections: int | None = None,
    cookies: bool = True,
) -> httpx.AsyncClient:
    """One client per provider, its pool sized to the provider's concurrency cap (plus result downloads).

    The aiohttp transport is the default: the harness benchmark measured httpx's own pool
    collapsing at hundreds of open connections (see the README's "Why these dependencies").
    Either way the client tells the running attempt's Stopwatch when a request is handed to its
    connection (providers.base.request_handed): the generation clock starts there, and the wait
    before it is client_wait_ms. `max_connections` overrides the pool size (tests, benchmarks).

    cookies=False keeps no cookie at all: the gateway's one client per provider carries the
    requests of every caller, so a cookie one reply set must not ride on the next caller's request
    (and httpx's cookie jar costs ~0.3 ms of the event loop per response, parsing URLs for it).
    """
    connections = max_connections or provider.max_concurrency * 2 + 4
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(provider.timeout_s, connect=min(30.0, provider.timeout_s))
    if transport == "aiohttp":
        client = httpx.AsyncClient(
            transport=_aiohttp_transport(limits, cookies=cookies), timeout=timeout, trust_env=False
        )
    else:
        client = httpx.AsyncClient(
            limits=limits,
            timeout=timeout,
            trust_env=False,
            event_hooks={"request": [_trace_hand_over]},
        )
    if not cookies:
        client._cookies = _NoCookies()  # the property's setter would copy it into a plain jar
    return client


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing a response sets (see make_client's cookies=False)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


async def _trace_hand_over(request: httpx.Request) -> None:
    """httpx's own pool: httpcore's trace says when the request's headers start going out."""
    request.extensions["trace"] = _on_httpcore_event


async def _on_httpcore_event(name: str, info: dict) -> None:
    if name in ("http11.send_request_headers.started", "http2.send_request_headers.started"):
        request_handed()


def _aiohttp_transport(limits: httpx.Limits, *, cookies: bool = True):
    """httpx-aiohttp's transport, handing a body on in one piece, with a send hook.

    httpx-aiohttp reads a body in fixed pieces (16 KiB: a 1.3 MB base64 reply is ~80 trips through
    httpx's stream machinery), each a join of what aiohttp buffered, which httpx's aread() joins
    again. Here the socket's reads are taken as aiohttp received them (StreamReader.readchunk: no
    copy) and joined once into the one piece httpx gets (a join of one piece copies nothing); an
    event stream is handed on read by read. The gateway benchmark measured the joins and the trips
    as the largest share of a worker's Python time. The read buffer is 1 MiB rather than 64 KiB so
    that a busy loop pauses and resumes the socket less often. aiohttp's on_request_headers_sent
    fires once a connection is held and the request is being written.
    """
    import aiohttp
    from httpx_aiohttp import AiohttpTransport
    from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

    async def on_headers_sent(session, context, params) -> None:
        request_handed()

    class ReceivedPieces(AiohttpResponseStream):
        """The body as the socket delivered it: piece by piece for an event stream (each event
        timed as it arrives), else the whole body as one piece, joined once."""

        async def __aiter__(self):
            response = self._aiohttp_response
            content = response.content
            streaming = response.content_type == "text/event-stream"
            pieces = []
            with map_aiohttp_exceptions():
                while True:
                    piece, _ = await content.readchunk()
                    if piece:
                        if streaming:
                            yield piece
                        else:
                            pieces.append(piece)
                    elif content.at_eof():
                        break
            if pieces:
                yield pieces[0] if len(pieces) == 1 else b"".join(pieces)

    class LargeChunkTransport(AiohttpTransport):
        def get_client(self) -> aiohttp.ClientSession:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(on_headers_sent)
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections or 0,
                keepalive_timeout=self.limits.keepalive_expiry,
                ssl=self.ssl_context,
            )
            return aiohttp.ClientSession(
                connector=connector,
                trace_configs=[trace],
                read_bufsize=1 << 20,
                cookie_jar=None if cookies else aiohttp.DummyCookieJar(),
            )

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            response.stream = ReceivedPieces(response.stream._aiohttp_response)
            return response

    return LargeChunkTransport(limits=limits)


class Harness:
    """Executes jobs against their providers; reusable for resume (attempt numbers continue)."""

    def __init__(
        self,
        settings: Settings,
        challenges: dict[str, Challenge],
        sink: ResultSink,
        *,
        base_urls: dict[str, str] | None = None,
        max_cost_usd: float | None = None,
        spent_usd: float = 0.0,
        on_result: Callable[[AttemptRecord], None] | None = None,
        transport: str = "aiohttp",
        tuning: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        stop_reason: Callable[[], str | None] | None = None,
        limiter_for: Callable[[str, ProviderConfig], ProviderLimiter] | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.settings = settings
        # A provider's limiter (ProviderLimiter, this process's own, unless given: the shared one
        # of a run's workers) and the budget's keeper (in memory unless given).
        self.limiter_for = limiter_for or (
            lambda name, p: ProviderLimiter(p.rate_limit_per_s, p.max_concurrency)
        )
        self.budget = budget
        # Asked (on the loop: it must be cheap) before every request; a reason stops sending for good.
        self.stop_reason = stop_reason or (lambda: None)
        self.tuning = tuning
        self.challenges = challenges
        self.sink = sink
        self.base_urls = base_urls or {}
        self.max_cost_usd = max_cost_usd
        self.on_result = on_result or (lambda attempt: None)
        self.transport = transport
        self.outcome = RunOutcome(spent_usd=spent_usd)
        self._reserved_usd = 0.0
        self._stop_scheduling = False
        self._routes = {(r.model, r.provider): r for r in settings.routes}
        self._requests: dict[tuple[str, str, str], ImageRequest] = {}
        self._checker: ThreadPoolExecutor | None = None
        self._sink_changed: asyncio.Event | None = None
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._adapters: dict[str, Adapter] = {}
        self._limiters: dict[str, _GatedLimiter] = {}

    def _provider(self, name: str) -> ProviderConfig:
        provider = self.settings.providers[name]
        if name in self.base_urls:
            provider = replace(provider, base_url=self.base_urls[name])
        return provider

    async def execute(
        self, run_id: str, jobs: list[Job], next_attempts: dict[int, int] | None = None
    ) -> RunOutcome:
        """Run the given jobs (in plan order) and any warm-ups; returns counts when all are settled."""
        next_attempts = next_attempts or {}
        for name in sorted({job.provider for job in jobs}):
            self._open_provider(name)
        for job in jobs:  # a size no model supports is a config error before any request is sent
            self._request_for(job, self._adapters[job.provider])
        async with self._running():
            await self._warm_up(run_id, jobs)
            tasks = [
                asyncio.create_task(self._run_job(run_id, job, next_attempts.get(job.id, 1)))
                for job in jobs
            ]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        return self.outcome

    async def execute_claimed(
        self,
        run_id: str,
        claim: Callable[[int], Awaitable[list[tuple[Job, int]] | None]],
        concurrency: int,
        idle_s: float = 1.0,
    ) -> RunOutcome:
        """Run jobs as `claim(n)` hands them over (a worker of a shared run), up to `concurrency`
        at a time; returns once claim() says the run has nothing left (None) and all are settled.

        claim(n) gives at most n (job, first attempt number) pairs; [] means none now (others hold
        the rest): it is asked again as jobs finish, or after `idle_s`. It is also asked (with
        whatever room there is, 0 too) once `idle_s` passes with no job settling: claiming is
        where a worker finds gone workers and frees what they held, such as the concurrency slots
        its running jobs wait for. Each route's warm-up, when its provider asks for one, goes
        before that route's first job.
        """
        warmed: dict[tuple[str, str], asyncio.Task] = {}
        running: set[asyncio.Task] = set()
        stalled = False  # the last wait passed idle_s with no job settling
        async with self._running():
            try:
                while not self._stop_scheduling and self._may_send():
                    room = concurrency - len(running)
                    claimed: list[tuple[Job, int]] | None = []
                    if room >= max(1, concurrency // 2) or not running or stalled:
                        claimed = await claim(room)
                        if claimed is None:
                            break
                    for job, first_attempt in claimed:
                        self._open_provider(job.provider)
                        self._request_for(job, self._adapters[job.provider])
                        running.add(
                            asyncio.create_task(
                                self._run_claimed(run_id, job, first_attempt, warmed)
                            )
                        )
                    if running:
                        settled, running = await asyncio.wait(
                            running, timeout=idle_s, return_when=asyncio.FIRST_COMPLETED
                        )
                        stalled = not settled
                        for task in settled:
                            task.result()  # an unexpected error stops the worker
                    elif not claimed:
                        await asyncio.sleep(idle_s)
                if running:
                    await asyncio.gather(*running)
            except BaseException:
                for task in [*running, *warmed.values()]:
                    task.cancel()
                await asyncio.gather(*running, *warmed.values(), return_exceptions=True)
                raise
        return self.outcome

    async def _run_claimed(self, run_id: str, job: Job, first_attempt: int, warmed) -> None:
        key = (job.model, job.provider)
        if self.settings.providers[job.provider].warmup:
            if key not in warmed:
                warmed[key] = asyncio.create_task(self._warm_up_route(run_id, job))
            await asyncio.shield(warmed[key])
        await self._run_job(run_id, job, first_attempt)

    def _open_provider(self, name: str) -> None:
        """The client, adapter and limiter of a provider, made the first time a job needs them."""
        if name in self._adapters:
            return
        provider = self._provider(name)
        self._clients[name] = client = make_client(provider, self.transport)
        self._adapters[name] = emulate(
            adapter_class(provider.protocol)(provider, client, provider.api_key())
        )
        self._limiters[name] = _GatedLimiter(self.limiter_for(name, provider), self)

    @contextlib.asynccontextmanager
    async def _running(self):
        """What lives for a whole execution: the image checker, the loop-lag probe, the sink's
        watch and the caller's process-wide tuning; the clients are closed at the end."""
        # One thread checks images: each check is ~1 ms of mostly GIL-free C, and every extra
        # thread wanting the GIL delays the event loop's wake-ups.
        self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arena-image-check")
        heartbeat = asyncio.create_task(self._measure_loop_lag())
        unwatch = self._watch_sink(asyncio.get_running_loop())
        # Process-wide knobs (arena.tuning.timed_run from the CLI) are the caller's to choose;
        # entered here, after the plan is built, so they cover what lives for the whole run.
        tuned = contextlib.ExitStack()
        tuned.enter_context(self.tuning())
        try:
            yield
        finally:
            unwatch()
            tuned.close()
            heartbeat.cancel()
            self._checker.shutdown(wait=False)
            for client in self._clients.values():
                await client.aclose()
            self._clients.clear()
            self._adapters.clear()
            self._limiters.clear()

    def _watch_sink(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Wake the requests held by sink_ready() at every change of the sink's health."""
        self._sink_changed = asyncio.Event()
        watch = getattr(self.sink, "watch_health", None)
        if watch is None:
            return lambda: None

        def changed(health: str) -> None:  # from the sink's thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: the run is over
                loop.call_soon_threadsafe(self._sink_changed.set)

        return watch(changed)

    def sink_health(self) -> str:
        return getattr(self.sink, "health", "healthy")

    async def sink_ready(self) -> None:
        """Return once the sink can save results; raise SinkFailed once it has given up."""
        while (health := self.sink_health()) == "failing":
            # Read, cleared and awaited with no await between: a change after the read sets it again.
            self._sink_changed.clear()
            await self._sink_changed.wait()
        if health == "failed":
            raise SinkFailed

    async def _measure_loop_lag(self, interval_s: float = 0.05) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(interval_s)
            self.outcome.loop_lag_ms.append(max(0.0, (loop.time() - start - interval_s) * 1000))

    async def _warm_up(self, run_id, jobs) -> None:
        """One request per model@provider whose provider asks for it; recorded, excluded from stats."""
        firsts: dict[tuple[str, str], Job] = {}
        for job in jobs:
            if self.settings.providers[job.provider].warmup:
                firsts.setdefault((job.model, job.provider), job)
        await asyncio.gather(*(self._warm_up_route(run_id, job) for job in firsts.values()))

    async def _warm_up_route(self, run_id: str, job: Job) -> None:
        """The warm-up of a job's route; a failing sink stops scheduling, and a lost lease is
        outcome.stopped_reason's."""
        try:
            await self._attempt(
                run_id,
                job,
                self._adapters[job.provider],
                self._limiters[job.provider],
                1,
                warmup=True,
            )
        except SinkFailed:
            self._stop_for_sink()
        except (SendStopped, StoreError):
            pass

    def _stop_for_sink(self) -> None:
        self._stop_scheduling = True
        self.outcome.store_failed = True

    def _request_for(self, job: Job, adapter: Adapter) -> ImageRequest:
        """Built once per (challenge, model, provider): sources read once, sizes normalized to the model."""
        key = (job.challenge, job.model, job.provider)
        if key not in self._requests:
            self._requests[key] = prepare_request(
                self.challenges[job.challenge], self._routes[(job.model, job.provider)], adapter
            )
        return self._requests[key]

    async def _hold_budget(self, job: Job) -> bool:
        if self.budget is not None:
            return await self.budget.hold(job)
        if self.max_cost_usd is None:
            return True
        expected = job.expected_cost_usd or 0.0
        if self.outcome.spent_usd + self._reserved_usd + expected > self.max_cost_usd + 1e-12:
            return False
        self._reserved_usd += expected
        return True

    async def _release_budget(self, job: Job, finished: bool) -> None:
        """A job's hold ends: in memory at once; a shared hold with its final attempt's write
        (the writer deletes it then), so only a job that ends without one gives it back here."""
        if self.budget is None:
            if self.max_cost_usd is not None:
                self._reserved_usd -= job.expected_cost_usd or 0.0
        elif not finished:
            with contextlib.suppress(StoreError):  # it goes with the worker's lease
                await self.budget.release(job)

    async def _run_job(self, run_id: str, job: Job, first_attempt: int) -> None:
        provider = self.settings.providers[job.provider]
        adapter, limiter = self._adapters[job.provider], self._limiters[job.provider]
        try:
            async with limiter.slot():
                if not self._may_send():
                    return  # not sent: the job stays pending for whoever executes the run next
                if self._stop_scheduling:
                    return
                if not await self._hold_budget(job):
                    # Once one job would pass the budget, nothing later is scheduled: the run
                    # stops in plan order.
                    self._stop_scheduling = True
                    self.outcome.budget_stopped = True
                    return
                finished = False
                try:
                    for number in itertools.count(first_attempt):
                        if number > first_attempt and not self._may_send():
                            break  # the last attempt was not final: the job stays pending
                        retries_left = provider.max_retries - (number - first_attempt)
                        attempt = await self._attempt(
                            run_id,
                            job,
                            adapter,
                            limiter,
                            number,
                            warmup=False,
                            final_unless_retry=retries_left > 0,
                        )
                        if attempt.failure_class == "rate_limited" and retries_left > 0:
                            wait_s = min(
                                attempt.retry_after_s or 2.0 ** (number - first_attempt),
                                provider.max_retry_after_s,
                            )
                            await asyncio.sleep(wait_s)
                            continue
                        finished = True
                        break
                except SinkFailed:  # raised before the request went out: the job stays pending
                    self._stop_for_sink()
                except SendStopped:  # likewise: the lease is lost, whoever holds it next sends it
                    pass
                finally:
                    await self._release_budget(job, finished)
        except StoreError as exc:  # the shared limits are out of reach and the lease at risk
            if self.outcome.stopped_reason is None:
                self.outcome.stopped_reason = str(exc)

    def _may_send(self) -> bool:
        if self.outcome.stopped_reason is None:
            self.outcome.stopped_reason = self.stop_reason()
        return self.outcome.stopped_reason is None

    async def _attempt(
        self,
        run_id,
        job: Job,
        adapter,
        limiter: ProviderLimiter,
        number: int,
        *,
        warmup: bool,
        final_unless_retry: bool = False,
    ) -> AttemptRecord:
        challenge = self.challenges[job.challenge]
        route = self._routes[(job.model, job.provider)]
        request = self._request_for(job, adapter)
        limiter_wait_ms = await limiter.pace()
        result = await call_adapter(
            adapter, request, route.price_for(challenge.resolution), self._checker
        )
        ok, cost, info = result.ok, result.cost_usd, result.info
        attempt = AttemptRecord(
            run_id=run_id,
            job_id=None if warmup else job.id,
            attempt=number,
            warmup=warmup,
            challenge=job.challenge,
            task=job.task,
            category=job.category,
            model=job.model,
            provider=job.provider,
            limiter_wait_ms=limiter_wait_ms,
            source="benchmark",
            **outcome_fields(result),
        )
        final = not warmup and not (attempt.failure_class == "rate_limited" and final_unless_retry)
        if not warmup:
            self.outcome.attempted += 1
            self.outcome.spent_usd += cost or 0.0
            if ok:
                self.outcome.succeeded += 1
            else:
                self.outcome.failed += 1
                self.outcome.failures[attempt.failure_class] = (
                    self.outcome.failures.get(attempt.failure_class, 0) + 1
                )
        self.sink.submit(attempt, result.image, info, final)
        self.on_result(attempt)
        return attempt

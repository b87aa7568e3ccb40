"""One request through its routes: the model resolved, routes ordered and filtered, each attempt judged
as the benchmark judges it, a retryable failure moving on to the next route.

Adapters are built as the harness builds them (emulate(adapter_class(protocol)(provider, client,
key))), with one httpx client per provider (harness.make_client) kept for the process and the
provider's limits (limits.ProviderLimiter) shared by every request. Each attempt goes through
harness.call_adapter, every image of the reply checked; each is recorded (traffic.TrafficLog) and
reported to the route's breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from arena.config import ModelConfig, Route, RoutePolicy, Settings
from arena.errors import ConfigError, ImageError, ProviderError
from arena.gateway.breaker import Breakers
from arena.gateway.figures import RouteFigureCache
from arena.gateway.replies import GatewayError
from arena.gateway.requests import GatewayRequest
from arena.gateway.routing import falls_back, order_routes, request_policy
from arena.gateway.traffic import TrafficLog
from arena.harness import CallResult, call_adapter, fit_to_route, make_client
from arena.images import ImageInfo, inspect_image
from arena.limits import ProviderLimiter
from arena.params import check_params_for, merge_params
from arena.providers import adapter_class
from arena.providers.base import ImageRequest
from arena.providers.emulation import PIL_FORMATS, convert_image, emulate
from arena.providers.openai import OpenAIAdapter

log = logging.getLogger("arena.gateway")


@dataclass
class Resolved:
    """A model id resolved: the model, and the one route a "provider/model" id pins."""

    model: ModelConfig
    pinned: Route | None = None


@dataclass
class Plan:
    """The routes one request would try, in order, with the policy that ordered them."""

    resolved: Resolved
    policy: RoutePolicy
    routes: list[Route]  # in order, each able to take the request
    requests: dict[str, ImageRequest]  # provider -> the request normalized for its route

    @property
    def fallbacks(self) -> bool:
        return self.resolved.pinned is None and self.policy.allow_fallbacks


@dataclass
class Served:
    """A request settled with images: the route that served them and every attempt made."""

    route: Route
    images: list[bytes]
    infos: list[ImageInfo]
    cost_usd: float | None
    attempts: list[dict] = field(default_factory=list)
    size: str | None = None
    encoded: list[bytes] | None = None  # the images' base64 as the provider sent it (unconverted)


class Forwarder:
    """The adapters, clients and limiters of every provider, and the forwarding of one request."""

    def __init__(
        self,
        settings: Settings,
        breakers: Breakers,
        figures: RouteFigureCache,
        traffic: TrafficLog,
    ) -> None:
        self.settings = settings
        self.breakers = breakers
        self.figures = figures
        self.traffic = traffic
        self.adapters: dict = {}
        self.limiters: dict[str, ProviderLimiter] = {}
        self.classes = {name: adapter_class(p.protocol) for name, p in settings.providers.items()}
        self._clients: list = []
        self._checker: ThreadPoolExecutor | None = None

    # --- lifetime ------------------------------------------------------------------------------

    def start(self, base_urls: dict[str, str] | None = None) -> None:
        """Build one client, adapter and limiter per provider (inside the running event loop)."""
        base_urls = base_urls or {}
        for name, provider in self.settings.providers.items():
            if name in base_urls:
                provider = replace(provider, base_url=base_urls[name])
            client = make_client(provider, cookies=False)  # one client, every caller
            self._clients.append(client)
            try:
                key = provider.api_key()
            except ConfigError as exc:  # a route whose key is unset fails as auth, and falls back
                log.warning("gateway: %s", exc)
                key = None
            self.adapters[name] = emulate(self.classes[name](provider, client, key))
            self.limiters[name] = ProviderLimiter(
                provider.rate_limit_per_s, provider.max_concurrency
            )
        # One thread checks images, as in the harness: each check is ~1 ms of mostly GIL-free C.
        self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-image-check")

    async def aclose(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        if self._checker is not None:
            self._checker.shutdown(wait=False)

    # --- resolving and planning ---------------------------------------------------------------

    def resolve(self, model_id: str) -> Resolved:
        """arena's model name, or "provider/model" pinning one route; else 404 model_not_found."""
        models = self.settings.models
        if model_id in models:
            return Resolved(models[model_id])
        provider, _, name = model_id.partition("/")
        if name in models:
            for route in models[name].routes:
                if route.provider == provider:
                    return Resolved(models[name], pinned=route)
            served = ", ".join(f"{r.provider}/{name}" for r in models[name].routes)
            raise GatewayError(
                404,
                f"model {name!r} is not served by provider {provider!r} (its routes: {served})",
                param="model",
                code="model_not_found",
            )
        raise GatewayError(
            404,
            f"the model {model_id!r} does not exist here (GET /v1/models lists them)",
            param="model",
            code="model_not_found",
        )

    def plan(self, request: GatewayRequest) -> Plan:
        """The routes to try for a request, in order, each with its normalized request; a request
        that no route can take is a 400 naming the parameter."""
        resolved = self.resolve(request.model)
        model = resolved.model
        if request.task not in model.tasks:
            other = "/v1/images/generations" if request.task == "edit" else "/v1/images/edits"
            raise GatewayError(
                400,
                f"model {model.name!r} does not do {request.task} (it does {', '.join(model.tasks)}): use {other}",
                param="model",
                code="model_not_supported",
            )
        base = self.settings.gateway.policies.get(model.name, RoutePolicy())
        if resolved.pinned is not None:
            policy = replace(base, allow_fallbacks=False)
            if request.provider is not None:  # checked all the same: a bad object is still a 400
                request_policy(request.provider, model, base)
            ordered = [resolved.pinned]
        else:
            policy = request_policy(request.provider, model, base)
            ordered = order_routes(model.routes, self.figures.figures(model.name), policy)
        routes, requests, refusal = [], {}, None
        for route in ordered:
            try:
                requests[route.provider] = self._request_for(route, request)
            except GatewayError as exc:
                refusal = refusal or exc
                continue
            routes.append(route)
        if not routes:
            raise refusal or GatewayError(
                503, f"model {model.name!r} has no route to try", code="all_providers_exhausted"
            )
        return Plan(resolved, policy, routes, requests)

    def _request_for(self, route: Route, request: GatewayRequest) -> ImageRequest:
        """The request as this route's adapter takes it, or a 400 naming what it cannot take."""
        cls = self.classes[route.provider]
        protocol = self.settings.providers[route.provider].protocol

        def refuse(source, where, problem):
            name = where.removeprefix("params.")
            return GatewayError(
                400, f"`{name}` {problem}", param=name, code="unsupported_parameter"
            )

        check_params_for(
            request.params,
            cls.parameters,
            protocol,
            "request",
            "params",
            error=refuse,
            target=route.target,
        )
        if request.mask is not None and not issubclass(cls, OpenAIAdapter):
            raise GatewayError(
                400,
                f"`mask` is not supported on {route.target} (protocol {protocol})",
                param="mask",
                code="unsupported_parameter",
            )
        params = merge_params(route.params, request.params)
        params.pop("response_format", None)  # the gateway serves url replies itself
        if request.output_format:
            params["output_format"] = request.output_format
            if request.output_compression is not None:
                params["output_compression"] = request.output_compression
        image_request = ImageRequest(
            task=request.task,
            prompt=request.prompt,
            model_id=route.model_id,
            images=request.images,
            size=request.size,
            aspect_ratio=request.aspect_ratio,
            resolution=request.resolution,
            n=request.n,
            params=params,
            mask=request.mask,
        )
        try:
            return fit_to_route(image_request, route, cls, source="request")
        except ConfigError as exc:
            name = (exc.field or "size").split(".")[-1]
            raise GatewayError(
                400, f"`{name}`: {exc.problem}", param=name, code="invalid_value"
            ) from None

    def price_usd(self, route: Route, request: ImageRequest) -> float | None:
        """What the route charges for the request: its price for the tier, per image."""
        price = route.price_for(request.resolution)
        return None if price is None else price * request.n

    # --- forwarding ----------------------------------------------------------------------------

    async def forward(
        self, request: GatewayRequest, plan: Plan, *, key_name: str | None, request_id: str
    ) -> Served:
        """Try the plan's routes in order until one serves every image; raise GatewayError otherwise."""
        attempts: list[dict] = []
        skipped: list[str] = []
        for route in plan.routes:
            if not self.breakers.allow(route.target):
                skipped.append(route.provider)
                continue
            image_request = plan.requests[route.provider]
            result, wait_ms = await self._attempt(route, image_request)
            failure = result.failure
            if failure is None:
                try:
                    await self._convert(request, result)
                except ProviderError as exc:
                    failure = result.failure = exc
            self.breakers.record(route.target, None if failure is None else failure.failure_class)
            self.traffic.record(
                route,
                request.task,
                result,
                number=len(attempts) + 1,
                limiter_wait_ms=wait_ms,
                key_name=key_name,
                request_id=request_id,
                prompt=request.prompt,
            )
            timings = result.timings_ms()
            attempts.append(
                {
                    "provider": route.provider,
                    "failure_class": None if failure is None else failure.failure_class,
                    "generation_ms": timings["generation_ms"],
                }
            )
            if failure is None:
                return Served(
                    route,
                    list(result.reply.images),
                    result.infos,
                    result.cost_usd,
                    attempts,
                    size=image_request.size,
                    encoded=result.reply.encoded,
                )
            if failure.failure_class == "refused":
                raise GatewayError(
                    400,
                    f"{route.provider} refused the prompt or image under its content policy: {failure}",
                    code="content_policy_violation",
                    extra={"attempts": attempts},
                )
            if failure.failure_class == "client_error":
                raise GatewayError(
                    400,
                    f"{route.provider} rejected the request: {failure}",
                    code="provider_rejected_request",
                    extra={"attempts": attempts},
                )
            if not (plan.fallbacks and falls_back(failure.failure_class)):
                break
        tried = "; ".join(f"{a['provider']}: {a['failure_class']}" for a in attempts)
        if skipped:
            tried = "; ".join(filter(None, [tried, f"circuit open: {', '.join(skipped)}"]))
        raise GatewayError(
            503,
            f"every route of {plan.resolved.model.name!r} failed ({tried})",
            code="all_providers_exhausted",
            extra={"attempts": attempts, "skipped": skipped},
        )

    async def _attempt(self, route: Route, request: ImageRequest) -> tuple[CallResult, float]:
        limiter = self.limiters[route.provider]
        async with limiter.slot():
            wait_ms = await limiter.pace()
            result = await call_adapter(
                self.adapters[route.provider],
                request,
                self.price_usd(route, request),
                self._checker,
                every_image=True,
            )
        return result, wait_ms

    async def _convert(self, request: GatewayRequest, result: CallResult) -> None:
        """An output_format the provider did not honour (a passthrough it ignores) is made to hold."""
        wanted = request.output_format
        if wanted is None:
            return
        target = PIL_FORMATS[wanted]
        images = result.reply.images
        for index, info in enumerate(result.infos):
            if info.format == target:
                continue
            data = await asyncio.to_thread(
                convert_image, images[index], wanted, request.output_compression
            )
            try:
                result.infos[index] = await asyncio.to_thread(inspect_image, data)
            except ImageError as exc:
                raise ProviderError("invalid_image", f"converted image: {exc}") from None
            images[index] = data
            result.reply.encoded = None  # the provider's base64 is of the image before conversion
        result.image, result.info = images[0], result.infos[0]

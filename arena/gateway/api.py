"""The gateway's endpoints: images generations and edits, the model list, one model's routes, health, files.

Every endpoint answers in OpenAI's shapes; every refusal is a GatewayError turned into OpenAI's
error object, and anything unexpected is one logged line and a 500 in the same shape, never a
traceback. Every reply carries X-Arena-Request-Id; a success also X-Arena-Provider.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from arena.config import RoutePolicy, Settings
from arena.gateway.auth import KeyRing
from arena.gateway.files import FileStore
from arena.gateway.forwarding import Forwarder, Plan
from arena.gateway.lag import LoopLag
from arena.gateway.replies import (
    PROVIDER_HEADER,
    REQUEST_ID_HEADER,
    GatewayError,
    error_response,
    images_reply,
    images_response,
    json_reply,
    new_request_id,
)
from arena.gateway.requests import GatewayRequest, read_edit, read_generation
from arena.gateway.routing import order_routes
from arena.providers import route_capabilities

log = logging.getLogger("arena.gateway")


@dataclass
class GatewayState:
    """Everything the endpoints share: app.state.gateway."""

    settings: Settings
    forwarder: Forwarder
    keyring: KeyRing
    files: FileStore
    lag: LoopLag


def endpoint(handler):
    """A request id for every reply, GatewayError as OpenAI's error object, and no traceback ever."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        request_id = new_request_id()
        request.state.request_id = request_id
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = error_response(exc)
        except Exception as exc:  # a bug: one line in the log, nothing internal in the reply
            log.error(
                "gateway: %s %s failed (%s): %s: %s",
                request.method,
                request.url.path,
                request_id,
                type(exc).__name__,
                " ".join(str(exc).split())[:300],
            )
            response = error_response(
                GatewayError(
                    500,
                    f"the gateway failed on this request ({request_id}); it is logged",
                    code="internal_error",
                )
            )
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    return wrapped


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (no such path, wrong method) in OpenAI's shape."""
    status = exc.status_code
    if status == 404:
        error = GatewayError(
            404,
            f"no endpoint {request.url.path} (the gateway serves /v1/images/generations, /v1/images/edits, /v1/models)",
            code="unknown_url",
        )
    elif status == 405:
        error = GatewayError(
            405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed"
        )
    else:
        error = GatewayError(status, str(exc.detail), code=None)
    headers = {REQUEST_ID_HEADER: new_request_id()}
    if exc.headers:
        headers.update(exc.headers)
    return error_response(error, headers)


def _state(request: Request) -> GatewayState:
    return request.app.state.gateway


def _dry_run(request: Request) -> bool:
    value = request.query_params.get("dry_run", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise GatewayError(400, f"dry_run must be true or false, got {value!r}", param="dry_run")
    return value in ("true", "1")


async def _bearer_given(request: Request, state: GatewayState) -> None:
    """A request with no Bearer key at all is 401 before its body is read (the key ring says so in
    its words); a key is checked once the request is known, with the price it would cost."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        await state.keyring.authorize(request.headers.get("authorization"))


async def generations(request: Request) -> Response:
    state = _state(request)
    await _bearer_given(request, state)
    limit = state.settings.gateway.max_body_bytes
    return await _images(request, await read_generation(request, limit))


async def edits(request: Request) -> Response:
    state = _state(request)
    await _bearer_given(request, state)
    return await _images(request, await read_edit(request, state.settings.gateway.max_body_bytes))


async def _images(request: Request, asked: GatewayRequest) -> Response:
    state = _state(request)
    dry_run = _dry_run(request)
    forwarder = state.forwarder
    plan = forwarder.plan(asked)
    first = plan.routes[0]
    expected = forwarder.price_usd(first, plan.requests[first.provider])
    # a dry run is refused as the request itself would be (key, budget, rate), and charges nothing
    grant = await state.keyring.authorize(
        request.headers.get("authorization"), expected_cost_usd=expected
    )
    if dry_run:
        return json_reply(_dry_run_body(forwarder, plan))
    try:
        served = await forwarder.forward(
            asked, plan, key_name=grant.key_name, request_id=request.state.request_id
        )
    except GatewayError:
        state.keyring.charge(grant, None)  # a request all the same; failed attempts cost nothing
        raise
    state.keyring.charge(grant, served.cost_usd)
    items = await _items(state, asked, served)
    route = served.route
    formats = {info.format for info in served.infos}
    output_format = (
        {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}.get(formats.pop())
        if len(formats) == 1
        else None
    )
    sizes = {f"{i.width}x{i.height}" for i in served.infos}
    body, pieces = images_response(
        items,
        output_format=output_format,
        size=sizes.pop() if len(sizes) == 1 else None,
        metadata={
            "model": route.model,
            "provider": route.provider,
            "model_id": route.model_id,
            "cost_usd": served.cost_usd,
            "attempts": served.attempts,
            "request_id": request.state.request_id,
        },
    )
    return images_reply(body, pieces, headers={PROVIDER_HEADER: route.provider})


async def _items(state: GatewayState, asked: GatewayRequest, served) -> list[dict]:
    """data[]: base64 in the reply, or a URL of the gateway's own file store.

    The base64 is the provider's own text when the image was not converted (checked all the same:
    it decoded, and the image passed the check), else encoded here, off the event loop."""
    if asked.response_format == "url":
        return [
            {"url": await asyncio.to_thread(state.files.save, data, info)}
            for data, info in zip(served.images, served.infos, strict=True)
        ]
    if served.encoded is not None and len(served.encoded) == len(served.images):
        return [{"b64_json": text} for text in served.encoded]
    return await asyncio.to_thread(_b64_items, served.images)


def _b64_items(images: list[bytes]) -> list[dict]:
    import pybase64

    return [{"b64_json": pybase64.b64encode(data)} for data in images]


def _dry_run_body(forwarder: Forwarder, plan: Plan) -> dict:
    def route_entry(route):
        request = plan.requests[route.provider]
        return {
            "provider": route.provider,
            "model_id": route.model_id,
            "id": f"{route.provider}/{route.model}",
            "price_usd": forwarder.price_usd(route, request),
            "size": request.size,
            "aspect_ratio": request.aspect_ratio,
            "resolution": request.resolution,
            "breaker": forwarder.breakers.state(route.target),
        }

    order = [route_entry(r) for r in plan.routes]
    return {
        "object": "gateway.dry_run",
        "model": plan.resolved.model.name,
        "pinned": plan.resolved.pinned is not None,
        "allow_fallbacks": plan.fallbacks,
        "route": order[0],
        "order": order,
        "price_usd": order[0]["price_usd"],
    }


# --- models ----------------------------------------------------------------------------------


def _model_summary(model) -> dict:
    prices = [r.starting_price_usd for r in model.routes if r.starting_price_usd is not None]
    return {
        "id": model.name,
        "object": "model",
        "created": 0,
        "owned_by": "arena",
        "tasks": list(model.tasks),
        "baseline": model.baseline,
        "description": model.description,
        "providers": [r.provider for r in model.routes],
        "starting_price_usd": min(prices) if prices else None,
    }


async def list_models(request: Request) -> Response:
    state = _state(request)
    data = [_model_summary(m) for m in state.settings.models.values()]
    return json_reply({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    state = _state(request)
    forwarder = state.forwarder
    resolved = forwarder.resolve(request.path_params["model_id"])
    model = resolved.model
    figures = forwarder.figures.figures(model.name)
    policy = state.settings.gateway.policies.get(model.name) or RoutePolicy()
    order = order_routes(model.routes, figures, policy)
    routes = []
    for route in model.routes:
        cls = forwarder.classes[route.provider]
        measured = figures.get(route.provider)
        routes.append(
            {
                "id": f"{route.provider}/{model.name}",
                "provider": route.provider,
                "model_id": route.model_id,
                "protocol": state.settings.providers[route.provider].protocol,
                "price_usd": route.price_usd,
                "price_usd_by_tier": route.price_usd_by_tier,
                "starting_price_usd": route.starting_price_usd,
                "capabilities": route_capabilities(route.capabilities, cls, route.model_id),
                "figures": None
                if measured is None
                else {
                    "attempts": measured.attempts,
                    "successes": measured.successes,
                    "success_rate": measured.success_rate,
                    "p50_ms": measured.p50_ms,
                    "p95_ms": measured.p95_ms,
                    "score_ms": measured.score_ms,
                    "window_days": state.settings.gateway.window_days,
                },
                "breaker": forwarder.breakers.state(route.target),
                "pinned": resolved.pinned is not None
                and resolved.pinned.provider == route.provider,
            }
        )
    body = _model_summary(model)
    body["routes"] = routes
    body["order"] = [r.provider for r in order]
    body["policy"] = {
        "order": list(policy.order),
        "sort": policy.sort,
        "max_p95_ms": policy.max_p95_ms,
        "allow_fallbacks": policy.allow_fallbacks,
    }
    return json_reply(body)


async def health(request: Request) -> Response:
    state = _state(request)
    return json_reply(
        {"ok": True, "models": len(state.settings.models), "loop_lag_ms": state.lag.figures()}
    )

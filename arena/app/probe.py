"""One request to one model@provider with its timing breakdown: for a person checking a key or an endpoint."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from arena.challenges import check_params_on_route, load_challenges
from arena.config import Route, Settings
from arena.errors import ConfigError
from arena.harness import CallResult, call_adapter, make_client, prepare_request
from arena.params import parse_capabilities, resolve_shape
from arena.providers import adapter_class, route_capabilities
from arena.providers.emulation import emulate
from arena.providers.local import started_local_providers


@dataclass
class ProbeResult:
    """What one probe saw; timings in milliseconds from the moment the request was sent."""

    target: str
    challenge: str
    task: str
    ok: bool
    sent: dict  # the shape fields as normalized for the model
    expected_px: tuple[int, int] | None = None
    failure_class: str | None = None
    error: str | None = None
    status_code: int | None = None
    retry_after_s: float | None = None
    timings: dict = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    format: str | None = None
    size_bytes: int | None = None
    images: int = 0
    cost_usd: float | None = None
    served_by: str | None = None
    request_id: str | None = None
    saved_to: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def find_route(settings: Settings, target: str) -> Route:
    """The route named MODEL@PROVIDER; a ConfigError listing the known ones otherwise."""
    model, at, provider = target.partition("@")
    for route in settings.routes:
        if at and route.model == model and route.provider == provider:
            return route
    known = ", ".join(sorted(r.target for r in settings.routes))
    raise ConfigError(settings.source, "target", f"no route {target!r} (known: {known})")


def probe(
    settings: Settings,
    target: str,
    challenge_slug: str,
    *,
    save_to: Path | None = None,
    transport: str = "aiohttp",
) -> ProbeResult:
    """Send the challenge's request once to MODEL@PROVIDER and report how it went. Stores nothing."""
    route = find_route(settings, target)
    model = settings.models[route.model]
    (challenge,) = load_challenges(settings.challenges_dir, [challenge_slug])
    if challenge.kind not in model.tasks:
        raise ConfigError(
            settings.source,
            f"models.{model.name}.tasks",
            f"{model.name} does not do {challenge.kind} (challenge {challenge.slug}); it does {', '.join(model.tasks)}",
        )
    provider = settings.providers[route.provider]
    source = f"challenge {challenge.slug} on {route.target}"
    adapter_cls = adapter_class(provider.protocol)
    check_params_on_route(challenge, route.target, provider.protocol, adapter_cls.parameters)
    capabilities = route_capabilities(route.capabilities, adapter_cls, route.model_id)
    request = prepare_request(challenge, route, adapter_cls)
    shape = resolve_shape(
        request.size,
        request.aspect_ratio,
        request.resolution,
        parse_capabilities(capabilities, source),
        adapter_cls.shape_form,
        source,
    )
    result = ProbeResult(
        target=route.target,
        challenge=challenge.slug,
        task=challenge.kind,
        ok=False,
        sent={
            "size": request.size,
            "aspect_ratio": request.aspect_ratio,
            "resolution": request.resolution,
        },
        expected_px=(shape.width_px, shape.height_px) if shape.width_px else None,
    )
    api_key = provider.api_key()  # a missing key is a config error, before any request
    with started_local_providers(settings) as urls:
        if route.provider in urls:
            provider = replace(provider, base_url=urls[route.provider])
        price_usd = route.price_for(challenge.resolution)
        call = asyncio.run(_send(provider, api_key, request, price_usd, transport))
    result.timings = call.timings_ms()
    result.cost_usd = call.cost_usd
    if call.reply is not None:
        result.images = len(call.reply.images)
        result.served_by, result.request_id = call.reply.served_by, call.reply.request_id
    if call.info is not None:
        result.width, result.height = call.info.width, call.info.height
        result.format, result.size_bytes = call.info.format, call.info.size_bytes
    if call.image is not None and save_to is not None:
        Path(save_to).write_bytes(call.image)
        result.saved_to = str(save_to)
    if call.ok:
        result.ok = True
    else:
        failure = call.failure
        result.failure_class, result.error = failure.failure_class, str(failure)
        result.status_code, result.retry_after_s = failure.status_code, failure.retry_after_s
    return result


async def _send(provider, api_key, request, price_usd, transport) -> CallResult:
    async with make_client(provider, transport) as client:
        adapter = emulate(adapter_class(provider.protocol)(provider, client, api_key))
        # The harness's own judgement of a reply: the probe shows what a run would record.
        return await call_adapter(adapter, request, price_usd)


def format_probe(result: ProbeResult) -> str:
    """The probe as text: outcome, what was sent, and each timing on its own line."""
    sent = (
        ", ".join(f"{k}={v}" for k, v in result.sent.items() if v is not None)
        or "provider defaults"
    )
    expected = (
        f" (expect {result.expected_px[0]}x{result.expected_px[1]})" if result.expected_px else ""
    )
    lines = [
        f"probe {result.target} with challenge {result.challenge} ({result.task})",
        f"  sent:    {sent}{expected}",
    ]
    if result.ok:
        cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
        lines.append(
            f"  result:  OK: {result.images} image{'' if result.images == 1 else 's'}, first {result.width}x{result.height} "
            f"{result.format}, {result.size_bytes} bytes; cost {cost}"
        )
    else:
        status = f" (HTTP {result.status_code})" if result.status_code else ""
        retry = (
            f"; retry after {result.retry_after_s:g} s" if result.retry_after_s is not None else ""
        )
        lines.append(f"  result:  FAILED {result.failure_class}{status}: {result.error}{retry}")
    for label, key, meaning in (
        ("wait", "client_wait_ms", "ready -> handed to a connection (counted in no other figure)"),
        ("ttfb", "ttfb_ms", "request sent -> first byte of the reply carrying the result"),
        ("partial", "first_partial_ms", "request sent -> first partial image (streaming)"),
        ("queue", "queue_ms", "submit acknowledged -> started (queued providers)"),
        ("processing", "processing_ms", "the provider's own figure for the work"),
        ("download", "download_ms", "transfer of the image bytes"),
        ("generation", "generation_ms", "request sent -> image bytes in hand"),
    ):
        value = result.timings.get(key)
        shown = "-" if value is None else f"{value:,.1f} ms"
        lines.append(f"  {label + ':':<11} {shown:>12}   {meaning}")
    if result.served_by or result.request_id:
        lines.append(
            f"  served by {result.served_by or '-'}; request id {result.request_id or '-'}"
        )
    if result.saved_to:
        lines.append(f"  image saved to {result.saved_to}")
    return "\n".join(lines) + "\n"

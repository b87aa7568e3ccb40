"""Emulated parameters: `n` by parallel single-image requests, `output_format` by converting the image.

Each adapter class's `parameters` table says which parameters its provider cannot take ("emulated");
this wrapper makes the request vocabulary hold for every adapter anyway, without the adapters knowing.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

from arena.errors import ImageError, ProviderError
from arena.images import open_image
from arena.params import handling_for
from arena.providers.base import Adapter, ImageRequest, ProviderReply, Stopwatch

FACTS = (
    "protocol",
    "needs_key",
    "shape_form",
    "parameters",
    "default_capabilities",
    "baseline",
    "default_base_url",
)
EMULABLE = ("n", "output_format", "response_format")
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}


def convert_image(data: bytes, output_format: str, compression: int | None = None) -> bytes:
    """Re-encode image bytes as png, jpeg or webp (compression 0-100 as OpenAI defines it)."""
    target = PIL_FORMATS.get(output_format.lower())
    if target is None:
        raise ProviderError(
            "client_error", f"output_format {output_format!r} is not png, jpeg or webp"
        )
    try:
        image = open_image(data)
    except ImageError as exc:
        raise ProviderError("invalid_image", f"cannot convert the returned image: {exc}") from None
    if image.format == target:
        return data
    if target == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    options = {}
    if target in ("JPEG", "WEBP"):
        # OpenAI's output_compression is a compression level (100 = least compressed = best quality).
        options["quality"] = 100 if compression is None else max(1, min(100, int(compression)))
    image.save(buffer, format=target, **options)
    return buffer.getvalue()


class EmulatingAdapter(Adapter):
    """Wraps an adapter; emulates what its protocol's handling table marks as emulated."""

    def __init__(self, inner: Adapter) -> None:
        super().__init__(inner.provider, inner.client, None)
        self.inner = inner
        for fact in FACTS:  # the wrapper answers for the protocol it wraps
            setattr(self, fact, getattr(inner, fact))

    def __repr__(self) -> str:
        return f"<emulated {self.inner!r}>"

    def capabilities_for(self, model_id: str) -> dict:
        return self.inner.capabilities_for(model_id)

    def _emulated(self, parameter: str) -> bool:
        return handling_for(self.inner.parameters, parameter).kind == "emulated"

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        params = dict(request.params)
        output_format = compression = None
        if self._emulated("output_format") and "output_format" in params:
            output_format = params.pop("output_format")
            compression = params.pop("output_compression", None)
        if self._emulated("response_format"):
            params.pop("response_format", None)  # bytes are downloaded at once either way
        inner_request = replace(request, params=params)
        if request.n > 1 and self._emulated("n"):
            reply = await self._parallel(replace(inner_request, n=1), request.n, watch)
        else:
            reply = await self.inner.generate(inner_request, watch)
        if output_format:
            # After the "done" mark: our own conversion never counts as the provider's time.
            reply.images = [
                await asyncio.to_thread(convert_image, data, output_format, compression)
                for data in reply.images
            ]
            reply.encoded = None  # the provider's base64 is of the images before conversion
        return reply

    async def _parallel(self, request: ImageRequest, n: int, watch: Stopwatch) -> ProviderReply:
        """n single-image requests at once; timed from the first send to the last image in hand."""
        watches = [Stopwatch() for _ in range(n)]
        replies = await asyncio.gather(*(self.inner.generate(request, w) for w in watches))
        started = [w for w in watches if w.sent_ns is not None]
        first = min(started, key=lambda w: w.sent_ns)
        watch.sent_ns, watch.sent_at = first.sent_ns, first.sent_at
        watch.ready_ns, watch.handed_ns = first.ready_ns, first.handed_ns
        for mark in ("ttfb", "download_start"):
            values = [w.marks_ns[mark] for w in watches if mark in w.marks_ns]
            if values:
                watch.marks_ns[mark] = min(values)
        watch.marks_ns["done"] = max(w.marks_ns["done"] for w in watches)
        costs = [r.cost_usd for r in replies]
        encoded = [r.encoded for r in replies]
        return ProviderReply(
            images=[image for r in replies for image in r.images],
            encoded=None if None in encoded else [text for e in encoded for text in e],
            cost_usd=sum(costs) if all(c is not None for c in costs) else None,
            served_by=replies[0].served_by,
            request_id=replies[0].request_id,
            queue_ms=max((r.queue_ms for r in replies if r.queue_ms is not None), default=None),
            processing_ms=max(
                (r.processing_ms for r in replies if r.processing_ms is not None), default=None
            ),
            first_partial_ms=min(
                (r.first_partial_ms for r in replies if r.first_partial_ms is not None),
                default=None,
            ),
            extra={"emulated_n": n},
        )


def emulate(adapter: Adapter) -> Adapter:
    """The adapter itself when its protocol needs no emulation, else the wrapper."""
    needs = any(handling_for(adapter.parameters, p).kind == "emulated" for p in EMULABLE)
    return EmulatingAdapter(adapter) if needs else adapter

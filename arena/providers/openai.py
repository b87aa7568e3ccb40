"""The OpenAI images protocol (OpenAI itself, OpenAI-compatible gateways, and arena's local provider)."""

from __future__ import annotations

import httpx

from arena.errors import ProviderError
from arena.providers.base import (
    Adapter,
    ImageRequest,
    ProviderReply,
    Stopwatch,
    decode_b64,
    error_from_status,
    parse_json,
)

GATEWAY_PROVIDER_HEADERS = ("x-lumenfall-provider", "x-provider", "x-served-by", "openrouter-provider")


class OpenAIAdapter(Adapter):
    """POST /images/generations (JSON) and /images/edits (multipart with repeated image[])."""

    protocol = "openai"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def build_request(self, request: ImageRequest) -> httpx.Request:
        fields: dict[str, object] = {"model": request.model_id, "prompt": request.prompt}
        if request.n != 1:
            fields["n"] = request.n
        if request.size:
            fields["size"] = request.size.replace(":", "x") if "x" not in request.size else request.size
        fields.update(request.params)
        base = self.provider.base_url
        if request.task == "edit":
            files = [("image[]", (img.name, img.data, img.mime)) for img in request.images]
            data = {k: str(v) for k, v in fields.items()}
            return self.client.build_request(
                "POST", f"{base}/images/edits", data=data, files=files, headers=self._headers()
            )
        return self.client.build_request("POST", f"{base}/images/generations", json=fields, headers=self._headers())

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        http_request = self.build_request(request)
        watch.start()
        try:
            response = await self.client.send(http_request, stream=True)
            try:
                watch.mark("ttfb")
                body = await response.aread()
                watch.mark("body_done")
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise ProviderError("timeout", "no complete reply within the timeout") from None
        except httpx.TransportError as exc:
            raise ProviderError("network", f"{type(exc).__name__}") from None
        if response.status_code >= 400:
            raise error_from_status(response.status_code, response.headers, body.decode("utf-8", "replace"), self.redact)
        return await self.read_reply(body, response.headers, watch)

    async def read_reply(self, body: bytes, headers: httpx.Headers, watch: Stopwatch) -> ProviderReply:
        data = parse_json(body, "images reply")
        items = data.get("data")
        if items is None:
            raise ProviderError("bad_response", "reply has no 'data' field")
        if not isinstance(items, list):
            raise ProviderError("bad_response", "'data' is not a list")
        if not items:
            raise ProviderError("empty_output", "reply carried no image")
        images: list[bytes] = []
        urls: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ProviderError("bad_response", f"data[{i}] is not an object")
            if item.get("b64_json"):
                images.append(decode_b64(item["b64_json"], f"data[{i}].b64_json"))
            elif item.get("url"):
                urls.append(str(item["url"]))
            else:
                raise ProviderError("empty_output", f"data[{i}] has neither b64_json nor url")
        if urls:
            for url in urls:
                images.append(await self.download(url, watch))
        else:
            # The image arrived inline: bytes were in hand when the body ended.
            watch.marks_ns["done"] = watch.marks_ns["body_done"]
            watch.marks_ns["download_start"] = watch.marks_ns["ttfb"]
        cost = None
        metadata = data.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("cost"), int | float):
            cost = float(metadata["cost"])
        served_by = next((headers[h] for h in GATEWAY_PROVIDER_HEADERS if h in headers), None)
        return ProviderReply(
            images=images, cost_usd=cost, served_by=served_by,
            request_id=headers.get("x-request-id"),
            processing_ms=_float_or_none(headers.get("openai-processing-ms")),
        )


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

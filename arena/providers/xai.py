"""The xAI image protocol: synchronous JSON generations and edits, aspect_ratio + resolution, silent moderation."""

from __future__ import annotations

import httpx

from arena.errors import ProviderError
from arena.params import (
    NO_STREAMING,
    OUTPUT_EMULATED,
    SHAPE_AS_RATIO,
    Handling,
    requested_ratio,
    requested_tier,
    snap_ratio,
    snap_tier,
)
from arena.providers.base import Adapter, ImageRequest, ProviderReply, Stopwatch
from arena.providers.wire import decode_b64, error_from_status, exchange, parse_json, stamp

USD_TICKS = 1e10  # usage.cost_in_usd_ticks: 10^10 ticks are one US dollar
REFUSAL_WORDS = ("moderation", "content policy", "safety", "not allowed", "blocked")
TIERS = ("1k", "2k")  # the only resolutions xAI takes
LATER_RATIOS = ("21:9", "5:2")  # seen accepted since Aug 2026; sent when a route's table asks


class XAIAdapter(Adapter):
    """POST /images/generations and /images/edits (JSON only; input images as URLs or data URIs)."""

    protocol = "xai"
    needs_key = True
    shape_form = "ratio"
    parameters = {
        **NO_STREAMING,
        **SHAPE_AS_RATIO,
        "resolution": Handling("converted", "resolution", "nearest tier, lower-case (1k, 2k)"),
        "n": Handling("passthrough", "n"),
        "response_format": Handling("passthrough", "response_format"),
        "output_format": OUTPUT_EMULATED["output_format"],
        "output_compression": OUTPUT_EMULATED["output_compression"],
        "images": Handling("converted", "image / images[]", "data URIs, {url} objects, at most 3"),
    }
    # docs.x.ai images: the aspect_ratio enum and the two tiers; short sides are even in its tables.
    default_capabilities = {
        "aspect_ratios": ["1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9"]
        + ["9:20", "20:9", "1:2", "2:1", "auto"],
        "resolutions": ["1k", "2k"],
        "short_side_multiple": 2,
    }

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def build_body(self, request: ImageRequest) -> dict:
        # xAI rejects `size` ("Argument not supported: size"): shape and scale go as ratio and tier.
        body: dict[str, object] = {"model": request.model_id, "prompt": request.prompt}
        if request.n != 1:
            body["n"] = request.n
        # Whatever the request asks, only values of xAI's enums are sent (a 400 otherwise).
        known = tuple(self.default_capabilities["aspect_ratios"])
        ratio = snap_ratio(
            requested_ratio(request.size, request.aspect_ratio), known, (*known, *LATER_RATIOS)
        )
        tier = snap_tier(requested_tier(request.size, request.resolution), TIERS)
        if ratio:
            body["aspect_ratio"] = ratio
        if tier:
            body["resolution"] = tier  # xAI spells tiers "1k" / "2k"
        if request.task == "edit":
            refs = [{"url": image.data_uri(), "type": "image_url"} for image in request.images]
            if len(refs) == 1:
                body["image"] = refs[0]
            else:
                body["images"] = (
                    refs  # mutually exclusive with `image`; the prompt names <IMAGE_0>...
                )
        body.update(request.params)
        return body

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        path = "images/edits" if request.task == "edit" else "images/generations"
        http_request = self.client.build_request(
            "POST",
            f"{self.provider.base_url}/{path}",
            json=self.build_body(request),
            headers=self._headers(),
        )
        watch.start()
        response, body, headers_ns = await exchange(self, http_request, "xAI images request")
        stamp(watch, "ttfb", headers_ns)
        watch.mark("body_done")
        if response.status_code >= 400:
            raise self.error_from_reply(response, body)
        return await self.read_reply(body, response.headers, watch)

    def error_from_reply(self, response: httpx.Response, body: bytes) -> ProviderError:
        error = error_from_status(
            response.status_code, response.headers, body.decode("utf-8", "replace"), self.redact
        )
        # xAI has no documented refusal code; its safety blocks arrive as 4xx (403 seen) whose
        # text says so, where a 403 would otherwise be taken for a rejected key.
        maybe_refusal = error.failure_class == "client_error" or (
            error.failure_class == "auth" and error.status_code == 403
        )
        if maybe_refusal and any(w in str(error).lower() for w in REFUSAL_WORDS):
            said = str(error).split(": ", 1)[1]
            return ProviderError("refused", said, status_code=error.status_code)
        return error

    async def read_reply(
        self, body: bytes, headers: httpx.Headers, watch: Stopwatch
    ) -> ProviderReply:
        data = parse_json(body, "xAI images reply")
        if data.get("block_reason"):
            raise ProviderError(
                "refused",
                self.redact(f"input blocked by moderation: {str(data['block_reason'])[:200]}"),
            )
        items = data.get("data")
        if items is not None and not isinstance(items, list):
            raise ProviderError("bad_response", "'data' is not a list")
        # A 200 with no image is how xAI reports moderation of the output (no error body is sent).
        if not items:
            raise ProviderError("refused", "reply carried no image (xAI's silent moderation)")
        images: list[bytes] = []
        urls: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ProviderError("bad_response", f"data[{i}] is not an object")
            if item.get("respect_moderation") is False:
                raise ProviderError(
                    "refused", f"data[{i}] was withheld by moderation (respect_moderation: false)"
                )
            if item.get("b64_json"):
                images.append(
                    decode_b64(item["b64_json"], f"data[{i}].b64_json")
                )  # strips a data: prefix
            elif item.get("url"):
                urls.append(str(item["url"]))
            else:
                raise ProviderError(
                    "refused", f"data[{i}] has neither url nor b64_json (xAI's silent moderation)"
                )
        for url in urls:
            images.append(await self.download(url, watch))  # temporary URLs: fetched at once
        if not urls:
            stamp(watch, "download_start", watch.marks_ns["ttfb"])
            stamp(watch, "done", watch.marks_ns["body_done"])
        return ProviderReply(
            images=images,
            cost_usd=_cost_usd(data.get("usage")),
            request_id=headers.get("x-request-id"),
            extra={"revised_prompt": items[0].get("revised_prompt")}
            if items[0].get("revised_prompt")
            else {},
        )


def _cost_usd(usage: object) -> float | None:
    if not isinstance(usage, dict):
        return None
    ticks = usage.get("cost_in_usd_ticks")
    if isinstance(ticks, bool) or not isinstance(ticks, int | float):
        return None
    return ticks / USD_TICKS

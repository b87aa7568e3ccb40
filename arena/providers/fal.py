"""The fal queue protocol: submit, poll the returned status URL, fetch the result, cancel what we abandon."""

from __future__ import annotations

import asyncio
import json

import httpx

from arena.errors import ProviderError
from arena.params import (
    OUTPUT_EMULATED,
    SHAPE_AS_RATIO,
    Handling,
    requested_pixels,
    requested_ratio,
)
from arena.providers.base import (
    Adapter,
    ImageRequest,
    ProviderReply,
    Stopwatch,
    decode_b64,
    parse_json,
)
from arena.providers.wire import cancel_on_exit, default_error, exchange, get_status, stamp

# Endpoints whose input takes a list of images (`image_urls`) even for one image; others take `image_url`.
IMAGE_LIST_MARKERS = (
    "nano-banana",
    "/multi",
    "seedream",
    "gpt-image",
    "flux-2",
    "qwen-image-edit-plus",
)


class FalAdapter(Adapter):
    """POST queue.fal.run/{endpoint} -> request_id + status/response/cancel URLs, used exactly as returned."""

    protocol = "fal"
    needs_key = True
    shape_form = "ratio"
    parameters = {
        **SHAPE_AS_RATIO,
        "size": Handling(
            "converted",
            "image_size {width, height} or aspect_ratio",
            "pixels if the table lists sizes",
        ),
        "n": Handling("renamed", "num_images"),
        "output_format": Handling("passthrough", "output_format"),
        "output_compression": OUTPUT_EMULATED["output_compression"],
        "response_format": OUTPUT_EMULATED["response_format"],
        "images": Handling("converted", "image_url / image_urls", "data URIs"),
    }
    # The ratios fal's FLUX Kontext, nano-banana and grok-imagine endpoints all take; no tier
    # (most endpoints have no resolution input: a route whose model has one declares it).
    default_capabilities = {"aspect_ratios": ["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16"]}

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._api_key}"} if self._api_key else {}  # Key, not Bearer

    def build_body(self, request: ImageRequest) -> dict:
        params = dict(request.params)
        image_field = params.pop("arena_image_field", None)  # a directive to us, not a model input
        body: dict[str, object] = {"prompt": request.prompt}
        if request.n != 1:
            body["num_images"] = request.n
        pixels = requested_pixels(request.size)
        if pixels:
            body["image_size"] = {"width": pixels[0], "height": pixels[1]}
        elif requested_ratio(request.size, request.aspect_ratio):
            body["aspect_ratio"] = requested_ratio(request.size, request.aspect_ratio)
        if request.resolution:
            body["resolution"] = request.resolution
        if request.task == "edit" and request.images:
            uris = [image.data_uri() for image in request.images]
            if image_field:  # "name[]" asks for a list even for one image
                field, as_list = (
                    image_field.removesuffix("[]"),
                    image_field.endswith("[]") or len(uris) > 1,
                )
            else:
                as_list = len(uris) > 1 or any(
                    m in endpoint_for(request) for m in IMAGE_LIST_MARKERS
                )
                field = "image_urls" if as_list else "image_url"
            body[field] = uris if as_list else uris[0]
        body.update(params)
        return body

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        headers = self._headers()
        submit = self.client.build_request(
            "POST",
            f"{self.provider.base_url}/{endpoint_for(request)}",
            json=self.build_body(request),
            headers=headers,
        )
        watch.start()
        response, body, ack_ns = await exchange(self, submit, "fal submit")
        stamp(watch, "submit_ack", ack_ns)
        if response.status_code >= 400:
            raise self.error_from_reply(response, body)
        job = parse_json(body, "fal submit reply")
        status_url, response_url = job.get("status_url"), job.get("response_url")
        if not (isinstance(status_url, str) and isinstance(response_url, str)):
            raise ProviderError("bad_response", "fal submit reply lacks status_url/response_url")
        # The returned URLs drop the endpoint's subpath (fal-ai/flux-pro/requests/<id> for
        # fal-ai/flux-pro/kontext), so they are used as given, never rebuilt from the endpoint id.
        cancel_url = job.get("cancel_url") or f"{response_url}/cancel"
        try:
            status = await self.wait_until_completed(status_url, watch)
        except (Exception, asyncio.CancelledError):
            # Our timeout or a failed poll: stop paying for work nobody will collect.
            await cancel_on_exit(self, "PUT", cancel_url, headers)
            raise
        result, body, ttfb_ns = await exchange(
            self, self.client.build_request("GET", response_url, headers=headers), "fal result"
        )
        stamp(watch, "ttfb", ttfb_ns)
        watch.mark("body_done")
        if result.status_code >= 400:
            raise self.error_from_reply(result, body)
        reply = await self.read_result(parse_json(body, "fal result"), watch)
        reply.request_id = job.get("request_id")
        self.set_phases(reply, status, watch)
        return reply

    async def wait_until_completed(self, status_url: str, watch: Stopwatch) -> dict:
        """Poll IN_QUEUE -> IN_PROGRESS -> COMPLETED, stamping when work started and ended."""
        while True:
            await asyncio.sleep(self.provider.poll_interval_s)
            status, at_ns = await get_status(
                self, status_url, self._headers(), "fal status", self.error_from_reply
            )
            state = status.get("status")
            if state == "IN_QUEUE":
                continue
            if state == "IN_PROGRESS":
                if "started" not in watch.marks_ns:
                    stamp(watch, "started", at_ns)
                continue
            if state == "COMPLETED":
                stamp(watch, "completed", at_ns)
                return status
            raise ProviderError(
                "bad_response",
                f"fal status {str(state)[:40]!r} is not one of IN_QUEUE, IN_PROGRESS, COMPLETED",
            )

    def set_phases(self, reply: ProviderReply, status: dict, watch: Stopwatch) -> None:
        metrics = status.get("metrics") if isinstance(status.get("metrics"), dict) else {}
        inference_s = metrics.get("inference_time")
        if isinstance(inference_s, int | float):
            reply.extra["inference_ms"] = inference_s * 1000
        if "started" in watch.marks_ns:
            reply.queue_ms = watch.ms("started", since="submit_ack")
            reply.processing_ms = watch.ms("completed", since="started")
        elif isinstance(inference_s, int | float):
            # The job ran entirely between two polls: fall back on the server's own processing time.
            reply.processing_ms = inference_s * 1000
            reply.queue_ms = max(
                0.0, watch.ms("completed", since="submit_ack") - reply.processing_ms
            )

    async def read_result(self, data: dict, watch: Stopwatch) -> ProviderReply:
        items = data.get("images")
        if items is None and isinstance(data.get("image"), dict):
            items = [data["image"]]  # single-image endpoints
        if not isinstance(items, list):
            raise ProviderError("bad_response", "fal result has no 'images' list")
        flags = (
            data.get("has_nsfw_concepts") if isinstance(data.get("has_nsfw_concepts"), list) else []
        )
        # A flagged image comes back blacked out: not an image of the prompt, so it is a refusal.
        kept = [item for i, item in enumerate(items) if not (i < len(flags) and flags[i] is True)]
        if items and not kept:
            raise ProviderError(
                "refused", "every image was flagged by the safety checker (has_nsfw_concepts)"
            )
        if not kept:
            raise ProviderError("empty_output", "fal result carried no image")
        images: list[bytes] = []
        downloaded = False
        for i, item in enumerate(kept):
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(url, str):
                raise ProviderError("bad_response", f"images[{i}] has no url")
            if url.startswith("data:"):  # sync_mode returns data URIs instead of CDN files
                images.append(decode_b64(url, f"images[{i}].url"))
            else:
                images.append(await self.download(url, watch))
                downloaded = True
        if not downloaded:
            stamp(watch, "download_start", watch.marks_ns["ttfb"])
            stamp(watch, "done", watch.marks_ns["body_done"])
        return ProviderReply(
            images=images, extra={"seed": data.get("seed")} if "seed" in data else {}
        )

    def error_from_reply(self, response: httpx.Response, body: bytes) -> ProviderError:
        error = default_error(self, response, body)
        try:
            detail = json.loads(body).get("detail")
        except (ValueError, AttributeError):
            return error
        if isinstance(detail, list) and any(
            isinstance(d, dict) and d.get("type") == "content_policy_violation" for d in detail
        ):
            first = next(
                d
                for d in detail
                if isinstance(d, dict) and d.get("type") == "content_policy_violation"
            )
            return ProviderError(
                "refused",
                self.redact(
                    f"HTTP {response.status_code} content_policy_violation: "
                    f"{str(first.get('msg', ''))[:200]}"
                ),
                status_code=response.status_code,
            )
        return error


def endpoint_for(request: ImageRequest) -> str:
    """The endpoint id for the task: fal serves a model's edits at another endpoint, so a route's
    model_id may name both as "TEXT_TO_IMAGE_ID | EDIT_ID" (e.g. "fal-ai/nano-banana | fal-ai/nano-banana/edit")."""
    text_to_image, _, edit = (part.strip() for part in request.model_id.partition("|"))
    return edit if request.task == "edit" and edit else text_to_image

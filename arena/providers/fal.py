"""The fal queue protocol: submit, poll the returned status URL, fetch the result, cancel what we abandon."""

from __future__ import annotations

import json

import httpx

from arena.errors import ProviderError
from arena.params import (
    NO_STREAMING,
    OUTPUT_EMULATED,
    SHAPE_AS_RATIO,
    Handling,
    requested_pixels,
    requested_ratio,
)
from arena.providers.base import ImageRequest, ProviderReply, Stopwatch
from arena.providers.queued import Job, Phase, QueuedAdapter
from arena.providers.wire import decode_b64, default_error

# fal's status words, in the order a job passes them.
PHASES = {"IN_QUEUE": Phase.QUEUED, "IN_PROGRESS": Phase.RUNNING, "COMPLETED": Phase.DONE}

# Endpoints whose input takes a list of images (`image_urls`) even for one image; others take `image_url`.
IMAGE_LIST_MARKERS = (
    "nano-banana",
    "/multi",
    "seedream",
    "gpt-image",
    "flux-2",
    "qwen-image-edit-plus",
)


class FalAdapter(QueuedAdapter):
    """POST queue.fal.run/{endpoint} -> request_id + status/response/cancel URLs, used exactly as returned."""

    protocol = "fal"
    needs_key = True
    shape_form = "ratio"
    parameters = {
        **NO_STREAMING,
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

    def submit_request(self, request: ImageRequest) -> httpx.Request:
        return self.client.build_request(
            "POST",
            f"{self.provider.base_url}/{endpoint_for(request)}",
            json=self.build_body(request),
            headers=self._headers(),
        )

    def read_job(self, submitted: dict, headers: httpx.Headers) -> Job:
        status_url, response_url = submitted.get("status_url"), submitted.get("response_url")
        if not (isinstance(status_url, str) and isinstance(response_url, str)):
            raise ProviderError("bad_response", "fal submit reply lacks status_url/response_url")
        # The returned URLs drop the endpoint's subpath (fal-ai/flux-pro/requests/<id> for
        # fal-ai/flux-pro/kontext), so they are used as given, never rebuilt from the endpoint id.
        return Job(
            submitted,
            id=submitted.get("request_id"),
            status_url=status_url,
            cancel_method="PUT",
            cancel_url=submitted.get("cancel_url") or f"{response_url}/cancel",
        )

    def phase_of(self, status: dict) -> Phase:
        """IN_QUEUE -> IN_PROGRESS -> COMPLETED; fal reports a failed job at its result URL."""
        state = status.get("status")
        phase = PHASES.get(state) if isinstance(state, str) else None
        if phase is None:
            raise ProviderError(
                "bad_response",
                f"fal status {str(state)[:40]!r} is not one of IN_QUEUE, IN_PROGRESS, COMPLETED",
            )
        return phase

    def result_request(self, job: Job, status: dict) -> httpx.Request:
        return self.client.build_request(
            "GET", job.submitted["response_url"], headers=self._headers()
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

    async def read_result(self, data: dict, job: Job, watch: Stopwatch) -> ProviderReply:
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
        for i, item in enumerate(kept):
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(url, str):
                raise ProviderError("bad_response", f"images[{i}] has no url")
            if url.startswith("data:"):  # sync_mode returns data URIs instead of CDN files
                images.append(decode_b64(url, f"images[{i}].url"))
            else:
                images.append(await self.download(url, watch))
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

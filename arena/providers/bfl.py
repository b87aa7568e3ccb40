"""The Black Forest Labs protocol: submit to /v1/{model}, poll the returned polling_url, fetch result.sample."""

from __future__ import annotations

import json

import httpx

from arena.errors import ProviderError
from arena.params import (
    NO_STREAMING,
    OUTPUT_EMULATED,
    SHAPE_AS_RATIO,
    Capabilities,
    Handling,
    fit_size,
    requested_dimensions,
    requested_ratio,
    snap_ratio,
)
from arena.providers.base import ImageRequest, ProviderReply, Stopwatch
from arena.providers.queued import Job, Phase, QueuedAdapter

PIXEL_MODELS = ("flux-2",)  # FLUX.2 takes width/height; Kontext and 1.1 take aspect_ratio
REFUSED_STATUSES = ("Request Moderated", "Content Moderated")  # input / output flagged; not charged
USD_PER_CREDIT = 0.01
KONTEXT_RATIO_BOUNDS = (9 / 21, 21 / 9)  # Kontext's aspect_ratio: anything between 9:21 and 21:9
FLUX2_LIMITS = Capabilities(size_multiple=16, min_px=64, max_pixels=4 * 1024 * 1024)  # 4 MP


class BFLAdapter(QueuedAdapter):
    """POST {base}/{model} with x-key -> {id, polling_url}; GET polling_url until Ready."""

    protocol = "bfl"
    needs_key = True
    shape_form = "ratio"
    parameters = {
        **NO_STREAMING,
        **SHAPE_AS_RATIO,
        "size": Handling(
            "converted", "width + height or aspect_ratio", "FLUX.2 takes pixels, Kontext ratios"
        ),
        "n": Handling("emulated", "", "parallel requests, one image each"),
        "output_format": Handling("passthrough", "output_format", "jpeg or png"),
        "output_compression": OUTPUT_EMULATED["output_compression"],
        "response_format": OUTPUT_EMULATED["response_format"],
        "images": Handling("renamed", "input_image, input_image_2..", "base64"),
    }
    # Kontext takes ratios between 21:9 and 9:21; FLUX.2 sizes them at 1K (its limit is 4 MP,
    # which a 2K tier passes at most ratios once sides are rounded to 16).
    default_capabilities = {
        "aspect_ratios": ["21:9", "16:9", "3:2", "4:3", "1:1", "3:4", "2:3", "9:16", "9:21"],
        "resolutions": ["1K"],
    }

    def _headers(self) -> dict[str, str]:
        return {"x-key": self._api_key, "accept": "application/json"} if self._api_key else {}

    def build_body(self, request: ImageRequest) -> dict:
        body: dict[str, object] = {"prompt": request.prompt}
        # Whatever the request asks, only what the API takes is sent (a 422 otherwise).
        if request.model_id.startswith(PIXEL_MODELS):
            dims = requested_dimensions(
                request.size, request.aspect_ratio, request.resolution, multiple_px=16
            )
            if dims:
                body["width"], body["height"] = fit_size(*dims, FLUX2_LIMITS)
        else:
            ratio = snap_ratio(
                requested_ratio(request.size, request.aspect_ratio),
                tuple(self.default_capabilities["aspect_ratios"]),
                tuple(self.default_capabilities["aspect_ratios"]),
                bounds=KONTEXT_RATIO_BOUNDS,
            )
            if ratio:
                body["aspect_ratio"] = ratio
        for i, image in enumerate(request.images):
            # input_image, input_image_2, input_image_3...: base64 without a data: prefix
            body["input_image" if i == 0 else f"input_image_{i + 1}"] = image.base64
        body.update(request.params)
        return body

    def submit_request(self, request: ImageRequest) -> httpx.Request:
        return self.client.build_request(
            "POST",
            f"{self.provider.base_url}/{request.model_id}",
            json=self.build_body(request),
            headers=self._headers(),
        )

    def read_job(self, submitted: dict, headers: httpx.Headers) -> Job:
        polling_url = submitted.get("polling_url")
        if not isinstance(polling_url, str):
            if not isinstance(submitted.get("id"), str):
                raise ProviderError(
                    "bad_response", "BFL submit reply has neither polling_url nor id"
                )
            # older API replies
            polling_url = f"{self.provider.base_url}/get_result?id={submitted['id']}"
        # polling_url may name another cluster (api.eu2.bfl.ai): used verbatim, with the key.
        # BFL has no cancel: an abandoned job runs to its end.
        return Job(submitted, id=submitted.get("id"), status_url=polling_url)

    def phase_of(self, status: dict) -> Phase:
        """`Pending` (running once progress > 0), then `Ready` or a failure status."""
        state = status.get("status")
        if state == "Pending":
            progress = status.get("progress")
            running = isinstance(progress, int | float) and progress > 0
            return Phase.RUNNING if running else Phase.QUEUED
        if state == "Ready":
            return Phase.DONE
        if state in (*REFUSED_STATUSES, "Error", "Task not found"):
            return Phase.FAILED
        raise self.error_for_status(state, status)

    def failure_of(self, status: dict) -> ProviderError:
        return self.error_for_status(status.get("status"), status)

    async def read_result(self, result: dict, job: Job, watch: Stopwatch) -> ProviderReply:
        """A Ready reply's result.sample is a signed URL, valid 10 minutes: fetched at once."""
        found = result.get("result")
        sample = found.get("sample") if isinstance(found, dict) else None
        if not isinstance(sample, str):
            raise ProviderError("bad_response", "BFL Ready reply has no result.sample URL")
        reply = ProviderReply(images=[await self.download(sample, watch)])
        cost = job.submitted.get("cost")
        if isinstance(cost, int | float):
            reply.extra["cost_credits"] = cost
            reply.extra["cost_usd_reported"] = cost * USD_PER_CREDIT
        return reply

    def error_for_status(self, state: object, data: dict) -> ProviderError:
        details = self.redact(json.dumps(data.get("details"))[:200]) if data.get("details") else ""
        if state in REFUSED_STATUSES:
            return ProviderError("refused", f"BFL: {state} {details}".strip())
        if state == "Error":
            return ProviderError("server_error", f"BFL reported Error {details}".strip())
        if state == "Task not found":
            return ProviderError("client_error", "BFL: Task not found (unknown or expired id)")
        return ProviderError(
            "bad_response", f"BFL status {str(state)[:40]!r} is not a known status"
        )

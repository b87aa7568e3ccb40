"""The Black Forest Labs protocol: submit to /v1/{model}, poll the returned polling_url, fetch result.sample."""

from __future__ import annotations

import asyncio
import base64
import json

from arena.errors import ProviderError
from arena.params import (
    OUTPUT_EMULATED,
    SHAPE_AS_RATIO,
    Handling,
    requested_dimensions,
    requested_ratio,
)
from arena.providers.base import Adapter, ImageRequest, ProviderReply, Stopwatch, parse_json
from arena.providers.wire import default_error, exchange, get_status, stamp

PIXEL_MODELS = ("flux-2",)  # FLUX.2 takes width/height; Kontext and 1.1 take aspect_ratio
REFUSED_STATUSES = ("Request Moderated", "Content Moderated")  # input / output flagged; not charged
USD_PER_CREDIT = 0.01


class BFLAdapter(Adapter):
    """POST {base}/{model} with x-key -> {id, polling_url}; GET polling_url until Ready."""

    protocol = "bfl"
    needs_key = True
    shape_form = "ratio"
    parameters = {
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
        if request.model_id.startswith(PIXEL_MODELS):
            dims = requested_dimensions(
                request.size, request.aspect_ratio, request.resolution, multiple_px=16
            )
            if dims:
                body["width"], body["height"] = dims
        elif requested_ratio(request.size, request.aspect_ratio):
            body["aspect_ratio"] = requested_ratio(request.size, request.aspect_ratio)
        for i, image in enumerate(request.images):
            # input_image, input_image_2, input_image_3...: base64 without a data: prefix
            body["input_image" if i == 0 else f"input_image_{i + 1}"] = base64.b64encode(
                image.data
            ).decode("ascii")
        body.update(request.params)
        return body

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        headers = self._headers()
        submit = self.client.build_request(
            "POST",
            f"{self.provider.base_url}/{request.model_id}",
            json=self.build_body(request),
            headers=headers,
        )
        watch.start()
        response, body, ack_ns = await exchange(self, submit, "BFL submit")
        stamp(watch, "submit_ack", ack_ns)
        if response.status_code >= 400:
            raise default_error(self, response, body)
        job = parse_json(body, "BFL submit reply")
        polling_url = job.get("polling_url")
        if not isinstance(polling_url, str):
            if not isinstance(job.get("id"), str):
                raise ProviderError(
                    "bad_response", "BFL submit reply has neither polling_url nor id"
                )
            polling_url = f"{self.provider.base_url}/get_result?id={job['id']}"  # older API replies
        # polling_url may name another cluster (api.eu2.bfl.ai): used verbatim, with the key.
        result = await self.wait_until_ready(polling_url, watch)
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str):
            raise ProviderError("bad_response", "BFL Ready reply has no result.sample URL")
        image = await self.download(sample, watch)  # signed URL, valid 10 minutes
        reply = ProviderReply(images=[image], request_id=job.get("id"))
        if isinstance(job.get("cost"), int | float):
            reply.extra["cost_credits"] = job["cost"]
            reply.extra["cost_usd_reported"] = job["cost"] * USD_PER_CREDIT
        if "started" in watch.marks_ns:
            reply.queue_ms = watch.ms("started", since="submit_ack")
            reply.processing_ms = watch.ms("completed", since="started")
        return reply

    async def wait_until_ready(self, polling_url: str, watch: Stopwatch) -> dict | None:
        """Poll until a terminal status; `Pending` with progress > 0 marks the start of the work."""
        while True:
            await asyncio.sleep(self.provider.poll_interval_s)
            data, at_ns = await get_status(self, polling_url, self._headers(), "BFL poll")
            state = data.get("status")
            if state == "Pending":
                progress = data.get("progress")
                if (
                    isinstance(progress, int | float)
                    and progress > 0
                    and "started" not in watch.marks_ns
                ):
                    stamp(watch, "started", at_ns)
                continue
            if state == "Ready":
                # This poll's reply is the one carrying the result: its headers are the TTFB.
                stamp(watch, "completed", at_ns)
                stamp(watch, "ttfb", at_ns)
                watch.mark("body_done")
                return data.get("result")
            raise self.error_for_status(state, data)

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

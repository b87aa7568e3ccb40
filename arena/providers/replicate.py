"""The Replicate predictions protocol: create with `Prefer: wait`, poll urls.get if still running, fetch output URLs."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import httpx

from arena.errors import ProviderError
from arena.params import OUTPUT_EMULATED, SHAPE_AS_RATIO, Handling, requested_ratio
from arena.providers.base import (
    Adapter,
    ImageRequest,
    ProviderReply,
    Stopwatch,
    decode_b64,
    parse_json,
)
from arena.providers.wire import cancel_on_exit, default_error, exchange, get_status, stamp

MAX_WAIT_S = 60  # Replicate holds a `Prefer: wait` request at most this long
TERMINAL = ("succeeded", "failed", "canceled")
# Input images are model-specific fields: (model id prefix, field, takes a list).
IMAGE_FIELDS = (
    ("google/nano-banana", "image_input", True),
    ("black-forest-labs/flux-kontext", "input_image", False),
    ("xai/grok-imagine-image", "image", False),
)
REFUSAL_PATTERN = re.compile(
    r"E005|sensitive|nsfw|safety|content policy|moderat|flagged", re.IGNORECASE
)


class ReplicateAdapter(Adapter):
    """POST /models/{owner}/{name}/predictions (or /predictions with a version) and GET urls.get."""

    protocol = "replicate"
    needs_key = True
    shape_form = "ratio"
    parameters = {
        **SHAPE_AS_RATIO,
        "n": Handling("emulated", "", "parallel predictions, one image each"),
        "output_format": Handling("passthrough", "input.output_format"),
        "output_compression": OUTPUT_EMULATED["output_compression"],
        "response_format": OUTPUT_EMULATED["response_format"],
        "images": Handling("converted", "input.image_input / input_image", "data URIs"),
    }
    # The ratios nano-banana, flux-kontext and grok-imagine all take on Replicate; no tier (few
    # models have a resolution input: a route whose model has one declares it).
    default_capabilities = {"aspect_ratios": ["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16"]}

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def endpoint_and_body(self, request: ImageRequest) -> tuple[str, dict]:
        model_input = self.build_input(request)
        base = self.provider.base_url
        if ":" in request.model_id or "/" not in request.model_id:
            # owner/name:version or a bare version id: the generic endpoint takes the version
            return f"{base}/predictions", {
                "version": request.model_id.rpartition(":")[2],
                "input": model_input,
            }
        return f"{base}/models/{request.model_id}/predictions", {"input": model_input}

    def build_input(self, request: ImageRequest) -> dict:
        params = dict(request.params)
        directive = params.pop("arena_image_field", None)  # a directive to us, not a model input
        model_input: dict[str, object] = {"prompt": request.prompt}
        if requested_ratio(request.size, request.aspect_ratio):
            model_input["aspect_ratio"] = requested_ratio(request.size, request.aspect_ratio)
        if request.resolution:
            model_input["resolution"] = request.resolution
        if request.images:
            uris = [image.data_uri() for image in request.images]
            field, as_list = _image_field(request.model_id, directive, len(uris))
            if not as_list and len(uris) > 1:
                raise ProviderError(
                    "client_error", f"{request.model_id}'s {field} takes one image, got {len(uris)}"
                )
            model_input[field] = uris if as_list else uris[0]
        model_input.update(params)
        return model_input

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        url, body = self.endpoint_and_body(request)
        wait_s = max(1, min(MAX_WAIT_S, int(self.provider.timeout_s)))
        headers = self._headers()
        create = self.client.build_request(
            "POST", url, json=body, headers={**headers, "Prefer": f"wait={wait_s}"}
        )
        watch.start()
        response, raw, ack_ns = await exchange(self, create, "Replicate create prediction")
        stamp(watch, "submit_ack", ack_ns)
        if response.status_code >= 400:
            raise default_error(self, response, raw)
        prediction = parse_json(raw, "Replicate prediction")
        if prediction.get("status") in TERMINAL:
            stamp(watch, "completed", ack_ns)
            stamp(watch, "ttfb", ack_ns)
            watch.mark("body_done")
        else:
            prediction = await self.poll_until_done(prediction, response.headers, watch)
        outputs = self.outputs_of(prediction)
        images = await self.fetch_outputs(outputs, watch)
        reply = ProviderReply(images=images, request_id=prediction.get("id"))
        self.set_phases(reply, prediction, watch)
        return reply

    async def poll_until_done(
        self, prediction: dict, headers: httpx.Headers, watch: Stopwatch
    ) -> dict:
        urls = prediction.get("urls") if isinstance(prediction.get("urls"), dict) else {}
        get_url = urls.get("get") or headers.get("location")
        if not get_url and prediction.get("id"):
            get_url = f"{self.provider.base_url}/predictions/{prediction['id']}"
        if not get_url:
            raise ProviderError(
                "bad_response", "Replicate prediction has no id or urls.get to poll"
            )
        cancel_url = urls.get("cancel") or f"{get_url}/cancel"
        at_ns = watch.marks_ns["submit_ack"]
        try:
            while True:
                if prediction.get("status") == "processing" and "started" not in watch.marks_ns:
                    stamp(watch, "started", at_ns)
                await asyncio.sleep(self.provider.poll_interval_s)
                prediction, at_ns = await get_status(
                    self, get_url, self._headers(), "Replicate poll"
                )
                state = prediction.get("status")
                if state in TERMINAL:
                    stamp(watch, "completed", at_ns)
                    stamp(watch, "ttfb", at_ns)  # this reply carries the output URLs
                    watch.mark("body_done")
                    return prediction
                if state not in ("starting", "processing"):
                    raise ProviderError(
                        "bad_response", f"Replicate status {str(state)[:40]!r} is not known"
                    )
        except (Exception, asyncio.CancelledError):
            await cancel_on_exit(self, "POST", cancel_url, self._headers())  # stop paying for it
            raise

    def outputs_of(self, prediction: dict) -> list[str]:
        state = prediction.get("status")
        error = self.redact(str(prediction.get("error") or ""))[:300]
        if state == "failed":
            # Safety filters report as a failed prediction whose error names them (E005).
            failure = "refused" if REFUSAL_PATTERN.search(error) else "server_error"
            raise ProviderError(failure, f"prediction failed: {error or 'no error given'}")
        if state == "canceled":
            raise ProviderError("server_error", "prediction was canceled on Replicate's side")
        output = prediction.get("output")
        outputs = output if isinstance(output, list) else [output] if output is not None else []
        if not outputs:
            raise ProviderError("empty_output", "prediction succeeded with no output")
        if not all(isinstance(o, str) for o in outputs):
            raise ProviderError("bad_response", "prediction output is not a URL or a list of URLs")
        return outputs

    async def fetch_outputs(self, outputs: list[str], watch: Stopwatch) -> list[bytes]:
        images = []
        for i, output in enumerate(outputs):
            if output.startswith("data:"):
                images.append(decode_b64(output, f"output[{i}]"))
            else:
                images.append(await self.download(output, watch))  # replicate.delivery: 1 hour
        if "download_start" not in watch.marks_ns:
            stamp(watch, "download_start", watch.marks_ns["ttfb"])
            stamp(watch, "done", watch.marks_ns["body_done"])
        return images

    def set_phases(self, reply: ProviderReply, prediction: dict, watch: Stopwatch) -> None:
        # Replicate's own timestamps are exact where our polls (and Prefer: wait) see only snapshots.
        created, started = (
            _instant(prediction.get("created_at")),
            _instant(prediction.get("started_at")),
        )
        metrics = prediction.get("metrics") if isinstance(prediction.get("metrics"), dict) else {}
        predict_s = metrics.get("predict_time")
        if created and started:
            reply.queue_ms = max(0.0, (started - created).total_seconds() * 1000)
        elif "started" in watch.marks_ns:
            reply.queue_ms = watch.ms("started", since="submit_ack")
        if isinstance(predict_s, int | float):
            reply.processing_ms = predict_s * 1000
        elif "started" in watch.marks_ns:
            reply.processing_ms = watch.ms("completed", since="started")


def _image_field(model_id: str, directive: str | None, count: int) -> tuple[str, bool]:
    """The input field for images and whether it takes a list ("name[]" in a directive means a list)."""
    if directive:
        return directive.removesuffix("[]"), directive.endswith("[]") or count > 1
    for prefix, field, as_list in IMAGE_FIELDS:
        if model_id.startswith(prefix):
            return field, as_list
    return ("input_image", False) if count == 1 else ("image_input", True)


def _instant(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None

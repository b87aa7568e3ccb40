"""The Replicate predictions protocol: create with `Prefer: wait`, poll urls.get if still running, fetch output URLs."""

from __future__ import annotations

import re
from datetime import datetime

import httpx

from arena.errors import ProviderError
from arena.params import NO_STREAMING, OUTPUT_EMULATED, SHAPE_AS_RATIO, Handling, requested_ratio
from arena.providers.base import ImageRequest, ProviderReply, Stopwatch
from arena.providers.queued import Job, Phase, QueuedAdapter
from arena.providers.wire import decode_b64

MAX_WAIT_S = 60  # Replicate holds a `Prefer: wait` request at most this long
PHASES = {
    "starting": Phase.QUEUED,
    "processing": Phase.RUNNING,
    "succeeded": Phase.DONE,
    "failed": Phase.FAILED,
    "canceled": Phase.FAILED,
}
# Input images are model-specific fields: (model id prefix, field, takes a list).
IMAGE_FIELDS = (
    ("google/nano-banana", "image_input", True),
    ("black-forest-labs/flux-kontext", "input_image", False),
    ("xai/grok-imagine-image", "image", False),
)
REFUSAL_PATTERN = re.compile(
    r"E005|sensitive|nsfw|safety|content policy|moderat|flagged", re.IGNORECASE
)


class ReplicateAdapter(QueuedAdapter):
    """POST /models/{owner}/{name}/predictions (or /predictions with a version) and GET urls.get."""

    protocol = "replicate"
    needs_key = True
    shape_form = "ratio"
    parameters = {
        **NO_STREAMING,
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

    def submit_request(self, request: ImageRequest) -> httpx.Request:
        url, body = self.endpoint_and_body(request)
        wait_s = max(1, min(MAX_WAIT_S, int(self.provider.timeout_s)))
        return self.client.build_request(
            "POST", url, json=body, headers={**self._headers(), "Prefer": f"wait={wait_s}"}
        )

    def read_job(self, submitted: dict, headers: httpx.Headers) -> Job:
        """The prediction as created; `Prefer: wait` may have held it until it ended."""
        urls = submitted.get("urls") if isinstance(submitted.get("urls"), dict) else {}
        get_url = urls.get("get") or headers.get("location")
        if not get_url and submitted.get("id"):
            get_url = f"{self.provider.base_url}/predictions/{submitted['id']}"
        state = submitted.get("status")
        return Job(
            submitted,
            id=submitted.get("id"),
            status_url=get_url,
            cancel_url=urls.get("cancel") or (f"{get_url}/cancel" if get_url else None),
            # An unknown word here is left to the first poll to judge.
            phase=PHASES.get(state, Phase.QUEUED) if isinstance(state, str) else Phase.QUEUED,
        )

    def phase_of(self, status: dict) -> Phase:
        state = status.get("status")
        phase = PHASES.get(state) if isinstance(state, str) else None
        if phase is None:
            raise ProviderError(
                "bad_response", f"Replicate status {str(state)[:40]!r} is not known"
            )
        return phase

    def failure_of(self, status: dict) -> ProviderError:
        error = self.redact(str(status.get("error") or ""))[:300]
        if status.get("status") == "canceled":
            return ProviderError("server_error", "prediction was canceled on Replicate's side")
        # Safety filters report as a failed prediction whose error names them (E005).
        failure = "refused" if REFUSAL_PATTERN.search(error) else "server_error"
        return ProviderError(failure, f"prediction failed: {error or 'no error given'}")

    async def read_result(self, result: dict, job: Job, watch: Stopwatch) -> ProviderReply:
        """A succeeded prediction's output: one URL or a list (replicate.delivery keeps them 1 hour)."""
        output = result.get("output")
        outputs = output if isinstance(output, list) else [output] if output is not None else []
        if not outputs:
            raise ProviderError("empty_output", "prediction succeeded with no output")
        if not all(isinstance(o, str) for o in outputs):
            raise ProviderError("bad_response", "prediction output is not a URL or a list of URLs")
        images = []
        for i, output in enumerate(outputs):
            if output.startswith("data:"):
                images.append(decode_b64(output, f"output[{i}]"))
            else:
                images.append(await self.download(output, watch))
        return ProviderReply(images=images)

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

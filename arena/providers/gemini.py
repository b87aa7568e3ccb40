"""The Gemini generateContent protocol: inline_data images in and out, imageConfig, refusals inside HTTP 200."""

from __future__ import annotations

import json

import httpx

from arena.errors import ProviderError
from arena.params import (
    NO_STREAMING,
    OUTPUT_EMULATED,
    Handling,
    requested_pixels,
    requested_ratio,
    requested_tier,
    snap_ratio,
    snap_tier,
)
from arena.providers.base import Adapter, ImageRequest, ProviderReply, Stopwatch
from arena.providers.wire import (
    decode_b64,
    error_from_status,
    exchange,
    parse_duration_s,
    parse_json,
    stamp,
)

# finishReason values that mean a safety/policy block; NO_IMAGE, IMAGE_OTHER, STOP or MAX_TOKENS
# without an image mean the model produced none without being blocked (empty_output).
BLOCKED_FINISH_REASONS = {
    "SAFETY",
    "IMAGE_SAFETY",
    "PROHIBITED_CONTENT",
    "IMAGE_PROHIBITED_CONTENT",
    "RECITATION",
    "IMAGE_RECITATION",
    "BLOCKLIST",
    "SPII",
}
ONE_K_MODELS = ("gemini-2.5-flash-image",)  # imageSize 1K only (the 3.x image models add 2K, 4K)
LATER_RATIOS = ("1:4", "4:1", "1:8", "8:1")  # the 3.1 flash image models' extra shapes
LATER_RATIO_MODELS = ("gemini-3.1-flash-image",)
REQUEST_FIELDS = {
    "contents",
    "safetySettings",
    "systemInstruction",
    "tools",
    "toolConfig",
    "cachedContent",
}


class GeminiAdapter(Adapter):
    """POST {base}/models/{model}:generateContent with x-goog-api-key; images come back as inlineData parts."""

    protocol = "gemini"
    needs_key = True
    shape_form = "ratio"
    parameters = {
        **NO_STREAMING,
        "size": Handling(
            "converted", "imageConfig.aspectRatio + imageSize", "nearest supported ratio and tier"
        ),
        "aspect_ratio": Handling("renamed", "imageConfig.aspectRatio"),
        "resolution": Handling("renamed", "imageConfig.imageSize"),
        "n": Handling("emulated", "", "parallel requests, one image each"),
        **OUTPUT_EMULATED,
        "images": Handling("converted", "inline_data parts", "base64 with mime_type"),
    }
    # imageConfig's documented aspectRatio values and imageSize tiers (upper-case K).
    default_capabilities = {
        "aspect_ratios": ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"],
        "resolutions": ["1K", "2K", "4K"],
    }

    @classmethod
    def capabilities_for(cls, model_id: str) -> dict:
        if model_id.startswith(ONE_K_MODELS):
            return {**cls.default_capabilities, "resolutions": ["1K"]}
        return cls.default_capabilities

    def _headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key} if self._api_key else {}

    def build_body(self, request: ImageRequest) -> dict:
        parts: list[dict] = [
            {
                "inline_data": {
                    "mime_type": image.mime,
                    "data": image.base64,
                }
            }
            for image in request.images
        ]
        parts.append(
            {"text": request.prompt}
        )  # images first, then the instruction that refers to them
        generation: dict[str, object] = {"responseModalities": ["IMAGE"]}
        image_config: dict[str, str] = {}
        # Whatever the request asks, only the model's documented values are sent (a 400 otherwise).
        caps = self.capabilities_for(request.model_id)
        ratios = tuple(caps["aspect_ratios"])
        later = LATER_RATIOS if request.model_id.startswith(LATER_RATIO_MODELS) else ()
        ratio = snap_ratio(
            requested_ratio(request.size, request.aspect_ratio), ratios, (*ratios, *later)
        )
        if ratio:
            image_config["aspectRatio"] = ratio
        if request.resolution or requested_pixels(request.size):
            tier = snap_tier(
                requested_tier(request.size, request.resolution), tuple(caps["resolutions"])
            )
            if tier:
                image_config["imageSize"] = tier  # "1K" / "2K" / "4K", upper-case K
        if image_config:
            generation["imageConfig"] = image_config
        body: dict[str, object] = {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": generation,
        }
        # Parameters pass through: request-level fields at the top, the rest into generationConfig.
        for key, value in request.params.items():
            if key in REQUEST_FIELDS:
                body[key] = value
            elif key == "generationConfig" and isinstance(value, dict):
                generation.update(value)
            else:
                generation[key] = value
        return body

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        url = f"{self.provider.base_url}/models/{request.model_id}:generateContent"
        http_request = self.client.build_request(
            "POST", url, json=self.build_body(request), headers=self._headers()
        )
        watch.start()
        response, body, headers_ns = await exchange(self, http_request, "Gemini generateContent")
        stamp(watch, "ttfb", headers_ns)
        watch.mark("body_done")
        if response.status_code >= 400:
            raise self.error_from_reply(response, body)
        reply = self.read_reply(parse_json(body, "Gemini reply"))
        stamp(
            watch, "download_start", headers_ns
        )  # inline base64: the body transfer is the download
        stamp(watch, "done", watch.marks_ns["body_done"])
        return reply

    def read_reply(self, data: dict) -> ProviderReply:
        candidates = data.get("candidates") or []
        feedback = (
            data.get("promptFeedback") if isinstance(data.get("promptFeedback"), dict) else {}
        )
        if not candidates:
            if feedback.get("blockReason"):
                raise ProviderError("refused", f"prompt blocked: {feedback['blockReason']}")
            raise ProviderError("empty_output", "reply has no candidates")
        if not isinstance(candidates, list) or not isinstance(candidates[0], dict):
            raise ProviderError("bad_response", "'candidates' is not a list of objects")
        candidate = candidates[0]
        content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
        parts = content.get("parts") if isinstance(content.get("parts"), list) else []
        images, texts = [], []
        for i, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("thought"):
                continue  # thinking models may show draft images; only the answer counts
            inline = part.get("inlineData") or part.get("inline_data")
            if isinstance(inline, dict) and str(
                inline.get("mimeType") or inline.get("mime_type", "")
            ).startswith("image/"):
                images.append(decode_b64(inline.get("data"), f"parts[{i}].inlineData.data"))
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
        finish = candidate.get("finishReason")
        if not images:
            said = self.redact(" ".join(texts).strip())[:200]
            detail = f"finishReason {finish}" + (f"; the model said: {said}" if said else "")
            if finish in BLOCKED_FINISH_REASONS or feedback.get("blockReason"):
                raise ProviderError("refused", f"no image: {detail}")
            raise ProviderError("empty_output", f"no image part: {detail}")
        extra = {"finish_reason": finish, "model_version": data.get("modelVersion")}
        if isinstance(data.get("usageMetadata"), dict):
            extra["usage"] = data["usageMetadata"]
        return ProviderReply(images=images, request_id=data.get("responseId"), extra=extra)

    def error_from_reply(self, response: httpx.Response, body: bytes) -> ProviderError:
        """Google RPC errors: {"error": {"code", "message", "status", "details": [RetryInfo...]}}."""
        text = body.decode("utf-8", "replace")
        error = error_from_status(response.status_code, response.headers, text, self.redact)
        try:
            rpc = json.loads(text).get("error")
        except (ValueError, AttributeError):
            return error
        if not isinstance(rpc, dict):
            return error
        message = self.redact(
            f"HTTP {response.status_code} {rpc.get('status') or ''}: {str(rpc.get('message', ''))[:300]}"
        )
        retry_after_s = error.retry_after_s
        if retry_after_s is None and error.failure_class == "rate_limited":
            retry_after_s = _retry_delay_s(rpc.get("details"))
        return ProviderError(
            error.failure_class,
            message,
            status_code=response.status_code,
            retry_after_s=retry_after_s,
        )


def _retry_delay_s(details: object) -> float | None:
    """The google.rpc.RetryInfo retryDelay ("30s") among the error details, in seconds."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            return parse_duration_s(str(detail.get("retryDelay", "")))
    return None

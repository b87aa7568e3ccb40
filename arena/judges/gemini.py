"""The "gemini" judge: Google's generateContent with inline images.

POST {base_url}/v1beta/models/{model_id}:generateContent, key in x-goog-api-key, the question as
`contents[0].parts` ({"text"} and {"inline_data": {"mime_type", "data"}}), the answer from the
text parts of candidates[0] (thought parts skipped). A refusal is promptFeedback.blockReason or a
blocking finishReason (SAFETY, PROHIBITED_CONTENT, ...). Google's RPC errors are read as the image
adapter reads them (arena.providers.gemini).
"""

from __future__ import annotations

import json

import httpx

from arena.errors import ProviderError
from arena.judges.base import Judge, JudgeRequest
from arena.judges.instructions import question_parts
from arena.providers import wire

# finishReason values that mean the answer was blocked by policy (Gemini's FinishReason enum).
BLOCKED_FINISH_REASONS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"}


class GeminiJudge(Judge):
    protocol = "gemini"

    def build_body(self, request: JudgeRequest) -> dict:
        parts = [
            {"text": part}
            if isinstance(part, str)
            else {"inline_data": {"mime_type": part.mime, "data": part.base64}}
            for part in question_parts(
                request.task, request.prompt, request.first, request.second, request.sources
            )
        ]
        return {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": {"responseMimeType": "application/json"},
        }

    def build_request(self, request: JudgeRequest) -> httpx.Request:
        headers = {"x-goog-api-key": self._api_key} if self._api_key else {}
        url = f"{self.config.base_url}/v1beta/models/{self.config.model_id}:generateContent"
        return self.client.build_request(
            "POST", url, json=self.build_body(request), headers=headers
        )

    def read_text(self, data: dict) -> str:
        feedback = data.get("promptFeedback")
        feedback = feedback if isinstance(feedback, dict) else {}
        if feedback.get("blockReason"):
            raise ProviderError("refused", f"prompt blocked: {feedback['blockReason']}")
        candidates = data.get("candidates")
        if (
            not isinstance(candidates, list)
            or not candidates
            or not isinstance(candidates[0], dict)
        ):
            raise ProviderError("bad_response", "reply has no candidates")
        candidate = candidates[0]
        finish = candidate.get("finishReason")
        if finish in BLOCKED_FINISH_REASONS:
            raise ProviderError("refused", f"answer blocked: finishReason {finish}")
        content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
        parts = content.get("parts") if isinstance(content.get("parts"), list) else []
        text = "".join(
            p["text"]
            for p in parts
            if isinstance(p, dict) and not p.get("thought") and isinstance(p.get("text"), str)
        )
        if not text.strip():
            raise ProviderError("bad_response", f"reply has no text (finishReason {finish})")
        return text

    def error_from_reply(self, response: httpx.Response, body: bytes) -> ProviderError:
        """Google RPC errors: {"error": {"code", "message", "status", "details": [RetryInfo...]}}."""
        error = super().error_from_reply(response, body)
        if error.failure_class != "rate_limited" or error.retry_after_s is not None:
            return error
        try:
            rpc = json.loads(body.decode("utf-8", "replace")).get("error")
        except (ValueError, AttributeError):
            return error
        delay_s = _retry_delay_s(rpc.get("details")) if isinstance(rpc, dict) else None
        message = str(error).removeprefix("rate_limited: ")
        return ProviderError(
            "rate_limited", message, status_code=error.status_code, retry_after_s=delay_s
        )


def _retry_delay_s(details: object) -> float | None:
    """The google.rpc.RetryInfo retryDelay ("30s") among the error details, in seconds."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            return wire.parse_duration_s(str(detail.get("retryDelay", "")))
    return None

"""The "openai-chat" judge: any OpenAI-compatible chat-completions endpoint that takes images.

POST {base_url}/chat/completions with {"model", "messages": [{"role": "user", "content": parts}]},
the body the official `openai` SDK sends for `client.chat.completions.create(model=..., messages=...)`
(images as `image_url` data URLs); a Bearer key when api_key_env is set (a local vLLM or Ollama
takes none). A refusal is `message.refusal` or finish_reason "content_filter".
"""

from __future__ import annotations

import httpx

from arena.errors import ProviderError
from arena.judges.base import Judge, JudgeRequest
from arena.judges.instructions import question_parts


class OpenAIChatJudge(Judge):
    protocol = "openai-chat"

    def build_body(self, request: JudgeRequest) -> dict:
        content = [
            {"type": "text", "text": part}
            if isinstance(part, str)
            else {"type": "image_url", "image_url": {"url": part.data_uri()}}
            for part in question_parts(
                request.task, request.prompt, request.first, request.second, request.sources
            )
        ]
        return {
            "messages": [{"role": "user", "content": content}],
            "model": self.config.model_id,
        }

    def build_request(self, request: JudgeRequest) -> httpx.Request:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        return self.client.build_request(
            "POST",
            f"{self.config.base_url}/chat/completions",
            json=self.build_body(request),
            headers=headers,
        )

    def read_text(self, data: dict) -> str:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ProviderError("bad_response", "reply has no choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        if message.get("refusal"):
            said = self.redact(" ".join(str(message["refusal"]).split()))[:200]
            raise ProviderError("refused", f"the judge refused: {said}")
        if choice.get("finish_reason") == "content_filter":
            raise ProviderError("refused", "the judge's answer was filtered (content_filter)")
        content = message.get("content")
        if isinstance(content, list):  # some servers answer in content parts
            content = "".join(
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
        if not isinstance(content, str) or not content.strip():
            raise ProviderError("bad_response", "reply has no message content")
        return content

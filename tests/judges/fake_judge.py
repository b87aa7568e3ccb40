"""A loopback judge speaking OpenAI chat completions and Gemini generateContent, its behaviour
chosen by the model id, every request logged (arrival, body, headers, requests in flight).

Behaviours (the model id):
    first        always answers "1" (a judge with total position bias)
    consistent   prefers the candidate with the higher score: `scores` (sha256 of the image bytes
                 -> score) when the test gives one, else the brighter image; equal scores tie
    fenced       consistent, the JSON inside a ```json code fence after some words
    bare         consistent, answering a bare "1" or "2"
    malformed    words with no verdict
    badwinner    a JSON object whose winner is "3"
    refuse       a refusal (chat: message.refusal; Gemini: promptFeedback.blockReason)
    filtered     chat: finish_reason content_filter; Gemini: finishReason SAFETY
    limited      429 with Retry-After for the first `limited_times` requests, then consistent
    always429    429 every time
    slow         answers after `slow_s` (beyond the tests' timeout)
    slowok       consistent, after `slow_s`
    broken       HTTP 500
    echo-auth    401 whose message echoes the Authorization header it got
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import threading
import time
from dataclasses import dataclass, field

from PIL import Image, ImageStat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.servers import serve_in_thread


@dataclass
class Logged:
    protocol: str
    path: str
    model: str
    headers: dict
    body: dict
    arrived_s: float  # time.monotonic()
    in_flight: int  # requests being answered when it arrived (itself included)
    candidates: list[bytes] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # every text part, in order


class FakeJudge:
    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        self.limited_times = 1
        self.retry_after = "0.2"
        self.slow_s = 2.0
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._served = serve_in_thread(self.app(), name="fake-judge", lifespan="off")

    # --- serving --------------------------------------------------------------------------------

    def __enter__(self) -> FakeJudge:
        self._served.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._served.__exit__(*exc)

    @property
    def url(self) -> str:
        return self._served.url

    @property
    def chat_url(self) -> str:
        return f"{self._served.url}/v1"

    def reset(self) -> None:
        with self._lock:
            self.log.clear()
            self.scores = {}
            self.limited_times = 1
            self.retry_after = "0.2"
            self.slow_s = 2.0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1beta/models/{target}", self.gemini, methods=["POST"]),
            ]
        )

    def peak_in_flight(self) -> int:
        return max((entry.in_flight for entry in self.log), default=0)

    # --- the two protocols ----------------------------------------------------------------------

    async def chat(self, request: Request):
        body = await request.json()
        texts, images = [], []
        for message in body.get("messages", []):
            for part in message.get("content", []):
                if part.get("type") == "text":
                    texts.append(part["text"])
                    images.append(None)
                elif part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    images.append(base64.b64decode(url.split(",", 1)[1]))
                    texts.append(None)
        return await self._answer(
            "openai-chat", request, body, body.get("model", ""), texts, images
        )

    async def gemini(self, request: Request):
        body = await request.json()
        model = request.path_params["target"].removesuffix(":generateContent")
        texts, images = [], []
        for content in body.get("contents", []):
            for part in content.get("parts", []):
                if "text" in part:
                    texts.append(part["text"])
                    images.append(None)
                elif "inline_data" in part:
                    images.append(base64.b64decode(part["inline_data"]["data"]))
                    texts.append(None)
        return await self._answer("gemini", request, body, model, texts, images)

    async def _answer(self, protocol, request, body, model, texts, images):
        candidates = []
        for i, text in enumerate(texts):
            if text in ("Candidate 1:", "Candidate 2:") and i + 1 < len(images):
                candidates.append(images[i + 1])
        with self._lock:
            self._in_flight += 1
            entry = Logged(
                protocol=protocol,
                path=request.url.path,
                model=model,
                headers=dict(request.headers),
                body=body,
                arrived_s=time.monotonic(),
                in_flight=self._in_flight,
                candidates=candidates,
                labels=[t for t in texts if t is not None],
            )
            self.log.append(entry)
            earlier = sum(1 for e in self.log if e.model == model) - 1
        try:
            return await self._reply(protocol, model, request, candidates, earlier)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _reply(self, protocol, model, request, candidates, earlier):
        if model in ("slow", "slowok"):
            await asyncio.sleep(self.slow_s)
        if model == "always429" or (model == "limited" and earlier < self.limited_times):
            return JSONResponse(
                {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}},
                status_code=429,
                headers={"Retry-After": self.retry_after},
            )
        if model == "broken":
            return JSONResponse({"error": {"message": "internal"}}, status_code=500)
        if model == "echo-auth":
            said = request.headers.get("authorization") or request.headers.get("x-goog-api-key")
            return JSONResponse({"error": {"message": f"bad key {said}"}}, status_code=401)
        if model in ("refuse", "filtered"):
            return JSONResponse(_refusal(protocol, model))
        text = self._text(model, candidates)
        return JSONResponse(_success(protocol, text))

    def _text(self, model: str, candidates: list[bytes]) -> str:
        if model == "first":
            return '{"winner": "1", "reason": "the first one"}'
        if model == "malformed":
            return "Both images are interesting in their own way."
        if model == "badwinner":
            return '{"winner": "3", "reason": "a third one"}'
        first, second = (self._score(c) for c in candidates)
        winner = "1" if first > second else "2" if second > first else "tie"
        if model == "bare" and winner != "tie":
            return winner
        answer = json.dumps({"winner": winner, "reason": f"scores {first:g} vs {second:g}"})
        if model == "fenced":
            return f"Here is my verdict.\n```json\n{answer}\n```\n"
        return answer

    def _score(self, data: bytes) -> float:
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.scores:
            return self.scores[digest]
        image = Image.open(io.BytesIO(data)).convert("L")
        return round(ImageStat.Stat(image).mean[0], 3)


def _success(protocol: str, text: str) -> dict:
    if protocol == "gemini":
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
            ],
            "modelVersion": "fake",
        }
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
            }
        ],
    }


def _refusal(protocol: str, model: str) -> dict:
    if protocol == "gemini":
        if model == "refuse":
            return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}
        return {"candidates": [{"content": {"parts": []}, "finishReason": "SAFETY"}]}
    if model == "refuse":
        message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
        return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    message = {"role": "assistant", "content": ""}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "content_filter"}]}

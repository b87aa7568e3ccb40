"""The "openai-chat" judge sends what the official openai SDK sends for
client.chat.completions.create(model=..., messages=[...]) with image_url data URLs."""

from __future__ import annotations

import asyncio
import base64

import httpx
import openai
from support.images import make_png

from arena.config import JudgeConfig
from arena.judges import JudgeRequest, make_judge
from arena.providers.base import InputImage

FIRST = InputImage(make_png(20, 20, (10, 200, 10)), "image/png", "a")
SECOND = InputImage(make_png(20, 20, (200, 10, 10)), "image/png", "b")
SOURCE = InputImage(make_png(20, 20, (9, 9, 9)), "image/png", "s.png")
KEY = "sk-shape-test-key"


def _parts_by_hand(request: JudgeRequest) -> list[dict]:
    """The content parts as a user of the SDK writes them, independent of arena's builder."""
    from arena.judges.instructions import instructions_text

    def image(i: InputImage) -> dict:
        url = "data:image/png;base64," + base64.b64encode(i.data).decode()
        return {"type": "image_url", "image_url": {"url": url}}

    def text(t: str) -> dict:
        return {"type": "text", "text": t}

    parts = [
        text(instructions_text(request.task, len(request.sources))),
        text(f"Prompt: {request.prompt}"),
    ]
    for n, source in enumerate(request.sources, 1):
        parts += [text(f"Source {n} (the image to edit):"), image(source)]
    parts += [
        text("Candidate 1:"),
        image(request.first),
        text("Candidate 2:"),
        image(request.second),
    ]
    parts.append(text("Which candidate is better? Answer with the JSON object only."))
    return parts


def test_arena_and_the_sdk_send_the_same_request(judge_server, monkeypatch):
    monkeypatch.setenv("SHAPE_KEY", KEY)
    request = JudgeRequest("make it night", "edit", FIRST, SECOND, sources=(SOURCE,))
    messages = [{"role": "user", "content": _parts_by_hand(request)}]

    sdk = openai.OpenAI(base_url=judge_server.chat_url, api_key=KEY, max_retries=0)
    completion = sdk.chat.completions.create(model="consistent", messages=messages)
    assert completion.choices[0].message.content  # the fake's reply is one the SDK reads

    config = JudgeConfig(
        name="j",
        protocol="openai-chat",
        base_url=judge_server.chat_url,
        model_id="consistent",
        api_key_env="SHAPE_KEY",
    )

    async def ask():
        async with httpx.AsyncClient(trust_env=False) as client:
            return await make_judge(config, client).judge(request)

    reply = asyncio.run(ask())
    assert reply.verdict == "first"  # green is brighter in luma than red: the judge read it
    sdk_call, arena_call = judge_server.log
    assert arena_call.path == sdk_call.path == "/v1/chat/completions"
    assert arena_call.body == sdk_call.body  # the same JSON: keys, order of parts, data URLs
    for name in ("authorization", "content-type"):
        assert arena_call.headers[name] == sdk_call.headers[name], name
    assert arena_call.headers["authorization"] == f"Bearer {KEY}"

"""A loopback Gemini API: generateContent with inlineData image parts, blocks and finish reasons in HTTP 200."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.images import make_png

from .loopback import KEY, RESULT_PNG, FakeProvider, b64, recorded

DRAFT_PNG = make_png(16, 16, (0, 0, 0))


class FakeGemini(FakeProvider):
    # Google's reply to a bad key is a 400 naming API_KEY_INVALID in its details.
    bad_key_reply = (
        400,
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            }
        },
    )
    auth_header = "x-goog-api-key"
    auth_value = KEY

    def routes(self) -> list[Route]:
        return [Route("/v1beta/models/{target}", self.generate, methods=["POST"])]

    def no_image(self, finish: str, parts: list) -> JSONResponse:
        return JSONResponse(
            recorded("gemini_no_image.json", finish=finish, parts=json.dumps(parts))
        )

    async def generate(self, request: Request) -> Response:
        await self.record(request)
        model, _, method = request.path_params["target"].partition(":")
        if method != "generateContent":
            return JSONResponse(
                {"error": {"code": 404, "message": "method not found", "status": "NOT_FOUND"}},
                status_code=404,
            )
        failure = await self.common_failure(request)
        if failure is not None:
            return failure
        if self.mode == "quota":
            return JSONResponse(recorded("gemini_rate_limited.json"), status_code=429)
        if self.mode == "prompt_blocked":
            return JSONResponse(recorded("gemini_prompt_blocked.json"))
        if self.mode == "image_safety":
            return self.no_image("IMAGE_SAFETY", [])
        if self.mode == "text_only":
            return self.no_image("STOP", [{"text": "I can only describe that scene, not draw it."}])
        if self.mode == "no_image":
            return self.no_image("NO_IMAGE", [])
        reply = recorded("gemini_image.json", b64=b64(RESULT_PNG))
        if self.mode == "thinking":
            draft = {
                "inlineData": {"mimeType": "image/png", "data": b64(DRAFT_PNG)},
                "thought": True,
            }
            reply["candidates"][0]["content"]["parts"].insert(0, draft)
        return JSONResponse(reply)

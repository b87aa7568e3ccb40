"""A loopback xAI: synchronous JSON images API with its quirks (no `size`, silent moderation)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .loopback import RESULT_PNG, FakeProvider, b64, recorded


class FakeXAI(FakeProvider):
    # xAI answers a bad key with a 400 in its older error shape.
    bad_key_reply = (
        400,
        {
            "code": "Client specified an invalid argument",
            "error": "Incorrect API key provided: sk***ef. You can obtain an API key from "
            "https://console.x.ai.",
        },
    )

    def routes(self) -> list[Route]:
        return [
            Route("/v1/images/generations", self.images, methods=["POST"]),
            Route("/v1/images/edits", self.images, methods=["POST"]),
        ]

    async def images(self, request: Request) -> Response:
        body = await self.record(request)
        failure = await self.common_failure(request)
        if failure is not None:
            return failure
        if not isinstance(body, dict):
            return JSONResponse({"code": "400", "error": "Edits take JSON only"}, status_code=400)
        if "size" in body:  # what the real API answers (open-webui#23611)
            return JSONResponse(
                {"code": "400", "error": "Argument not supported: size"}, status_code=400
            )
        if "image" in body and "images" in body:
            return JSONResponse(
                {"code": "400", "error": "image and images are mutually exclusive"}, status_code=400
            )
        if self.mode == "moderated":
            return JSONResponse(recorded("xai_moderated.json"))
        if self.mode == "empty":
            return JSONResponse({"data": [], "usage": {"cost_in_usd_ticks": 0}})
        if self.mode == "input_blocked":
            return JSONResponse({"data": [], "block_reason": "input image flagged"})
        if self.mode == "forbidden_safety":
            return JSONResponse(
                {"code": "403", "error": "Generated image rejected by content moderation."},
                status_code=403,
            )
        reply = recorded("xai_image.json", url=self.file_url("xai-out.png"))
        if self.mode == "b64":
            # grok-2-image sent base64 with a data: prefix (vercel/ai xai-image-model.ts)
            reply["data"][0].update(url=None, b64_json=f"data:image/png;base64,{b64(RESULT_PNG)}")
        return JSONResponse(reply)

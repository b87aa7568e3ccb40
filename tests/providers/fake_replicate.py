"""A loopback Replicate: predictions held by `Prefer: wait`, then starting -> processing -> terminal polls."""

from __future__ import annotations

import asyncio
import itertools

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .loopback import RESULT_PNG, FakeProvider, b64, recorded

SENSITIVE = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)


class FakeReplicate(FakeProvider):
    # RFC 7807 problem details, as Replicate's client reads them.
    bad_key_reply = (
        401,
        {
            "title": "Unauthenticated",
            "detail": "You did not pass a valid authentication token",
            "status": 401,
        },
    )
    ids = itertools.count(1)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models/{owner}/{name}/predictions", self.create, methods=["POST"]),
            Route("/v1/predictions", self.create, methods=["POST"]),
            Route("/v1/predictions/{pid}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/predictions/{pid}", self.get, methods=["GET"]),
        ]

    def prediction(self, pid: str, status: str) -> dict:
        return recorded("replicate_prediction.json", id=pid, status=status, base=self.base)

    def finish(self, prediction: dict) -> dict:
        """The terminal state this test's mode asks for."""
        prediction.update(
            started_at="2026-08-20T10:00:00.250000Z",
            completed_at="2026-08-20T10:00:02.000000Z",
            metrics={"predict_time": 1.5, "total_time": 2.0},
        )
        outcomes = {
            "failed_sensitive": ("failed", SENSITIVE),
            "failed": ("failed", "CUDA out of memory"),
            "canceled": ("canceled", None),
        }
        if self.mode in outcomes:
            prediction["status"], prediction["error"] = outcomes[self.mode]
            return prediction
        prediction["status"] = "succeeded"
        if self.mode == "data_uri":
            prediction["output"] = f"data:image/png;base64,{b64(RESULT_PNG)}"
        elif self.mode == "no_output":
            prediction["output"] = None
        else:
            # a list of URLs after polling, a single URL from the held request (both shapes occur)
            url = self.file_url("replicate-out.png")
            prediction["output"] = [url] if self.options.get("poll") else url
        return prediction

    async def create(self, request: Request) -> Response:
        await self.record(request)
        failure = await self.common_failure(request)
        if failure is not None:
            return failure
        if self.mode == "throttled":
            return JSONResponse(
                recorded("replicate_throttled.json"), status_code=429, headers={"Retry-After": "1"}
            )
        if self.mode == "invalid_input":
            return JSONResponse(
                {
                    "type": "https://replicate.com/docs/errors",
                    "title": "Input validation failed",
                    "status": 422,
                    "detail": "- input.aspect_ratio: must be one of 1:1, 16:9",
                },
                status_code=422,
            )
        pid = f"pred{next(self.ids)}"
        self.jobs[pid] = {"polls": 0}
        if not self.options.get("poll") and self.mode != "stuck":
            return JSONResponse(self.finish(self.prediction(pid, "starting")), status_code=201)
        await asyncio.sleep(
            self.options.get("hold_s", 0.03)
        )  # Prefer: wait ran out before the model did
        return JSONResponse(self.prediction(pid, "starting"), status_code=201)

    async def get(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self.unauthorized(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["pid"])
        if job is None:
            return JSONResponse({"detail": "Not found.", "status": 404}, status_code=404)
        job["polls"] += 1
        pid = request.path_params["pid"]
        queue_polls, progress_polls = (
            self.options.get("queue_polls", 2),
            self.options.get("progress_polls", 2),
        )
        if job["polls"] <= queue_polls:
            return JSONResponse(self.prediction(pid, "starting"))
        if self.mode == "stuck" or job["polls"] <= queue_polls + progress_polls:
            prediction = self.prediction(pid, "processing")
            prediction["started_at"] = "2026-08-20T10:00:00.250000Z"
            return JSONResponse(prediction)
        return JSONResponse(self.finish(self.prediction(pid, "starting")))

    async def cancel(self, request: Request) -> Response:
        await self.record(request)
        prediction = self.prediction(request.path_params["pid"], "canceled")
        return JSONResponse(prediction)

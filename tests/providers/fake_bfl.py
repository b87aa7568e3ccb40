"""A loopback Black Forest Labs API: submit, a polling_url on another "cluster" path, result.sample files."""

from __future__ import annotations

import itertools

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .loopback import KEY, FakeProvider, recorded


class FakeBFL(FakeProvider):
    bad_key_reply = (403, {"detail": "Not authenticated"})  # BFL lists 403 among its errors
    ids = itertools.count(1)
    auth_header = "x-key"
    auth_value = KEY

    def routes(self) -> list[Route]:
        return [
            # The polling URL lives elsewhere than the submit base, like api.eu2.bfl.ai.
            Route("/eu2/v1/get_result", self.get_result, methods=["GET"]),
            Route("/v1/{model}", self.submit, methods=["POST"]),
        ]

    async def submit(self, request: Request) -> Response:
        await self.record(request)
        failure = await self.common_failure(request)
        if failure is not None:
            return failure
        if self.mode == "no_credits":
            return JSONResponse({"detail": "Insufficient credits"}, status_code=402)
        if self.mode == "invalid_input":
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body", "width"],
                            "msg": "Input should be a multiple of 16",
                            "type": "value_error",
                        }
                    ]
                },
                status_code=422,
            )
        rid = f"bfl-{next(self.ids)}"
        self.jobs[rid] = {"polls": 0}
        return JSONResponse(
            recorded(
                "bfl_submit.json", id=rid, polling_url=f"{self.base}/eu2/v1/get_result?id={rid}"
            )
        )

    async def get_result(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self.unauthorized(request)) is not None:
            return denied
        rid = request.query_params.get("id", "")
        job = self.jobs.get(rid)
        if job is None or self.mode == "task_not_found":
            return JSONResponse({"id": rid, "status": "Task not found", "result": None})
        job["polls"] += 1
        queue_polls, progress_polls = (
            self.options.get("queue_polls", 2),
            self.options.get("progress_polls", 2),
        )
        terminal = {
            "request_moderated": "Request Moderated",
            "content_moderated": "Content Moderated",
            "error": "Error",
            "unknown_status": "Exploded",
        }
        if self.mode in terminal and job["polls"] > queue_polls:
            return JSONResponse(recorded("bfl_moderated.json", id=rid, status=terminal[self.mode]))
        if self.mode == "stuck" or job["polls"] <= queue_polls + progress_polls:
            pending = recorded("bfl_pending.json", id=rid)
            if job["polls"] > queue_polls:
                pending["progress"] = round((job["polls"] - queue_polls) / (progress_polls + 1), 2)
            return JSONResponse(pending)
        return JSONResponse(recorded("bfl_ready.json", id=rid, url=self.file_url("sample.jpg")))

"""A loopback fal queue: submit, IN_QUEUE -> IN_PROGRESS -> COMPLETED polls, result, cancel."""

from __future__ import annotations

import itertools

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .loopback import KEY, RESULT_PNG, FakeProvider, b64, recorded


class FakeFal(FakeProvider):
    bad_key_reply = (401, {"detail": "Authentication is required to access this application."})
    ids = itertools.count(1)
    auth_value = f"Key {KEY}"

    def routes(self) -> list[Route]:
        return [
            Route("/{app:path}/requests/{rid}/status", self.status, methods=["GET"]),
            Route("/{app:path}/requests/{rid}/cancel", self.cancel, methods=["PUT"]),
            Route("/{app:path}/requests/{rid}", self.result, methods=["GET"]),
            Route("/{endpoint:path}", self.submit, methods=["POST"]),
        ]

    def job_for(self, request: Request) -> dict | None:
        job = self.jobs.get(request.path_params["rid"])
        # The queue answers under the app root only (no subpath), like fal's real gotcha.
        if job is None or request.path_params["app"] != job["root"]:
            return None
        return job

    async def submit(self, request: Request) -> Response:
        body = await self.record(request)
        failure = await self.common_failure(request)
        if failure is not None:
            return failure
        if self.mode == "invalid_input":
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body", "num_images"],
                            "msg": "must be <= 4",
                            "type": "less_than_equal",
                        }
                    ]
                },
                status_code=422,
            )
        endpoint = request.path_params["endpoint"]
        root = "/".join(endpoint.split("/")[:2])
        rid = f"req-{next(self.ids)}"
        self.jobs[rid] = {"root": root, "polls": 0, "input": body}
        return JSONResponse(recorded("fal_submit.json", id=rid, root=f"{self.base}/{root}"))

    def state_after(self, polls: int) -> str:
        if self.mode == "stuck":
            return "IN_PROGRESS"
        queue_polls = self.options.get("queue_polls", 2)
        progress_polls = self.options.get("progress_polls", 2)
        if polls <= queue_polls:
            return "IN_QUEUE"
        if polls <= queue_polls + progress_polls:
            return "IN_PROGRESS"
        return "COMPLETED"

    async def status(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self.unauthorized(request)) is not None:
            return denied
        job = self.job_for(request)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        job["polls"] += 1
        if self.mode == "poll_flaky" and job["polls"] == 1:
            return JSONResponse({"detail": "Service Unavailable"}, status_code=503)
        if self.mode == "poll_down":
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        if self.mode == "poll_malformed":
            return Response("<html>bad gateway</html>", media_type="text/html")
        if self.mode == "unknown_status":
            return JSONResponse({"status": "SLEEPING"})
        state = self.state_after(job["polls"])
        if state == "IN_QUEUE":
            return JSONResponse({"status": state, "queue_position": 0}, status_code=202)
        if state == "IN_PROGRESS":
            return JSONResponse({"status": state, "logs": []}, status_code=202)
        error = "Runner disconnected" if self.mode == "runner_error" else None
        return JSONResponse(
            {
                "status": "COMPLETED",
                "logs": [],
                "metrics": {"inference_time": 0.0125},
                "error": error,
                "error_type": "runner_disconnected" if error else None,
            }
        )

    async def result(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self.unauthorized(request)) is not None:
            return denied
        job = self.job_for(request)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        if self.mode == "refused":
            return JSONResponse(recorded("fal_content_policy.json"), status_code=422)
        if self.mode == "runner_error":
            return JSONResponse(
                {"detail": "Runner disconnected", "error_type": "runner_disconnected"},
                status_code=500,
                headers={"X-Fal-Error-Type": "runner_disconnected"},
            )
        if self.mode == "result_malformed":
            return Response('{"images": [', media_type="application/json")
        reply = recorded("fal_result.json", url=self.file_url("fal-out.png"))
        if self.mode == "nsfw":
            reply["has_nsfw_concepts"] = [True]
        if self.mode == "sync_mode":
            reply["images"][0]["url"] = f"data:image/png;base64,{b64(RESULT_PNG)}"
        return JSONResponse(reply)

    async def cancel(self, request: Request) -> Response:
        await self.record(request)
        if self.job_for(request) is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

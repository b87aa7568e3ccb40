"""Routes of the voting server: the page, the JSON API, the blind images; every client error is JSON."""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response

from arena.web.battles import CHOICES, ApiError, Voting
from arena.web.security import COOKIE_NAME, CSRF_HEADER, RateLimiter, Signer

BATTLE_ID_LENGTH = 32


class JSONResponse(_StarletteJSON):
    """JSON bodies by orjson (compact UTF-8, like Starlette's own, several times quicker)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def _voting(request: Request) -> Voting:
    return request.app.state.voting


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def session_of(request: Request) -> tuple[str, str | None]:
    """(session id, cookie to set): the signed cookie's session, or a fresh one."""
    signer: Signer = request.app.state.signer
    sid = signer.session_id(request.cookies.get(COOKIE_NAME))
    if sid:
        return sid, None
    cookie, sid = signer.new_cookie()
    return sid, cookie


def set_session_cookie(request: Request, response: Response, cookie: str | None) -> None:
    if cookie:
        response.set_cookie(
            COOKIE_NAME,
            cookie,
            max_age=180 * 86400,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )


def rate_limit(request: Request, sid: str | None) -> None:
    """Per IP and per session token buckets; 429 with Retry-After when either is empty."""
    limits: tuple[RateLimiter, RateLimiter] = request.app.state.limits
    by_ip, by_session = limits
    wait = by_ip.allow(_client_ip(request))
    if not wait and sid:
        wait = by_session.allow(sid)
    if wait:
        seconds = max(1, round(wait + 0.5))
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests; try again in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )


def _own_origin(request: Request) -> str:
    """scheme://host[:port] of this request, as Starlette's request.url has it (without building the URL)."""
    scope = request.scope
    host = request.headers.get("host")
    if not host:
        return f"{request.url.scheme}://{request.url.netloc}"
    return f"{scope.get('scheme', 'http')}://{host}"


def check_post(request: Request) -> str:
    """Origin (or Referer) of this server, a valid session cookie and its CSRF token; returns the session id."""
    headers = request.headers
    origin = headers.get("origin") or headers.get("referer")
    if not origin:
        raise ApiError(
            403, "origin_required", "POST requests must carry an Origin (or Referer) header."
        )
    own = _own_origin(request)
    if origin != own:  # an Origin is scheme://host[:port]; a Referer has a path too
        parts = urlsplit(origin)
        if f"{parts.scheme}://{parts.netloc}" != own:
            raise ApiError(
                403,
                "origin_mismatch",
                "POST requests are accepted only from this server's own pages.",
            )
    signer: Signer = request.app.state.signer
    sid = signer.session_id(request.cookies.get(COOKIE_NAME))
    if sid is None:
        raise ApiError(
            401, "no_session", "No valid session cookie; GET /api/session (or the page) first."
        )
    if not signer.csrf_ok(sid, request.headers.get(CSRF_HEADER)):
        raise ApiError(
            403,
            "bad_csrf_token",
            f"Missing or wrong {CSRF_HEADER} header; it comes from GET /api/session.",
        )
    return sid


async def read_json(request: Request) -> dict:
    """The JSON object body, size-limited while it streams in."""
    limit = request.app.state.options.max_body_bytes
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "json_required", "Send the body as application/json.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"The body is over {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"The body is over {limit} bytes.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "The body must be a JSON object.")
    return data


# --- endpoints -----------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """The trivial endpoint the benchmark compares against."""
    return JSONResponse({"ok": True})


async def session(request: Request) -> Response:
    sid, cookie = session_of(request)
    response = JSONResponse({"csrf_token": request.app.state.signer.csrf_token(sid)})
    set_session_cookie(request, response, cookie)
    return response


async def new_battle(request: Request) -> Response:
    sid = check_post(request)
    rate_limit(request, sid)
    battle = await _voting(request).issue(
        sid, _client_ip(request), request.headers.get("user-agent", "")
    )
    if battle is None:
        raise ApiError(
            404,
            "no_battle",
            "You have seen every output there is; thank you! New ones come with the next run.",
        )
    return JSONResponse(battle)


async def vote(request: Request) -> Response:
    sid = check_post(request)
    rate_limit(request, sid)
    data = await read_json(request)
    unknown = sorted(set(data) - {"battle_id", "choice"})
    if unknown:
        raise ApiError(
            422, "invalid_body", f"Unknown field {unknown[0]!r}: send only battle_id and choice."
        )
    battle_id, choice = data.get("battle_id"), data.get("choice")
    if (
        not isinstance(battle_id, str)
        or len(battle_id) != BATTLE_ID_LENGTH
        or not battle_id.isalnum()
    ):
        raise ApiError(
            422,
            "invalid_battle_id",
            "battle_id must be the 32-character id from POST /api/battles.",
        )
    if choice not in CHOICES:
        raise ApiError(422, "invalid_choice", f"choice must be one of {', '.join(CHOICES)}.")
    result = await _voting(request).vote(sid, battle_id, choice, _client_ip(request))
    return JSONResponse(result)


async def image(request: Request) -> Response:
    """A battle's derivative: identical headers for every image, nothing cacheable or dated."""
    sid, _ = session_of(request)
    battle_id, slot = request.path_params["battle_id"], request.path_params["slot"]
    path = await _voting(request).view_file(sid, battle_id, slot)
    try:
        data = await run_in_threadpool(path.read_bytes)
    except OSError:
        raise ApiError(404, "image_not_found", "No such image in this session.") from None
    return Response(data, media_type="image/webp", headers={"Cache-Control": "no-store"})


async def openapi(request: Request) -> Response:
    from arena.web.openapi import openapi_document

    return JSONResponse(openapi_document())


# --- errors --------------------------------------------------------------------------------------


def error_response(
    status: int, code: str, message: str, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


async def api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def http_error(request: Request, exc: HTTPException) -> Response:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def server_error(request: Request, exc: Exception) -> Response:
    return error_response(
        500,
        "internal_error",
        "Something went wrong on the server; the vote was not lost if it was stored.",
    )

"""The voting page: server-rendered with the session's battle in place, so the first paint needs no API call."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from arena.web.api import _client_ip, rate_limit, session_of, set_session_cookie


async def battle_page(request: Request) -> Response:
    sid, cookie = session_of(request)
    rate_limit(request, sid)
    voting = request.app.state.voting
    battle = await voting.issue(sid, _client_ip(request), request.headers.get("user-agent", ""))
    context = {"battle": battle, "csrf_token": request.app.state.signer.csrf_token(sid)}
    response = request.app.state.templates.TemplateResponse(request, "battle.html", context)
    response.headers["Cache-Control"] = "no-store"
    set_session_cookie(request, response, cookie)
    return response

"""GatewayError and OpenAI's error shape: every refusal of the gateway is one of these, never a 500 page."""

from __future__ import annotations

from starlette.responses import JSONResponse

# OpenAI's `type` for each status the gateway answers with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout",
}


class GatewayError(Exception):
    """A request the gateway answers with an error: status, one-line message, the param and a code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.extra = extra or {}  # more fields inside "error" (e.g. each attempt's failure class)
        self.headers = headers or {}

    def body(self) -> dict:
        error = {
            "message": self.message,
            "type": ERROR_TYPES.get(self.status, "invalid_request_error"),
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        return {"error": error}


def error_response(exc: GatewayError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON reply OpenAI's SDKs read as an APIStatusError of the right class."""
    return JSONResponse(
        exc.body(), status_code=exc.status, headers={**exc.headers, **(headers or {})}
    )

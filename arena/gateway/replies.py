"""GatewayError and OpenAI's error shape (every refusal of the gateway is one, never a 500 page); the
success reply's body and headers."""

from __future__ import annotations

import secrets
import time

import orjson
from starlette.responses import JSONResponse, Response

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
    return FastJSON(exc.body(), status_code=exc.status, headers={**exc.headers, **(headers or {})})


REQUEST_ID_HEADER = "X-Arena-Request-Id"
PROVIDER_HEADER = "X-Arena-Provider"


def new_request_id() -> str:
    """A random id per request: in every reply's X-Arena-Request-Id and the traffic rows."""
    return "req_" + secrets.token_hex(12)


class FastJSON(JSONResponse):
    """orjson instead of json: a reply carries megabytes of base64, encoded ~10x faster."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def json_reply(body, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return FastJSON(body, status_code=status, headers=headers)


def images_response(
    items: list[dict],
    *,
    output_format: str | None,
    size: str | None,
    metadata: dict,
    created: int | None = None,
) -> tuple[dict, list[bytes]]:
    """OpenAI's ImagesResponse (created, data, output_format, size) plus arena's `metadata`.

    Each item's `b64_json` is the image's base64 text as bytes: the body holds a marker for it
    and the texts come back apart, in order, for images_reply() to send without joining them
    into one buffer (megabytes per image)."""
    texts: list[bytes] = []
    data = []
    for item in items:
        text = item.get("b64_json")
        if isinstance(text, bytes):
            item = {**item, "b64_json": f"{B64_MARK}{len(texts)}"}
            texts.append(text)
        data.append(item)
    body: dict = {"created": int(time.time()) if created is None else created, "data": data}
    if output_format:
        body["output_format"] = output_format
    if size:
        body["size"] = size
    body["metadata"] = metadata
    return body, texts


B64_MARK = "\x00arena-b64:"
_B64_MARK_JSON = b"\\u0000arena-b64:"  # how orjson writes the marker inside the JSON string


class PiecesResponse(Response):
    """A body sent as the pieces it is made of, with their total as Content-Length: the images'
    base64 (1.3 MB each) goes to the socket as the provider's reply carried it, never copied
    into a joined body first."""

    media_type = "application/json"

    def __init__(
        self, pieces: list, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.pieces = pieces
        self.status_code = status_code
        self.background = None
        self.body = b""
        length = sum(len(piece) for piece in pieces)
        self.init_headers({**(headers or {}), "content-length": str(length)})

    async def __call__(self, scope, receive, send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        last = len(self.pieces) - 1
        for index, piece in enumerate(self.pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": index < last})


def images_reply(body: dict, texts: list[bytes], headers: dict[str, str] | None = None) -> Response:
    """The reply of images_response(): its JSON, each marker replaced by its base64 text."""
    if not texts:
        return json_reply(body, headers=headers)
    encoded = orjson.dumps(body)
    pieces: list = []
    pos = 0
    for index, text in enumerate(texts):
        marker = b'"' + _B64_MARK_JSON + str(index).encode() + b'"'
        at = encoded.index(marker, pos) + 1  # the first: data[] comes before any other string
        pieces += [encoded[pos:at], text]
        pos = at + len(marker) - 2  # the closing quote starts the next piece
    pieces.append(encoded[pos:])
    return PiecesResponse(pieces, headers=headers)

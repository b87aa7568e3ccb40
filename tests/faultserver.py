"""A loopback HTTP server speaking the OpenAI images API that misbehaves on purpose, chosen by model name.

Raw asyncio sockets rather than a framework, so it can send what no framework would: wrong
Content-Length, headers that arrive slowly, replies that never come.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading

from support.images import make_bomb_png, make_png
from support.servers import serve_in_thread

GOOD_PNG = make_png()


def _json_reply(status: int, body: dict | bytes, extra_headers: str = "") -> bytes:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
    }
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'X')}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n{extra_headers}\r\n"
    )
    return head.encode() + payload


def _image_reply(png: bytes) -> bytes:
    return _json_reply(200, {"created": 0, "data": [{"b64_json": base64.b64encode(png).decode()}]})


class FaultServer:
    """Behaviour by model name: ok, slow-ok, slow-headers, rate-limit-once, always-429, server-error,
    hang, truncated, invalid-json, not-image, bomb, empty, refuse, no-data, switch (see
    switch_failing). Counts requests per model."""

    def __init__(self, delay_s: float = 0.3) -> None:
        self.delay_s = delay_s
        # slow-ok replies only while this is set: a test clears it to hold a run mid-way, however
        # slow the machine, and sets it to let the run go on
        self.replying = threading.Event()
        self.replying.set()
        # model "switch" answers 500 while this is set, else an image: a provider that recovers
        self.switch_failing = threading.Event()
        self.requests: dict[str, int] = {}
        self._served = serve_in_thread(on_connection=self._handle, name="fault-server")
        self._seen_keys: set[str] = set()

    @property
    def base_url(self) -> str:
        return f"{self._served.url}/v1"

    def __enter__(self) -> FaultServer:
        self._served.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._served.__exit__(*exc)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = (
                    int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                    if b"ength" in head
                    else 0
                )
                body = await reader.readexactly(length)
                self.last_headers = head.decode("latin-1")
                keep = await self._respond(body, writer)
                if not keep:
                    break
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
        ):
            pass
        finally:
            writer.close()

    async def _respond(self, body: bytes, writer: asyncio.StreamWriter) -> bool:
        match = re.search(rb'"model":\s*"([\w-]+)"', body) or re.search(
            rb'name="model"\r\n\r\n([\w-]+)', body
        )
        model = match.group(1).decode() if match else "?"
        self.requests[model] = self.requests.get(model, 0) + 1
        key = hashlib_key(body)
        if model == "ok":
            writer.write(_image_reply(GOOD_PNG))
        elif model == "slow-ok":
            await asyncio.sleep(self.delay_s)
            while not self.replying.is_set():
                await asyncio.sleep(0.01)
            writer.write(_image_reply(GOOD_PNG))
        elif model == "switch":
            if self.switch_failing.is_set():
                writer.write(_json_reply(500, {"error": {"message": "down for now"}}))
            else:
                writer.write(_image_reply(GOOD_PNG))
        elif model == "slow-headers":
            reply = _image_reply(GOOD_PNG)
            for i in range(0, 40, 4):  # dribble the status line and headers
                writer.write(reply[i : i + 4])
                await writer.drain()
                await asyncio.sleep(self.delay_s / 10)
            writer.write(reply[40:])
        elif model == "rate-limit-once":
            if key in self._seen_keys:
                writer.write(_image_reply(GOOD_PNG))
            else:
                self._seen_keys.add(key)
                writer.write(
                    _json_reply(
                        429,
                        {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
                        "retry-after: 0.2\r\n",
                    )
                )
        elif model == "echo-auth":  # a careless provider that quotes the key back in its error
            auth = re.search(r"(?i)authorization: ([^\r]*)", self.last_headers)
            writer.write(
                _json_reply(
                    401,
                    {
                        "error": {
                            "message": f"invalid key: {auth.group(1) if auth else ''}",
                            "code": "invalid_api_key",
                        }
                    },
                )
            )
        elif model == "always-429":
            writer.write(
                _json_reply(
                    429,
                    {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
                    "retry-after: 0.05\r\n",
                )
            )
        elif model == "server-error":
            writer.write(
                _json_reply(
                    500, {"error": {"message": "upstream exploded", "type": "server_error"}}
                )
            )
        elif model == "hang":
            await asyncio.sleep(3600)
        elif model == "truncated":
            reply = _image_reply(GOOD_PNG)
            writer.write(reply[: len(reply) // 2])
            await writer.drain()
            return False
        elif model == "invalid-json":
            writer.write(_json_reply(200, b'{"data": [{"b64_json": "abc"'))
        elif model == "not-image":
            writer.write(_image_reply(b"<html>this is not an image</html>"))
        elif model == "bomb":
            writer.write(_image_reply(make_bomb_png()))
        elif model == "empty":
            writer.write(_json_reply(200, {"created": 0, "data": []}))
        elif model == "no-data":
            writer.write(_json_reply(200, {"created": 0}))
        elif model == "refuse":
            writer.write(
                _json_reply(
                    400,
                    {
                        "error": {
                            "message": "Your request was rejected by the safety system",
                            "type": "image_generation_user_error",
                            "code": "moderation_blocked",
                        }
                    },
                )
            )
        else:
            writer.write(
                _json_reply(
                    404, {"error": {"message": f"no model {model}", "code": "model_not_found"}}
                )
            )
        await writer.drain()
        return True


def hashlib_key(body: bytes) -> str:
    import hashlib

    # The prompt identifies a job well enough to know a retry from a first try.
    match = re.search(rb'"prompt":\s*"([^"]*)"', body) or re.search(
        rb'name="prompt"\r\n\r\n([^\r]*)', body
    )
    return hashlib.sha256(match.group(1) if match else body).hexdigest()

"""A loopback upstream speaking the OpenAI images API that keeps its own log of every request: when
it started and ended, how many were in flight as it started, and whether its client stayed for the
reply. Tests of limits shared across processes read what the provider saw, not what arena says.

Each reply (a small PNG as b64_json) comes after a fixed delay, or the delay named for the
request's model; it carries an `x-request-id` of its own (`up-000001`, ...), which arena stores as
the attempt's request_id. Times are time.monotonic() in this process, taken on the server's own
event loop. A client that goes away while its request waits (a killed process: the kernel closes
its sockets) ends that request there and then, as the provider would see it.

Hand-written HTTP/1.1 (asyncio streams) rather than a framework, so that the moment a request
arrives and the moment its client leaves are both the server's first sight of them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass

from support.images import make_png
from support.servers import HOST, serve_in_thread

PNG_B64 = base64.b64encode(make_png(32, 32, (40, 160, 90))).decode("ascii")


@dataclass
class Served:
    """One request as the upstream saw it."""

    request_id: str
    peer: tuple[str, int]  # the client's address and port
    model: str
    start_s: float  # its request line and headers were in
    in_flight: int  # requests in flight at its start, itself included
    end_s: float | None = None  # replied, or its client left; None while in flight
    answered: bool = False  # the whole reply was handed to the socket before the client left


class Upstream:
    """`with Upstream(delay_s=0.3) as upstream:` serves on `upstream.url` (a provider's base_url);
    `upstream.log()` is every request so far, in order of arrival."""

    def __init__(
        self,
        delay_s: float = 0.3,
        *,
        delays_s: dict[str, float] | None = None,
        host: str = HOST,
    ) -> None:
        self.delay_s = delay_s
        self.delays_s = delays_s or {}
        self._server = serve_in_thread(on_connection=self._serve, name="upstream", host=host)
        self._lock = threading.Lock()  # the log is read from the test's thread
        self._log: list[Served] = []
        self._in_flight = 0

    def __enter__(self) -> Upstream:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    @property
    def url(self) -> str:
        return f"{self._server.url}/v1"

    @property
    def port(self) -> int:
        return self._server.port

    def log(self) -> list[Served]:
        with self._lock:
            return [Served(**vars(served)) for served in self._log]

    # --- the server's loop -----------------------------------------------------------------------

    def _begin(self, peer, model: str, start_s: float) -> Served:
        with self._lock:
            self._in_flight += 1
            served = Served(f"up-{len(self._log) + 1:06d}", peer, model, start_s, self._in_flight)
            self._log.append(served)
        return served

    def _end(self, served: Served, answered: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            served.end_s, served.answered = time.monotonic(), answered

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = tuple(writer.get_extra_info("peername")[:2])
        try:
            while True:  # keep-alive: one request after another on this connection
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return  # the client closed an idle connection
                start_s = time.monotonic()
                method, path, headers = _parse_head(head)
                served = self._begin(peer, "", start_s)
                answered = False
                try:
                    body = await _read_body(reader, headers)
                    status, reply = _reply(method, path, body)
                    served.model = reply.pop("_model", "")
                    delay_s = self.delays_s.get(served.model, self.delay_s)
                    if await _client_left_within(reader, delay_s):
                        return
                    payload = json.dumps(reply).encode()
                    writer.write(
                        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                        f"content-length: {len(payload)}\r\nx-request-id: {served.request_id}\r\n"
                        "\r\n".encode()
                        + payload
                    )
                    await writer.drain()
                    answered = True
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client left mid-request
                finally:
                    self._end(served, answered)
        finally:
            writer.close()


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        pieces = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            pieces.append(await reader.readexactly(size + 2))  # the chunk and its CRLF
            if size == 0:
                return b"".join(p[:-2] for p in pieces)
    return await reader.readexactly(int(headers.get("content-length", "0")))


def _reply(method: str, path: str, body: bytes) -> tuple[str, dict]:
    """(status line's code and reason, the JSON reply) for a request; `_model` says whose it was."""
    if method != "POST" or not path.endswith("/images/generations"):
        return "404 Not Found", {"error": {"message": f"no route {method} {path}"}}
    try:
        model = str(json.loads(body).get("model", ""))
    except (ValueError, AttributeError):
        return "400 Bad Request", {"error": {"message": "the body is not a JSON object"}}
    return "200 OK", {"created": int(time.time()), "data": [{"b64_json": PNG_B64}], "_model": model}


async def _client_left_within(reader: asyncio.StreamReader, delay_s: float) -> bool:
    """Wait delay_s; True as soon as the client closes or resets its connection meanwhile.

    A client waiting for its reply sends nothing more (no pipelining), so anything readable now is
    the end of the connection."""
    try:
        async with asyncio.timeout(delay_s):
            await reader.read(1)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True

"""A TCP proxy in front of PostgreSQL that drops a client's connection just after a chosen
transaction has committed, before the client hears that it did: the one failure after which a
client cannot know whether its write happened.

It reads the frontend protocol as it passes (connections must not use TLS: `sslmode=disable`): a
transaction whose statements contain `pattern` (in a Query, or a Parse, or a Bind of a statement
prepared earlier) is cut at its COMMIT, the first `cuts` times. The COMMIT goes on to the server;
what the server answers is swallowed, and once it has said it is ready again (so the commit is
done) both connections are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from urllib.parse import urlsplit, urlunsplit

from support.servers import serve_in_thread

_READY = b"Z"


class CommitCutter:
    """`with CommitCutter(url, "WITH free_jobs AS") as proxy:` then connect to `proxy.url(url)`;
    `proxy.cut_at` holds the time.monotonic() of each cut."""

    def __init__(self, url: str, pattern: str, cuts: int = 1) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.pattern = pattern.encode()
        self.cuts_left = cuts
        self.cut_at: list[float] = []
        self._server = serve_in_thread(on_connection=self._serve, name="pg-commit-cutter")

    def __enter__(self) -> CommitCutter:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    def url(self, url: str) -> str:
        """`url` (postgresql://user@host:port/db?...) pointed at the proxy, without TLS."""
        parts = urlsplit(url)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        query = "&".join(q for q in (parts.query, "sslmode=disable") if q)
        netloc = f"{user}127.0.0.1:{self._server.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    async def _serve(self, client_r, client_w) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            return
        cut = asyncio.Event()
        pumps = [
            asyncio.ensure_future(self._from_client(client_r, server_w, cut)),
            asyncio.ensure_future(self._from_server(server_r, client_w, cut)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client_w, server_w):
                writer.close()

    async def _from_client(self, reader, writer, cut: asyncio.Event) -> None:
        # The startup message has no type byte: a length, then the rest.
        (length,) = struct.unpack("!I", await reader.readexactly(4))
        writer.write(struct.pack("!I", length) + await reader.readexactly(length - 4))
        statements: dict[bytes, bytes] = {}  # prepared statement name -> its SQL
        armed = False
        while True:
            kind = await reader.readexactly(1)
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            body = await reader.readexactly(length - 4)
            if kind == b"P":  # Parse: name, query
                name, query = body.split(b"\0", 2)[:2]
                statements[name] = query
                armed = armed or self.pattern in query
            elif kind == b"B":  # Bind: portal, statement
                statement = body.split(b"\0", 2)[1]
                armed = armed or self.pattern in statements.get(statement, b"")
            elif kind == b"Q":  # a simple query: BEGIN, COMMIT, ROLLBACK or any text
                text = body.rstrip(b"\0").strip().upper()
                if text in (b"COMMIT", b"ROLLBACK"):
                    if armed and text == b"COMMIT" and self.cuts_left > 0:
                        self.cuts_left -= 1
                        cut.set()  # from here on the server's answers go nowhere
                    armed = False
                else:
                    armed = armed or self.pattern in body
            writer.write(kind + struct.pack("!I", length) + body)
            await writer.drain()

    async def _from_server(self, reader, writer, cut: asyncio.Event) -> None:
        while True:
            kind = await reader.readexactly(1)
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            body = await reader.readexactly(length - 4)
            if cut.is_set():
                if kind == _READY:  # the COMMIT is done: the client never hears of it
                    self.cut_at.append(time.monotonic())
                    return
                continue
            writer.write(kind + struct.pack("!I", length) + body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

"""Loopback servers for tests: an ASGI app under uvicorn, or a raw asyncio connection handler, served
on 127.0.0.1 (or another address of this host) from a thread of its own, on a port the kernel
picks, until the with-block ends."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvicorn

# The product's own, re-exported: only for a port a server must be told before it starts (a server
# process's --port) or one nothing listens on. A server in this process binds port 0 instead.
from arena.providers.local import free_port

__all__ = ["HOST", "LoopbackServer", "free_port", "serve_in_thread"]

HOST = "127.0.0.1"
# How long a server may take to listen, and to stop: a loaded machine (two cores shared by several
# suites) can leave a new thread unscheduled for seconds; a healthy start takes milliseconds.
READY_WITHIN_S = 60.0
STOP_WITHIN_S = 30.0
POLL_S = 0.01

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopbackServer:
    """One server on 127.0.0.1 with its own event loop in a daemon thread; a context manager that
    starts it, waits for its own readiness signal and stops it. Build it with serve_in_thread."""

    def __init__(
        self,
        app: Any = None,
        *,
        on_connection: StreamHandler | None = None,
        name: str = "loopback",
        ready_within_s: float = READY_WITHIN_S,
        host: str = HOST,
        **uvicorn_options: Any,
    ) -> None:
        if (app is None) == (on_connection is None):
            raise TypeError(
                "serve_in_thread serves an ASGI app or a connection handler: one of them"
            )
        if on_connection is not None and uvicorn_options:
            raise TypeError(
                f"uvicorn options for a raw connection handler: {sorted(uvicorn_options)}"
            )
        self.name = name
        self.host = host
        self.port = 0
        self._app = app
        self._on_connection = on_connection
        self._options = {
            "log_level": "warning",
            "access_log": False,
            "timeout_graceful_shutdown": 1,
            **uvicorn_options,
        }
        self._ready_within_s = ready_within_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._stop: Callable[[], Coroutine[Any, Any, None]] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        start = self._start_app() if self._app is not None else self._start_streams()
        future = asyncio.run_coroutine_threadsafe(start, self._loop)
        try:
            self.port = future.result(self._ready_within_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._close()
            raise RuntimeError(
                f"{self.name} did not listen within {self._ready_within_s:g} s"
            ) from None
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._stop is not None:
                asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(STOP_WITHIN_S)
        except concurrent.futures.TimeoutError:
            pass  # a graceful stop that hangs is cut short: _close cancels what is left
        finally:
            self._close()

    async def _start_app(self) -> int:
        server = uvicorn.Server(uvicorn.Config(self._app, host=self.host, port=0, **self._options))

        async def serve() -> None:
            try:
                await server.serve()
            except SystemExit as exc:  # uvicorn's answer to a failed startup; it would end the loop
                raise RuntimeError(f"{self.name}: uvicorn exited at startup ({exc.code})") from None

        serving = asyncio.ensure_future(serve())
        while not server.started:  # uvicorn's own signal: its sockets listen
            if serving.done():
                serving.result()  # raises why it stopped
                raise RuntimeError(f"{self.name}: uvicorn stopped before it listened")
            await asyncio.sleep(POLL_S)

        async def stop() -> None:
            server.should_exit = True
            await serving

        self._stop = stop
        return server.servers[0].sockets[0].getsockname()[1]

    async def _start_streams(self) -> int:
        server = await asyncio.start_server(
            self._on_connection, self.host, 0
        )  # listening on return

        async def stop() -> None:
            server.close()  # handlers still running (a reply that never comes) are cancelled next

        self._stop = stop
        return server.sockets[0].getsockname()[1]

    def _close(self) -> None:
        """Cancel every task left on this server's loop, then stop the loop and its thread."""

        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.get_running_loop().shutdown_asyncgens()

        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(cancel_the_rest(), self._loop).result(
                    STOP_WITHIN_S
                )
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(STOP_WITHIN_S)
        if not self._thread.is_alive():
            self._loop.close()


def serve_in_thread(
    app: Any = None,
    *,
    on_connection: StreamHandler | None = None,
    name: str = "loopback",
    ready_within_s: float = READY_WITHIN_S,
    host: str = HOST,
    **uvicorn_options: Any,
) -> LoopbackServer:
    """A loopback server for `with`: an ASGI `app` under uvicorn (uvicorn_options go to its Config),
    or `on_connection(reader, writer)` under asyncio.start_server for replies no framework would
    send. Inside the block it listens, and `.port` and `.url` say where. `host` is another address
    of this host to listen on (a veth end that a network namespace reaches)."""
    return LoopbackServer(
        app,
        on_connection=on_connection,
        name=name,
        ready_within_s=ready_within_s,
        host=host,
        **uvicorn_options,
    )

"""The tests' own helpers: loopback servers that listen before they are handed over and stop after,
and server processes that are waited for by their health URL, or fail with what they said."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support.processes import start_server, stop, wait_until
from support.servers import free_port, serve_in_thread


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_an_app_is_served_on_a_port_of_its_own_until_the_block_ends():
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hello"))])
    with serve_in_thread(app) as first, serve_in_thread(app) as second:
        assert first.port and second.port and first.port != second.port
        assert httpx.get(first.url, trust_env=False).text == "hello"  # no wait: it already listens
    assert _refused(first.port) and _refused(second.port)


def test_a_connection_handler_is_served_and_its_parked_handlers_do_not_hold_the_stop():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            await asyncio.sleep(3600)  # a reply that never ends
        finally:
            writer.close()

    served = serve_in_thread(on_connection=handle)
    with served as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"ping\n")
        assert sock.recv(16) == b"PING\n"
        started = time.monotonic()
    assert time.monotonic() - started < 10
    assert _refused(server.port)


def test_an_app_that_cannot_start_fails_at_once_with_the_reason():
    @contextlib.asynccontextmanager
    async def lifespan(app):
        raise RuntimeError("no database")
        yield  # pragma: no cover

    started = time.monotonic()
    app = Starlette(lifespan=lifespan)
    with (
        pytest.raises(RuntimeError, match="uvicorn exited at startup"),
        serve_in_thread(app, lifespan="on", log_level="critical"),
    ):
        pass
    assert time.monotonic() - started < 30  # not the readiness deadline


def test_serving_needs_exactly_one_of_an_app_and_a_handler():
    with pytest.raises(TypeError):
        serve_in_thread()


@pytest.mark.slow
def test_a_server_process_is_returned_once_its_health_url_answers(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = start_server(
        command, health_url=f"http://127.0.0.1:{port}/", log_path=tmp_path / "log", cwd=tmp_path
    )
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/", trust_env=False).status_code == 200
    finally:
        stop(proc)
    assert proc.returncode is not None


@pytest.mark.slow
def test_a_server_process_that_exits_first_fails_the_test_with_the_end_of_its_output(tmp_path):
    script = (
        "import sys; print('listening soon'); print('no such config', file=sys.stderr); sys.exit(3)"
    )
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as failure:
        start_server(
            [sys.executable, "-c", script],
            health_url=f"http://127.0.0.1:{free_port()}/",
            log_path=tmp_path / "log",
        )
    assert "exited with status 3" in str(failure.value)
    assert "no such config" in str(failure.value)
    assert time.monotonic() - started < 60  # it did not wait out the deadline


def test_waiting_for_a_condition_fails_with_what_was_awaited():
    ticks = iter(range(100))
    wait_until(lambda: next(ticks) >= 3, what="three ticks")
    with pytest.raises(pytest.fail.Exception, match="waited 0.3 s for the impossible"):
        wait_until(lambda: False, what="the impossible", within_s=0.3)

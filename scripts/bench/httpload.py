"""The benchmarks' lean HTTP/1.1 client (httptools) and their shared readings: CPU steal, percentiles."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import httptools


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time (no pipelining), responses parsed by httptools.

    A lean client on purpose: aiohttp's sessions, cookie jars and stream readers cost the client
    more CPU per request than the server spends, on the same two cores.
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport = None
        self.waiter = None
        self.body = []
        self.cookie = None

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _, conn = await asyncio.get_running_loop().create_connection(cls, host, port)
        return conn

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed by the server"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"set-cookie":
            self.cookie = value.split(b";", 1)[0]

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.waiter.set_result((self.parser.get_status_code(), b"".join(self.body)))

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        self.body = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head + body)
        return await self.waiter

    def close(self) -> None:
        self.transport.close()


def head(method: str, path: str, host: str, extra: bytes = b"", length: int | None = None) -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: arena-bench\r\n".encode() + extra
    )
    if length is not None:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % length
    return head + b"\r\n"


def cpu_steal_s() -> float:
    """Seconds of CPU stolen by the hypervisor so far, all cores (/proc/stat; 0 where there is none)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def percentile_ms(latencies: list[float], q: float) -> float:
    return round(latencies[int(q * (len(latencies) - 1))] * 1000, 2) if latencies else float("nan")


def wait_for_health(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    """Return once `url` answers (then a second more, for every worker to be up); a server that
    exits or does not answer in time ends the benchmark with the tail of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                time.sleep(1.0)  # every worker up
                return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start: {Path(log).read_text()[-2000:]}")

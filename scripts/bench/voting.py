#!/usr/bin/env python3
"""Benchmark the voting server: battle-then-vote cycles per second and latency, SQLite and PostgreSQL.

For each database: the demo's outputs (local baseline models, every challenge, 3 samples) in a
fresh store, `arena serve --workers 2` (1 on SQLite) on loopback, then 64 concurrent voters from
two client processes, each voter on its own keep-alive HTTP/1.1 connection with its own cookie and
CSRF token, one request at a time (no pipelining); a cycle = POST /api/battles + POST /api/votes (a
voter who has seen every image starts a new session on a new connection). The client is a small
asyncio protocol with httptools' parser so that it is not the bottleneck on the same two cores
(aiohttp's client cost ~1 ms of CPU per cycle, more than the server); `client_cpu_pct` reports
what it used. The reference is GET /api/health of the same server, same client, same run.
first_page_kb: the first battle's page with its CSS, JS and images, over the wire. Prints one
JSON line per database.

Usage: scripts/bench/voting.py [--seconds S] [--postgres URL] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httptools  # noqa: E402
import orjson  # noqa: E402
import sqlalchemy as sa  # noqa: E402

CONCURRENCY = 64
CLIENT_PROCESSES = 2


def make_store(data_dir: Path, database_url: str) -> None:
    from arena.config import demo_settings
    from arena.providers import known_protocols
    from arena.runs import run_benchmark

    settings = replace(demo_settings(known_protocols()), data_dir=data_dir, database_url=database_url, samples=3)
    run_benchmark(settings)


def serve(data_dir: Path, database_url: str, workers: int, port: int) -> subprocess.Popen:
    env = {**os.environ, "ARENA_DATA_DIR": str(data_dir), "ARENA_DATABASE_URL": database_url,
           "ARENA_WEB_IP_PER_MIN": "0", "ARENA_WEB_SESSION_PER_MIN": "0"}
    env.pop("ARENA_CONFIG", None)
    arena = str(Path(sys.executable).with_name("arena"))
    proc = subprocess.Popen([arena, "serve", "--port", str(port), "--workers", str(workers)], env=env,
                            cwd=data_dir.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1):
                time.sleep(1.0)  # every worker up
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read().decode()[-2000:]}")


class _Connection(asyncio.Protocol):
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
    async def open(cls, host: str, port: int) -> _Connection:
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


def _head(method: str, path: str, host: str, extra: bytes = b"", length: int | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: arena-bench\r\n".encode() + extra
    if length is not None:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % length
    return head + b"\r\n"


async def _voter(base: str, stop_at: float, latencies: list, errors: list) -> None:
    """A browser-like voter: its own keep-alive connection, cookie and CSRF token; a new voter when it has seen all."""
    parts = urlsplit(base)
    host = parts.netloc
    conn = None
    while time.perf_counter() < stop_at:
        if conn is None:
            conn = await _Connection.open(parts.hostname, parts.port)
            status, body = await conn.request(_head("GET", "/api/session", host))
            token = orjson.loads(body)["csrf_token"]
            auth = b"Origin: %s\r\nX-CSRF-Token: %s\r\nCookie: %s\r\n" % (base.encode(), token.encode(), conn.cookie)
            battle_head = _head("POST", "/api/battles", host, auth, 0)
        start = time.perf_counter()
        status, body = await conn.request(battle_head)
        if status == 404:  # this voter has seen every image: a new voter
            conn.close()
            conn = None
            continue
        if status != 200:
            errors.append(status)
            continue
        vote = orjson.dumps({"battle_id": orjson.loads(body)["battle_id"], "choice": "a"})
        status, body = await conn.request(_head("POST", "/api/votes", host, auth, len(vote)), vote)
        if status != 200:
            errors.append(status)
            continue
        latencies.append(time.perf_counter() - start)
    if conn is not None:
        conn.close()


async def _cycles(base: str, seconds: float, concurrency: int) -> dict:
    latencies, errors = [], []
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(*(_voter(base, stop_at, latencies, errors) for _ in range(concurrency)))
    return {"latencies": latencies, "errors": errors}


async def _reference(base: str, seconds: float, concurrency: int) -> dict:
    parts = urlsplit(base)
    head = _head("GET", "/api/health", parts.netloc)
    count = 0
    stop_at = time.perf_counter() + seconds

    async def loop():
        nonlocal count
        conn = await _Connection.open(parts.hostname, parts.port)
        while time.perf_counter() < stop_at:
            await conn.request(head)
            count += 1
        conn.close()

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return {"count": count}


def _client_process(kind: str, base: str, seconds: float, concurrency: int, queue) -> None:
    import uvloop

    run = _cycles if kind == "cycles" else _reference
    before = time.process_time()
    result = uvloop.run(run(base, seconds, concurrency))
    queue.put({**result, "cpu_s": time.process_time() - before})


def load(kind: str, base: str, seconds: float) -> list[dict]:
    """Run the load from CLIENT_PROCESSES client processes, CONCURRENCY connections in all."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_client_process, args=(kind, base, seconds, CONCURRENCY // CLIENT_PROCESSES, queue))
             for _ in range(CLIENT_PROCESSES)]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return results


def first_page_kb(base: str) -> float:
    """Bytes over the wire (status line, headers, body) of the page and everything it loads for the first battle."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    total, cookie = 0, None

    def fetch(path: str) -> bytes:
        nonlocal total, cookie
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        reply = conn.getresponse()
        body = reply.read()
        head = f"HTTP/1.1 {reply.status} {reply.reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in reply.getheaders())
        total += len(head) + 2 + len(body)
        if reply.getheader("set-cookie"):
            cookie = reply.getheader("set-cookie").split(";")[0]
        return body

    page = fetch("/").decode()
    for path in re.findall(r'(?:src|href)="(/[^"]+)"', page):
        if not path.startswith("/leaderboard"):
            fetch(path)
    conn.close()
    return total / 1024


def bench(backend: str, database_url: str, seconds: float, workdir: Path) -> dict:
    data_dir = workdir / backend / "data"
    make_store(data_dir, database_url)
    from socket import socket

    with socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = serve(data_dir, database_url, 2 if backend == "postgresql" else 1, port)
    base = f"http://127.0.0.1:{port}"
    try:
        page_kb = first_page_kb(base)
        load("cycles", base, 1.0)  # warm-up: connections, statement caches
        cycles = load("cycles", base, seconds)
        reference = load("reference", base, seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    latencies = sorted(x for r in cycles for x in r["latencies"])
    client_cpu_s = sum(r["cpu_s"] for r in cycles)
    errors = [e for r in cycles for e in r["errors"]]
    if errors:
        print(f"warning: {len(errors)} non-200 replies: {sorted(set(errors))}", file=sys.stderr)
    cycles_per_s = len(latencies) / seconds
    reference_rps = sum(r["count"] for r in reference) / seconds
    return {
        "backend": backend,
        "cycles_per_s": round(cycles_per_s, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
        "reference_rps": round(reference_rps, 1),
        "ratio": round(cycles_per_s / reference_rps, 3),
        "first_page_kb": round(page_kb, 1),
        "client_cpu_pct": round(100 * client_cpu_s / seconds, 1),  # of one core, all client processes
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arena-bench-voting-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "sqlite"):
            print(json.dumps(bench("sqlite", f"sqlite:///{workdir / 'sqlite' / 'data' / 'arena.db'}", args.seconds, workdir)),
                  flush=True)
        if args.only in (None, "postgresql"):
            schema = f"bench_voting_{secrets.token_hex(4)}"
            admin = sa.create_engine(args.postgres.replace("postgresql://", "postgresql+psycopg://", 1))
            with admin.begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            try:
                url = f"{args.postgres}?options=-csearch_path%3D{schema}"
                print(json.dumps(bench("postgresql", url, args.seconds, workdir)), flush=True)
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                admin.dispose()


if __name__ == "__main__":
    main()

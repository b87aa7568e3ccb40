#!/usr/bin/env python3
"""Benchmark the gateway: the latency it adds in front of a provider, its throughput, its memory.

An upstream on loopback speaks OpenAI's images protocol and answers every request after a fixed
delay with the same 1 MB PNG as base64 (a reply built once: the upstream costs nearly nothing). The
same lean client (httptools, two processes, one keep-alive connection per request in flight) then
calls the upstream directly and through `arena gateway --workers 2` on PostgreSQL, in the same run:

- at_rate: an open loop (wrk2's: latency from each request's scheduled start) at --rate requests/s
  with the upstream's delay set so that rate x delay requests are in flight (>= 300); the added
  latency is the gateway's percentile minus the direct one's (p50 and p99).
- capacity: a closed loop of --concurrency requests with a short upstream delay; requests/s through
  the gateway, and the direct client's figure as the reference (ratio_to_direct).
- memory: each gateway worker's peak RSS while --in-flight requests are held in flight.
- loop lag: the gateway's own event-loop lag (GET /health reports it) during the open loop.

Prints one JSON line. Usage: scripts/bench/gateway.py [--seconds S] [--rate R] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import io
import json
import multiprocessing
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # httpload, the lean client

import httptools  # noqa: E402
import orjson  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from httpload import Connection, cpu_steal_s, head, percentile_ms, wait_for_health  # noqa: E402

CLIENT_PROCESSES = 2
WARMUP_S = 1.0  # the open loop's first second past the upstream's delay is run but not counted
MODEL = "bench-model"
IMAGE_BYTES = 1_000_000


# --- the upstream: OpenAI's images protocol, a fixed delay, one prebuilt 1 MB reply ---------------


def make_png(size_bytes: int = IMAGE_BYTES) -> bytes:
    """A PNG of about `size_bytes` (noise compresses to nothing, so the pixels set its size)."""
    from PIL import Image

    side = int((size_bytes / 3) ** 0.5)
    rng = random.Random(7)
    pixels = bytes(rng.getrandbits(8) for _ in range(side * side * 3))
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class _Upstream(asyncio.Protocol):
    """One connection to the upstream: each complete request is answered after the delay."""

    reply: bytes = b""
    delay_s: float = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        loop = asyncio.get_running_loop()
        delay = _Upstream.delay_s
        if delay > 0:
            loop.call_later(delay, self._answer)
        else:
            self._answer()

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_Upstream.reply)


def _upstream_process(port: int, png: bytes, delay_file: str, ready) -> None:
    import uvloop

    body = orjson.dumps(
        {"created": int(time.time()), "data": [{"b64_json": base64.b64encode(png).decode()}]}
    )
    _Upstream.reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Upstream, "127.0.0.1", port, backlog=4096)
        ready.set()

        async def follow_delay() -> None:  # the bench sets the delay between phases through a file
            while True:
                with contextlib.suppress(OSError, ValueError):
                    _Upstream.delay_s = float(Path(delay_file).read_text() or 0)
                await asyncio.sleep(0.1)

        loop.create_task(follow_delay())
        async with server:
            await server.serve_forever()

    uvloop.run(main())


# --- the client ------------------------------------------------------------------------------------


def _request_head(netloc: str, path: str, key: str | None, length: int) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n".encode() if key else b""
    return head("POST", path, netloc, auth, length)


async def _open_loop(
    host, port, path, key, body, seconds, rate_per_s, connections, ready, warmup_s=WARMUP_S
) -> dict:
    """Requests on a fixed schedule, each on a free connection; latency from the scheduled start.

    The first `warmup_s` are sent but not counted: with an upstream delay of 1.6 s, requests of
    the first 1.6 s all find the gateway's pool to the upstream without a connection yet (each
    opens one) and no reply coming back, which is no steady state at `rate_per_s`."""
    free: asyncio.Queue = asyncio.Queue()
    for conn in await asyncio.gather(*(Connection.open(host, port) for _ in range(connections))):
        free.put_nowait(conn)
    request = _request_head(f"{host}:{port}", path, key, len(body)) + body
    latencies, errors, tasks = [], [], []
    await ready()
    start = time.perf_counter() + 0.05
    measured_from = start + warmup_s

    async def one(scheduled: float) -> None:
        conn = await free.get()
        try:
            status, reply = await conn.request(request)
        except ConnectionError:
            errors.append("closed")
            conn = await Connection.open(host, port)
        else:
            if status != 200 or len(reply) < IMAGE_BYTES:
                errors.append(status)
            elif scheduled >= measured_from:
                latencies.append(time.perf_counter() - scheduled)
        free.put_nowait(conn)

    for index in range(int((seconds + warmup_s) * rate_per_s)):
        scheduled = start + index / rate_per_s
        if scheduled > time.perf_counter():
            await asyncio.sleep(scheduled - time.perf_counter())
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    while not free.empty():
        free.get_nowait().close()
    return {"latencies": latencies, "errors": errors}


async def _closed_loop(
    host, port, path, key, body, seconds, rate_per_s, connections, ready
) -> dict:
    conns = await asyncio.gather(*(Connection.open(host, port) for _ in range(connections)))
    request = _request_head(f"{host}:{port}", path, key, len(body)) + body
    latencies, errors = [], []
    await ready()
    stop_at = time.perf_counter() + seconds

    async def loop(conn: Connection) -> None:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            status, reply = await conn.request(request)
            if status == 200 and len(reply) >= IMAGE_BYTES:
                latencies.append(time.perf_counter() - start)
            else:
                errors.append(status)
        conn.close()

    await asyncio.gather(*(loop(conn) for conn in conns))
    return {"latencies": latencies, "errors": errors}


def _client_process(kind, args, barrier, queue) -> None:
    import uvloop

    gc.collect()
    gc.disable()  # the client's own collections would count as the server's latency

    async def ready() -> None:
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)

    run = {"open": _open_loop, "closed": _closed_loop}[kind]
    before = time.process_time()
    *args, warmup_s = args
    extra = {"warmup_s": warmup_s} if kind == "open" else {}
    result = uvloop.run(run(*args, ready, **extra))
    queue.put({**result, "cpu_s": time.process_time() - before})


def load(
    kind, port, path, key, body, seconds, rate_per_s=0.0, connections=64, warmup_s=WARMUP_S
) -> dict:
    """The load from CLIENT_PROCESSES processes; latencies sorted, errors counted."""
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(CLIENT_PROCESSES)
    share = (
        "127.0.0.1",
        port,
        path,
        key,
        body,
        seconds,
        rate_per_s / CLIENT_PROCESSES,
        connections // CLIENT_PROCESSES,
        warmup_s,
    )
    procs = [
        ctx.Process(target=_client_process, args=(kind, share, barrier, queue))
        for _ in range(CLIENT_PROCESSES)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return {
        "latencies": sorted(x for r in results for x in r["latencies"]),
        "errors": [e for r in results for e in r["errors"]],
        "cpu_s": sum(r["cpu_s"] for r in results),
    }


# --- the gateway under test -------------------------------------------------------------------------


def write_config(workdir: Path, upstream_port: int, database_url: str) -> Path:
    config = workdir / "arena.toml"
    config.write_text(
        f"""database_url = "{database_url}"
data_dir = "{workdir / "data"}"

[providers.upstream]
protocol = "openai"
base_url = "http://127.0.0.1:{upstream_port}/v1"
api_key_env = "ARENA_BENCH_UPSTREAM_KEY"
rate_limit_per_s = 100000
max_concurrency = 2000
timeout_s = 60

[models.{MODEL}]
tasks = ["text-to-image"]
[models.{MODEL}.providers.upstream]
model_id = "gpt-image-1"
price_usd = 0.01
"""
    )
    return config


def _arena(*args: str, env: dict, **kwargs) -> subprocess.CompletedProcess:
    arena = str(Path(sys.executable).with_name("arena"))
    return subprocess.run([arena, *args], env=env, capture_output=True, text=True, **kwargs)


def start_gateway(config: Path, port: int, workers: int, env: dict, log: Path) -> subprocess.Popen:
    arena = str(Path(sys.executable).with_name("arena"))
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [
                arena,
                "gateway",
                "--config",
                str(config),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
    wait_for_health(f"http://127.0.0.1:{port}/health", proc, log)
    return proc


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRss:
    """Samples the RSS of the gateway's worker processes every 50 ms; keeps each one's peak."""

    def __init__(self, parent: int) -> None:
        self.parent, self.peaks, self._stop = parent, {}, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            workers = [p for p in _children(self.parent) if p != self.parent] or [self.parent]
            for pid in workers:
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), _rss_mb(pid))

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()


def _workers_rss_mb(parent: int) -> float:
    """The largest RSS among the gateway's workers now (RSS stays where a phase left it)."""
    return round(max(_rss_mb(p) for p in (_children(parent) or [parent])), 1)


def loop_lag(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
        return json.loads(reply.read()).get("loop_lag_ms", {})


def _ms(latencies: list[float], q: float) -> float:
    return percentile_ms(latencies, q)


def bench(args, workdir: Path, database_url: str) -> dict:
    from arena.providers.local import free_port

    png = make_png()
    delay_file = workdir / "delay"
    delay_file.write_text("0")
    upstream_port, gateway_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    upstream = ctx.Process(
        target=_upstream_process, args=(upstream_port, png, str(delay_file), ready), daemon=True
    )
    upstream.start()
    ready.wait(30)
    env = {**os.environ, "ARENA_BENCH_UPSTREAM_KEY": "sk-bench-" + secrets.token_hex(8)}
    for name in ("ARENA_CONFIG", "ARENA_DATABASE_URL", "ARENA_DATA_DIR"):
        env.pop(name, None)
    config = write_config(workdir, upstream_port, database_url)
    made = _arena("keys", "create", "bench", "--config", str(config), env=env)
    if made.returncode != 0:
        raise SystemExit(f"arena keys create failed: {made.stderr.strip()}")
    key = next(word for word in made.stdout.split() if word.startswith("arena-"))
    gateway = start_gateway(config, gateway_port, args.workers, env, workdir / "gateway.log")
    started_rss = [_rss_mb(pid) for pid in _children(gateway.pid) or [gateway.pid]]
    body = orjson.dumps(
        {"model": MODEL, "prompt": "a lighthouse at dusk", "response_format": "b64_json"}
    )
    path = "/v1/images/generations"
    delay_s = args.in_flight_at_rate / args.rate
    try:
        delay_file.write_text("0.05")
        time.sleep(0.3)
        load("closed", gateway_port, path, key, body, 1.0, connections=64)  # warm-up
        # at rate, in flight = rate x delay
        delay_file.write_text(str(delay_s))
        time.sleep(0.3)
        connections = int(args.in_flight_at_rate * 1.5)
        steal_before, wall_before = cpu_steal_s(), time.monotonic()
        warmup_s = delay_s + WARMUP_S
        direct = load(
            "open", upstream_port, path, None, body, args.seconds, args.rate, connections, warmup_s
        )
        through = load(
            "open", gateway_port, path, key, body, args.seconds, args.rate, connections, warmup_s
        )
        lag = loop_lag(gateway_port)
        rss_after = {"at_rate": _workers_rss_mb(gateway.pid)}
        steal_pct = 100 * (cpu_steal_s() - steal_before) / (time.monotonic() - wall_before)
        # capacity: a closed loop with a short delay
        delay_file.write_text("0.05")
        time.sleep(0.3)
        direct_cap = load(
            "closed", upstream_port, path, None, body, args.seconds, connections=args.concurrency
        )
        gateway_cap = load(
            "closed", gateway_port, path, key, body, args.seconds, connections=args.concurrency
        )
        rss_after["capacity"] = _workers_rss_mb(gateway.pid)
        # memory: args.in_flight requests held at the upstream
        delay_file.write_text("2.0")
        time.sleep(0.3)
        with PeakRss(gateway.pid) as rss:
            held = load(
                "open",
                gateway_port,
                path,
                key,
                body,
                4.0,
                args.in_flight / 2.0,
                args.in_flight + 64,
            )
    finally:
        gateway.terminate()
        gateway.wait(timeout=60)
        upstream.terminate()
    errors = direct["errors"] + through["errors"] + gateway_cap["errors"] + held["errors"]
    if errors:
        print(
            f"warning: {len(errors)} failed requests: {sorted(set(map(str, errors)))[:5]}",
            file=sys.stderr,
        )
    added_p50 = _ms(through["latencies"], 0.5) - _ms(direct["latencies"], 0.5)
    added_p99 = _ms(through["latencies"], 0.99) - _ms(direct["latencies"], 0.99)
    gateway_rps = len(gateway_cap["latencies"]) / args.seconds
    direct_rps = len(direct_cap["latencies"]) / args.seconds
    return {
        "bench": "gateway",
        "workers": args.workers,
        "image_bytes": len(png),
        "rate_per_s": args.rate,
        "in_flight": round(args.rate * delay_s),
        "upstream_delay_ms": round(delay_s * 1000),
        "direct_p50_ms": _ms(direct["latencies"], 0.5),
        "direct_p99_ms": _ms(direct["latencies"], 0.99),
        "gateway_p50_ms": _ms(through["latencies"], 0.5),
        "gateway_p99_ms": _ms(through["latencies"], 0.99),
        "added_p50_ms": round(added_p50, 2),  # target <= 3
        "added_p99_ms": round(added_p99, 2),  # target <= 15
        "ratio_p50_to_direct": round(
            _ms(through["latencies"], 0.5) / _ms(direct["latencies"], 0.5), 4
        ),
        "capacity_rps": round(gateway_rps, 1),  # target >= 400 with --workers 2
        "direct_capacity_rps": round(direct_rps, 1),
        "ratio_to_direct": round(gateway_rps / direct_rps, 3) if direct_rps else None,
        "capacity_concurrency": args.concurrency,
        "peak_rss_mb_per_worker": round(max(rss.peaks.values(), default=0.0), 1),  # target <= 300
        "rss_in_flight": args.in_flight,
        # per worker after each earlier phase: where the memory phase's peak starts from
        "rss_mb_after_at_rate": rss_after["at_rate"],
        "rss_mb_after_capacity": rss_after["capacity"],
        "started_rss_mb_per_worker": round(max(started_rss, default=0.0), 1),  # before any load
        "loop_lag_ms": lag,
        "client_cpu_pct": round(100 * gateway_cap["cpu_s"] / args.seconds, 1),
        "errors": len(errors),
        "steal_pct": round(steal_pct, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=200.0, help="open loop requests/s")
    parser.add_argument("--in-flight-at-rate", type=int, default=320)
    parser.add_argument("--concurrency", type=int, default=128, help="closed loop connections")
    parser.add_argument("--in-flight", type=int, default=500, help="held for the memory reading")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arena-bench-gateway-") as tmp:
        schema = f"bench_gateway_{secrets.token_hex(4)}"
        admin = sa.create_engine(args.postgres.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        try:
            url = f"{args.postgres}?options=-csearch_path%3D{schema}"
            print(json.dumps(bench(args, Path(tmp), url)), flush=True)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()


if __name__ == "__main__":
    main()

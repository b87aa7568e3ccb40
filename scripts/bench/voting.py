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
import gc
import json
import multiprocessing
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # httpload, the lean client

import orjson  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from httpload import Connection, cpu_steal_s, head, percentile_ms, wait_for_health  # noqa: E402

CONCURRENCY = 64
CLIENT_PROCESSES = 2
OPEN_LOOP_WARMUP_S = (
    1.0  # the open loop's first second is run but not counted (new sessions, first statements)
)
SESSION_VOTES = (
    10,
    80,
)  # a voter's votes before it leaves, uniform (the demo's pool runs out at ~80)


def make_store(data_dir: Path, database_url: str) -> None:
    from arena.app.runs import run_benchmark
    from arena.config import demo_settings
    from arena.providers import protocol_facts

    settings = replace(
        demo_settings(protocol_facts()), data_dir=data_dir, database_url=database_url, samples=3
    )
    run_benchmark(settings)


def serve(data_dir: Path, database_url: str, workers: int, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "ARENA_DATA_DIR": str(data_dir),
        "ARENA_DATABASE_URL": database_url,
        "ARENA_WEB_IP_PER_MIN": "0",
        "ARENA_WEB_SESSION_PER_MIN": "0",
    }
    env.pop("ARENA_CONFIG", None)
    arena = str(Path(sys.executable).with_name("arena"))
    with open(
        data_dir.parent / "serve.log", "wb"
    ) as log:  # a file, not a pipe nobody reads during the load
        proc = subprocess.Popen(
            [arena, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=data_dir.parent,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    wait_for_health(f"http://127.0.0.1:{port}/api/health", proc, data_dir.parent / "serve.log")
    return proc


class _Voter:
    """A browser-like voter: its own keep-alive connection, cookie and CSRF token. It leaves after a
    random number of votes (SESSION_VOTES) or when it has seen every image, and a new voter (new
    session, new connection) takes its place: voters come and go at random times, not all at once."""

    def __init__(self, base: str, rng: random.Random) -> None:
        parts = urlsplit(base)
        self.base, self.host, self.port, self.netloc = (
            base,
            parts.hostname,
            parts.port,
            parts.netloc,
        )
        self.conn, self.rng, self.votes_left = None, rng, 0

    async def start(self) -> None:
        self.votes_left = self.rng.randint(*SESSION_VOTES)
        self.conn = await Connection.open(self.host, self.port)
        _, body = await self.conn.request(head("GET", "/api/session", self.netloc))
        token = orjson.loads(body)["csrf_token"]
        self.auth = b"Origin: %s\r\nX-CSRF-Token: %s\r\nCookie: %s\r\n" % (
            self.base.encode(),
            token.encode(),
            self.conn.cookie,
        )
        self.battle_head = head("POST", "/api/battles", self.netloc, self.auth, 0)

    async def cycle(self) -> int:
        """One battle, then a vote on it: 200, or the first other status."""
        while True:
            if self.conn is None or self.votes_left == 0:
                self.close()
                await self.start()
            status, body = await self.conn.request(self.battle_head)
            if status != 404:
                break
            self.close()  # this voter has seen every image: a new voter
        if status != 200:
            return status
        vote = orjson.dumps({"battle_id": orjson.loads(body)["battle_id"], "choice": "a"})
        status, _ = await self.conn.request(
            head("POST", "/api/votes", self.netloc, self.auth, len(vote)), vote
        )
        self.votes_left -= 1
        return status

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


async def _started_voters(base: str, count: int) -> list[_Voter]:
    """`count` voters, each connected and in session."""
    rng = random.Random()
    voters = [_Voter(base, rng) for _ in range(count)]
    await asyncio.gather(*(voter.start() for voter in voters))
    return voters


async def _cycles(base: str, seconds: float, concurrency: int, rate_per_s: float, ready) -> dict:
    """Closed loop: `concurrency` voters, each starting its next cycle when the last one ends."""
    latencies, errors = [], []
    voters = await _started_voters(base, concurrency)
    await ready()
    stop_at = time.perf_counter() + seconds

    async def run(voter: _Voter) -> None:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            status = await voter.cycle()
            if status == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors.append(status)
        voter.close()

    await asyncio.gather(*(run(voter) for voter in voters))
    return {"latencies": latencies, "errors": errors}


async def _open_loop(base: str, seconds: float, concurrency: int, rate_per_s: float, ready) -> dict:
    """Open loop (wrk2): cycles start on a fixed schedule, evenly spaced at rate_per_s, each on a free
    voter; a cycle's latency counts from its scheduled start, so a stall is charged to every cycle
    that should have started during it instead of delaying the schedule (coordinated omission)."""
    free: asyncio.Queue = asyncio.Queue()
    voters = await _started_voters(base, concurrency)  # connected before the schedule starts
    for voter in voters:
        free.put_nowait(voter)
    latencies, errors, tasks = [], [], []
    await ready()

    async def run(scheduled: float) -> None:
        voter = await free.get()
        status = await voter.cycle()
        if status != 200:
            errors.append(status)
        elif scheduled >= measured_from:
            latencies.append(time.perf_counter() - scheduled)
        free.put_nowait(voter)

    start = time.perf_counter() + 0.05  # perf_counter: uvloop's loop.time() has 1 ms steps
    measured_from = start + OPEN_LOOP_WARMUP_S
    for index in range(int((seconds + OPEN_LOOP_WARMUP_S) * rate_per_s)):
        scheduled = start + index / rate_per_s
        if scheduled > time.perf_counter():
            await asyncio.sleep(scheduled - time.perf_counter())
        tasks.append(asyncio.create_task(run(scheduled)))
    await asyncio.gather(*tasks)
    while not free.empty():
        free.get_nowait().close()
    return {
        "latencies": latencies,
        "errors": errors,
        "seconds": time.perf_counter() - measured_from,
    }


async def _reference(base: str, seconds: float, concurrency: int, rate_per_s: float, ready) -> dict:
    parts = urlsplit(base)
    health = head("GET", "/api/health", parts.netloc)
    count = 0
    conns = await asyncio.gather(
        *(Connection.open(parts.hostname, parts.port) for _ in range(concurrency))
    )
    await ready()
    stop_at = time.perf_counter() + seconds

    async def loop(conn: Connection):
        nonlocal count
        while time.perf_counter() < stop_at:
            await conn.request(health)
            count += 1
        conn.close()

    await asyncio.gather(*(loop(conn) for conn in conns))
    return {"count": count}


def _client_process(
    kind: str, base: str, seconds: float, concurrency: int, rate_per_s: float, barrier, queue
) -> None:
    import uvloop

    run = {"cycles": _cycles, "open": _open_loop, "reference": _reference}[kind]
    # the client's own collector pauses (20-30 ms each) would count as server latency in the open loop
    gc.collect()
    gc.disable()

    async def ready() -> None:
        """Every client process connected and its voters in session: then all start at once (a
        process still starting up, importing and connecting, slowed the other's first second)."""
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)

    before = time.process_time()
    result = uvloop.run(run(base, seconds, concurrency, rate_per_s, ready))
    queue.put({**result, "cpu_s": time.process_time() - before})


def load(kind: str, base: str, seconds: float, rate_per_s: float = 0.0) -> list[dict]:
    """Run the load from CLIENT_PROCESSES client processes: CONCURRENCY connections in all and, for
    the open loop, rate_per_s cycles a second in all."""
    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(CLIENT_PROCESSES)
    procs = [
        ctx.Process(
            target=_client_process,
            args=(
                kind,
                base,
                seconds,
                CONCURRENCY // CLIENT_PROCESSES,
                rate_per_s / CLIENT_PROCESSES,
                barrier,
                queue,
            ),
        )
        for _ in range(CLIENT_PROCESSES)
    ]
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
        head = f"HTTP/1.1 {reply.status} {reply.reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in reply.getheaders()
        )
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


def bench(
    backend: str, database_url: str, seconds: float, rate_per_s: float, workers: int, workdir: Path
) -> dict:
    data_dir = workdir / backend / "data"
    make_store(data_dir, database_url)
    from socket import socket

    with socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = serve(data_dir, database_url, workers, port)
    base = f"http://127.0.0.1:{port}"
    try:
        page_kb = first_page_kb(base)
        load("cycles", base, 1.0)  # warm-up: connections, statement caches
        steal_before = cpu_steal_s()
        at_rate = load("open", base, seconds, rate_per_s)
        steal_s = cpu_steal_s() - steal_before
        capacity = load("cycles", base, seconds)
        reference = load("reference", base, seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    errors = [e for r in at_rate + capacity for e in r["errors"]]
    if errors:
        print(f"warning: {len(errors)} non-200 replies: {sorted(set(errors))}", file=sys.stderr)
    at_rate_latencies = sorted(x for r in at_rate for x in r["latencies"])
    capacity_latencies = sorted(x for r in capacity for x in r["latencies"])
    cycles_per_s = len(capacity_latencies) / seconds
    reference_rps = sum(r["count"] for r in reference) / seconds
    return {
        "backend": backend,
        "workers": workers,
        "cycles_per_s": round(cycles_per_s, 1),  # capacity: the closed loop's throughput
        "rate_per_s": rate_per_s,
        "rate_done_per_s": round(len(at_rate_latencies) / max(r["seconds"] for r in at_rate), 1),
        "p50_ms": percentile_ms(
            at_rate_latencies, 0.5
        ),  # open loop at rate_per_s, from the scheduled start
        "p99_ms": percentile_ms(at_rate_latencies, 0.99),
        "capacity_p50_ms": percentile_ms(
            capacity_latencies, 0.5
        ),  # closed loop, CONCURRENCY voters
        "capacity_p99_ms": percentile_ms(capacity_latencies, 0.99),
        "reference_rps": round(reference_rps, 1),
        "ratio": round(cycles_per_s / reference_rps, 3),
        "first_page_kb": round(page_kb, 1),
        "client_cpu_pct": round(
            100 * sum(r["cpu_s"] for r in capacity) / seconds, 1
        ),  # of one core, closed loop
        "errors": len(errors),
        # CPU time the hypervisor gave to other machines during the open loop, in % of one core: a
        # noisy neighbour shows here, and in the tail latency, rather than in our code
        "steal_pct": round(100 * steal_s / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="cycles a second of the open loop (default 1000)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes on PostgreSQL (SQLite: 1)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arena-bench-voting-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "sqlite"):
            print(
                json.dumps(
                    bench(
                        "sqlite",
                        f"sqlite:///{workdir / 'sqlite' / 'data' / 'arena.db'}",
                        args.seconds,
                        args.rate,
                        1,
                        workdir,
                    )
                ),
                flush=True,
            )
        if args.only in (None, "postgresql"):
            schema = f"bench_voting_{secrets.token_hex(4)}"
            admin = sa.create_engine(
                args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
            )
            with admin.begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            try:
                url = f"{args.postgres}?options=-csearch_path%3D{schema}"
                print(
                    json.dumps(
                        bench("postgresql", url, args.seconds, args.rate, args.workers, workdir)
                    ),
                    flush=True,
                )
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                admin.dispose()


if __name__ == "__main__":
    main()

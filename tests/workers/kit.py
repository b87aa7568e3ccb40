"""The workers' test helpers: a run planned for an upstream on loopback, `arena worker` processes,
what the store says of the run's jobs and attempts, and what the upstream's own log says of the
limits every worker shared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from support.processes import wait_until
from support.upstream import Served

from arena.app.runs import plan_only
from arena.config import load_settings
from arena.providers import protocol_facts

ROOT = Path(__file__).resolve().parent.parent.parent
KEY_ENV = "ARENA_TEST_UPSTREAM_KEY"
KEY = "sk-test-upstream"
PROVIDER = "up"


def write_worker_config(
    path: Path,
    *,
    base_url: str,
    db_url: str,
    challenges_dir: Path,
    data_dir: Path,
    models: list[str],
    samples: int,
    max_concurrency: int,
    rate_per_s: float,
    lease_ttl_s: float = 30.0,
) -> Path:
    """An arena.toml: one OpenAI-protocol provider at base_url (its key in $ARENA_TEST_UPSTREAM_KEY)
    serving text-to-image `models`; no retries, so each job is one request unless it is redone."""
    lines = [
        f'data_dir = "{data_dir}"',
        f'database_url = "{db_url}"',
        f'challenges_dir = "{challenges_dir}"',
        f"samples = {samples}",
        "store_retry_s = 10",
        f"worker_lease_ttl_s = {lease_ttl_s}",
        "",
        f"[providers.{PROVIDER}]",
        'protocol = "openai"',
        f'base_url = "{base_url}"',
        f'api_key_env = "{KEY_ENV}"',
        f"rate_limit_per_s = {rate_per_s}",
        f"max_concurrency = {max_concurrency}",
        "timeout_s = 30",
        "max_retries = 0",
        "",
    ]
    for name in models:
        lines += [
            f'[models."{name}"]',
            'tasks = ["text-to-image"]',
            f'[models."{name}".providers.{PROVIDER}]',
            f'model_id = "{name}"',
            "price_usd = 0.01",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


# The run most of these tests share: two models whose delays make each limit bind in turn (four
# "slow" requests in flight allow only 8 per second: the cap binds; four "quick" ones 80: the rate
# binds), 8 challenges x 6 samples x 2 models = 96 jobs, about 8 s of the upstream's time.
MAX_CONCURRENCY = 4
RATE_PER_S = 20.0
DELAYS_S = {"slow": 0.5, "quick": 0.05}
CHALLENGES, SAMPLES = 8, 6


def write_run_config(
    path: Path, tmp_path: Path, *, base_url: str, db_url: str, lease_ttl_s: float = 30.0, **changes
) -> Path:
    """The shared run's arena.toml at `path` (challenges and data under tmp_path); `changes`
    overrides write_worker_config's arguments (models, samples, ...)."""
    from support.config import write_challenges

    challenges, count = tmp_path / "challenges", changes.pop("challenges", CHALLENGES)
    if not challenges.exists():
        write_challenges(challenges, count)
    arguments = dict(
        base_url=base_url,
        db_url=db_url,
        challenges_dir=challenges,
        data_dir=tmp_path / "data",
        models=sorted(DELAYS_S),
        samples=SAMPLES,
        max_concurrency=MAX_CONCURRENCY,
        rate_per_s=RATE_PER_S,
        lease_ttl_s=lease_ttl_s,
    )
    return write_worker_config(path, **{**arguments, **changes})


def plan_run(tmp_path: Path, **config) -> tuple[Path, str, int]:
    """write_run_config at tmp_path/arena.toml, then plan it: (config, run id, jobs)."""
    path = write_run_config(tmp_path / "arena.toml", tmp_path, **config)
    return (path, *plan(path))


def plan(config: Path) -> tuple[str, int]:
    """`arena run --plan-only`: the new run's id and its number of jobs (the key must be set:
    the upstream_key fixture)."""
    return plan_only(load_settings(str(config), protocols=protocol_facts()))


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of an `arena worker` process: this checkout's arena, the upstream's key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **{KEY_ENV: KEY}, **extra)
    return env


@dataclass
class Worker:
    """One `arena worker` process and the files its output goes to."""

    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def start_worker(
    config: Path,
    run_id: str,
    log_dir: Path,
    name: str,
    *,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Worker:
    """`[prefix...] python -m arena worker --run RUN_ID --quiet --config CONFIG` in a session of
    its own; `prefix` runs it elsewhere (`ip netns exec NS ...`)."""
    stdout, stderr = log_dir / f"{name}.out", log_dir / f"{name}.err"
    command = [
        *(prefix or []),
        sys.executable,
        "-m",
        "arena",
        "worker",
        "--run",
        run_id,
        "--quiet",
        "--config",
        str(config),
    ]
    with open(stdout, "w") as out, open(stderr, "w") as err:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=err,
            env=env or worker_env(),
            cwd=log_dir,
            start_new_session=True,
        )
    return Worker(proc, stdout, stderr)


def kill_one_mid_request(engine, run_id, workers, in_flight_of):
    """SIGSTOP a worker that holds claims and, if it has requests in flight at the upstream
    (in_flight_of(worker) while it is stopped), kill it (-9) there and then; else let it go on and
    try again. Returns (the worker, what in_flight_of said, the moment of the kill)."""
    chosen = {}

    def stopped_one_in_flight() -> bool:
        claims = claims_by_pid(engine, run_id)
        for worker in workers:
            if not claims.get(worker.pid) or worker.proc.poll() is not None:
                continue
            os.kill(worker.pid, signal.SIGSTOP)  # frozen: no new connection, no new request
            in_flight = in_flight_of(worker)
            if in_flight and claims_by_pid(engine, run_id).get(worker.pid):
                os.kill(worker.pid, signal.SIGKILL)
                chosen.update(worker=worker, in_flight=in_flight, at=time.monotonic())
                return True
            os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.02)
        return False

    wait_until(stopped_one_in_flight, what="a worker holding claims with requests in flight")
    chosen["worker"].proc.wait()
    return chosen["worker"], chosen["in_flight"], chosen["at"]


def end_workers(workers: list[Worker]) -> None:
    """Kill whatever is left of the workers (a test that failed midway)."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.kill()
        worker.proc.wait()


# --- the store -------------------------------------------------------------------------------------


def query(engine: sa.Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql), params)]


def done_jobs(engine: sa.Engine, run_id: str) -> int:
    return query(
        engine, "SELECT count(*) FROM jobs WHERE run_id = :r AND status = 'done'", r=run_id
    )[0][0]


def claims_by_pid(engine: sa.Engine, run_id: str) -> dict[int, int]:
    """{pid: pending jobs it has claimed} over the run's live worker leases (holder host:pid:token)."""
    rows = query(
        engine,
        "SELECT claimed_by, count(*) FROM jobs WHERE run_id = :r AND status = 'pending' "
        "AND claimed_by IS NOT NULL GROUP BY claimed_by",
        r=run_id,
    )
    return {int(holder.split(":")[-2]): n for holder, n in rows}


def worker_leases(engine: sa.Engine, run_id: str) -> list[tuple[str, str, int]]:
    """(holder, host, pid) of every worker lease of the run still in the store."""
    return query(
        engine,
        "SELECT holder, host, pid FROM leases WHERE name LIKE :p",
        p=f"worker:{run_id}:%",
    )


def check_every_job_done_once(engine: sa.Engine, run_id: str, jobs: int) -> dict[str, int]:
    """Every job done with one attempt, the one its row names, of the same outcome; returns
    {request_id: job_id} of the attempts."""
    rows = query(
        engine,
        "SELECT id, status, outcome, attempts, claimed_by FROM jobs WHERE run_id = :r",
        r=run_id,
    )
    assert len(rows) == jobs
    not_done = [row for row in rows if row[1] != "done"]
    assert not not_done, f"{len(not_done)} jobs not done, e.g. {not_done[:3]}"
    attempts: dict[int, list[tuple]] = {}
    for job_id, number, ok, failure, request_id in query(
        engine,
        "SELECT job_id, attempt, ok, failure_class, request_id FROM attempts "
        "WHERE run_id = :r AND NOT warmup",
        r=run_id,
    ):
        attempts.setdefault(job_id, []).append((number, ok, failure, request_id))
    request_ids: dict[str, int] = {}
    for job_id, _, outcome, final, _ in rows:
        mine = attempts.get(job_id, [])
        # The upstream never fails and there are no retries: a job redone after a worker died has
        # one attempt too, since the dead worker saved nothing of it.
        assert len(mine) == 1, f"job {job_id} has {len(mine)} attempts: {mine}"
        numbers = [number for number, *_ in mine]
        assert len(set(numbers)) == len(numbers), f"job {job_id}: attempt numbers {numbers}"
        named = [a for a in mine if a[0] == final]
        assert named, f"job {job_id} names attempt {final}, which is not stored: {mine}"
        _, ok, failure, request_id = named[0]
        assert outcome == ("success" if ok else failure) == "success", (job_id, outcome, named)
        assert request_id and request_id not in request_ids, f"reply {request_id} saved twice"
        request_ids[request_id] = job_id
    return request_ids


# --- the upstream's log ----------------------------------------------------------------------------


def peak_in_flight(log: list[Served]) -> int:
    """The most requests in flight at once, by the upstream's count at each start."""
    return max(served.in_flight for served in log)


def closest_starts(log: list[Served], rate_per_s: float) -> tuple[float, int, int]:
    """The worst shortfall of the starts against the rate: max over i < j of
    (j - i) / rate - (t[j] - t[i]) with its (i, j); <= 0 when no two starts came too close."""
    starts = sorted(served.start_s for served in log)
    worst = (float("-inf"), 0, 0)
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            shortfall = (j - i) / rate_per_s - (starts[j] - starts[i])
            if shortfall > worst[0]:
                worst = (shortfall, i, j)
    return worst


def cut_short_by_a_kill(served: Served, margin_s: float = 0.2) -> bool:
    """Whether a request is in flight at the upstream with margin_s of its delay still to go: a
    kill now cuts it (a reply written meanwhile would count as answered, read or not)."""
    left_s = DELAYS_S.get(served.model, 0.0) - (time.monotonic() - served.start_s)
    return served.end_s is None and left_s > margin_s


def check_the_upstream_log(
    log: list[Served],
    saved: dict[str, int],
    *,
    victims: Callable[[Served], bool],
    killed_at: float,
    jobs: int,
    start_tolerance_s: float,
) -> None:
    """What the upstream saw of a run whose worker was killed mid-request (`victims` tells that
    worker's requests): every reply saved but the dead worker's, its requests in flight cut at
    the kill, and the shared limits kept across all the workers, each of them binding."""
    by_id = {served.request_id: served for served in log}
    # Every saved attempt is a reply the upstream gave; every reply it gave a worker that lived
    # was saved. The killed worker's replies were lost with it (their jobs were done again).
    assert all(by_id[rid].answered for rid in saved)
    unsaved = [s for s in log if s.answered and s.request_id not in saved]
    assert all(victims(s) for s in unsaved), unsaved
    assert len(saved) == jobs
    # The killed worker's requests in flight ended at the upstream when the kernel closed its
    # sockets, and counted as ended there.
    cut = [s for s in log if not s.answered]
    assert cut and all(victims(s) for s in cut), cut
    assert all(s.end_s is not None and s.end_s - killed_at < 1.0 for s in cut), cut
    assert all(s.end_s is not None for s in log)

    assert peak_in_flight(log) == MAX_CONCURRENCY  # never above, and it bound
    shortfall_s, i, j = closest_starts(log, RATE_PER_S)
    assert shortfall_s <= start_tolerance_s, (
        f"requests {i} and {j} started {shortfall_s * 1000:.1f} ms closer than "
        f"{RATE_PER_S:g}/s allows"
    )
    starts = sorted(s.start_s for s in log)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert sum(gap < 1.5 / RATE_PER_S for gap in gaps) >= 10  # the rate bound too


def tcp_ports(pid: int, remote_port: int) -> set[tuple[str, int]]:
    """The (address, port) this process's TCP sockets to `remote_port` have on its side: the
    upstream's log names a request's client by them. Read from /proc in the process's own
    network namespace."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
            address, port = local.split(":")
            octets = bytes.fromhex(address)[::-1]  # /proc/net/tcp writes IPv4 little-endian
            ports.add((".".join(str(b) for b in octets), int(port, 16)))
    return ports

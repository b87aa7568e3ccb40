"""The kill test with each worker on a host of its own: network namespaces with an address and a
hostname each, reaching PostgreSQL and the upstream across their own links. A killed worker on
another host cannot be seen to be dead: its jobs come back only once its lease's ttl has passed."""

from __future__ import annotations

import contextlib
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from support.netns import forwarding_to, namespaced_hosts
from support.processes import wait_until
from support.servers import serve_in_thread
from support.upstream import Upstream

from arena import store

from .kit import (
    DELAYS_S,
    check_every_job_done_once,
    check_the_upstream_log,
    claims_by_pid,
    cut_short_by_a_kill,
    done_jobs,
    end_workers,
    kill_one_mid_request,
    plan_run,
    query,
    start_worker,
    worker_leases,
    write_run_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TTL_S = 5.0
# Every statement of these workers crosses a veth and a forwarder in the test's own process, so
# their turns come back later than on loopback, and less evenly: see test_worker_kill.py's
# START_TOLERANCE_S, of which this is the same measure across the links.
START_TOLERANCE_S = 0.060


def _via(url: str, host: str, port: int) -> str:
    """`url` with its host and port replaced (the user and the query kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{user}{host}:{port}", parts.path, parts.query, ""))


def _lease_age_s(engine, holder: str) -> float | None:
    """The age of a worker lease's heartbeat by the database's clock; None once it is gone."""
    rows = query(
        engine,
        "SELECT extract(epoch FROM clock_timestamp() - heartbeat_at) FROM leases WHERE holder = :h",
        h=holder,
    )
    return float(rows[0][0]) if rows else None


def test_workers_on_three_hosts_one_killed_get_its_jobs_back_once_its_lease_expires(
    tmp_path, postgres_url
):
    database = urlsplit(postgres_url)
    with (
        namespaced_hosts(3) as hosts,
        Upstream(delays_s=DELAYS_S, host="0.0.0.0") as upstream,
        contextlib.ExitStack() as stack,
    ):
        # PostgreSQL listens on loopback only: each host reaches it through a forwarder on its
        # own link's address.
        forwarders = [
            stack.enter_context(
                serve_in_thread(
                    on_connection=forwarding_to(database.hostname, database.port or 5432),
                    name=f"pg-forwarder-{n}",
                    host=host.gateway,
                )
            )
            for n, host in enumerate(hosts)
        ]
        _, run_id, jobs = plan_run(
            tmp_path, base_url=upstream.url, db_url=postgres_url, lease_ttl_s=TTL_S
        )
        configs = [
            write_run_config(
                tmp_path / f"host{n}.toml",
                tmp_path,
                base_url=f"http://{host.gateway}:{upstream.port}/v1",
                db_url=_via(postgres_url, host.gateway, forwarder.port),
                lease_ttl_s=TTL_S,
            )
            for n, (host, forwarder) in enumerate(zip(hosts, forwarders, strict=True))
        ]
        engine = store.open_engine(postgres_url, create=False)
        workers = [
            start_worker(config, run_id, tmp_path, f"host{n}", prefix=host.prefix())
            for n, (host, config) in enumerate(zip(hosts, configs, strict=True))
        ]
        address_of = {worker.pid: host.address for worker, host in zip(workers, hosts, strict=True)}

        def in_flight_from(worker) -> str | None:
            """The worker's host address, if a request of its in flight at the upstream is one
            that a kill now cuts."""
            address = address_of[worker.pid]
            busy = [s for s in upstream.log() if cut_short_by_a_kill(s) and s.peer[0] == address]
            return address if busy else None

        try:
            wait_until(lambda: done_jobs(engine, run_id) >= 15, what="15 jobs done")
            leases = {pid: holder for holder, _, pid in worker_leases(engine, run_id)}
            assert {host for _, host, _ in worker_leases(engine, run_id)} == {
                h.hostname for h in hosts
            }
            victim, victim_address, killed_at = kill_one_mid_request(
                engine, run_id, workers, in_flight_from
            )
            holder = leases[victim.pid]
            age_at_kill = _lease_age_s(engine, holder)
            # Its lease and its claims stay until the lease's ttl has passed by the database's
            # clock: from another host, a dead worker and a silent one look the same.
            ages = []
            while (age := _lease_age_s(engine, holder)) is not None:
                ages.append(age)
                assert claims_by_pid(engine, run_id).get(victim.pid) or age > TTL_S, (
                    f"the killed worker's jobs went back {age:.1f} s after its last heartbeat"
                )
                time.sleep(0.1)
            returned_s = time.monotonic() - killed_at
            survivors = [w for w in workers if w is not victim]
            for worker in survivors:
                worker.proc.wait(timeout=240)
        finally:
            end_workers(workers)
        try:
            for worker in survivors:
                assert worker.proc.returncode == 0, worker.output()
                assert "Traceback" not in worker.output()
            # Seen until its heartbeat was the ttl old, and gone only after it: by the database's
            # clock, and by this one from the kill (its heartbeat was age_at_kill old then).
            assert ages and max(ages) > TTL_S - 0.3, ages[-5:]
            assert age_at_kill is not None and returned_s + age_at_kill > TTL_S - 0.3
            assert worker_leases(engine, run_id) == []
            assert store.get_run(engine, run_id).status == "completed"
            saved = check_every_job_done_once(engine, run_id, jobs)
        finally:
            engine.dispose()
    check_the_upstream_log(
        upstream.log(),
        saved,
        victims=lambda served: served.peer[0] == victim_address,
        killed_at=killed_at,
        jobs=jobs,
        start_tolerance_s=START_TOLERANCE_S,
    )

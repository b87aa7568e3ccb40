"""Leases: named rows in `leases`, each kept by one live holder's heartbeat ("run:<id>", "nightly:…").

A run is executed only while its executor holds "run:<id>"; a nightly job holds "nightly:<config>"
for its whole duration. A holder is `host:pid:token` (the token is random, so one process taking
the same lease twice is two holders). Each operation is one short transaction of its own:

    acquire_lease   INSERT ... ON CONFLICT DO NOTHING; when the row exists and its holder is gone,
                    a conditional UPDATE ... WHERE holder = <the gone holder> [AND still expired]:
                    atomic on SQLite (one writer at a time) and PostgreSQL (the row lock re-checks
                    the WHERE), so of any number of processes racing for a lease exactly one wins
    renew_lease     UPDATE heartbeat_at WHERE holder = me: False once another holder has it
    release_lease   DELETE WHERE holder = me
    read_holder     who holds a lease, and how old its heartbeat is

A holder is gone when its heartbeat is older than its ttl_s, or at once when it is on this host
and its PID is no longer alive (so `arena run --resume` right after `kill -9` needs no wait), or
its PID is this very process's with a token this process never made (a container restarted after
a kill runs arena as PID 1 again, under the same hostname).
"This host" is the hostname: two containers that share a hostname but not a PID space must be given
hostnames of their own. A PID reused by another process reads as alive: the lease then expires by
its ttl instead, which is slower, never wrong.

One clock: the database's. Heartbeats are stamped with the database's `now` and ages are computed by
the database (`clock_timestamp() - heartbeat_at` on PostgreSQL, julianday differences on SQLite), so
hosts whose clocks disagree still agree on whether a lease expired. The holder's own view of its
lease uses only its own steady clock: the time since its last successful renewal, measured from
before that renewal was sent, which is never shorter than what the database sees. That clock counts
a suspended machine's sleep (CLOCK_BOOTTIME on Linux), so a laptop that wakes up after the ttl knows
at once that its lease may be gone.

Heartbeat (a daemon thread, its own short transactions, nothing on the harness's event loop)
renews every ttl/3. When it cannot renew (the store is down, the network is cut), the lease may
expire and another executor may take it: `Heartbeat.stop_reason()` (a clock read, cheap enough to
ask before every request) turns non-empty once 2/3 of the ttl has passed since the last renewal,
or at once when another holder has the row, and the harness stops sending from then on. That
leaves a third of the ttl between the last request this holder may send and the first moment
another could take over. Requests already in flight finish and are saved.

Growing into several workers per run (issue #15): a run lease names one executor. Workers that
share a run each hold a lease of their own ("worker:<run>:<host:pid:token>", the same table and
heartbeat), and jobs gain a claim (claimed_by, claimed_until) taken with SELECT ... FOR UPDATE
SKIP LOCKED in batches; a claim is valid while its worker's lease is alive, so a worker killed
with kill -9 frees its jobs when its lease expires (or at once from its own host, as here). The
"run:<id>" lease then becomes the coordinator's (the planner, or `arena run --workers N`), and a
plain `arena run --resume` refuses while any worker lease of the run is alive.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from arena.errors import ArenaError, StoreError
from arena.store.messages import one_line
from arena.store.tables import Lease

log = logging.getLogger("arena.store")

DEFAULT_TTL_S = 30.0
HEARTBEATS_PER_TTL = 3  # renew every ttl/3: two heartbeats may fail before the lease is at risk
STOP_AFTER_FRACTION = 2 / 3  # stop sending once this much of the ttl passed without a renewal
_RETRY_S = 1.0  # after a failed renewal, try again this soon (never later than the usual interval)
_TRIES = 5  # acquire: rounds of insert / look / take over when the row keeps changing under us

LEASES = Lease.__table__
# Holders this process made and has not released: in the set before their row can be seen, so
# that another thread of this process never takes them for a dead predecessor's.
_HELD_HERE: set[str] = set()

_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def steady_clock() -> float:
    """Seconds on a clock that never jumps and, where the system has one, counts suspended time."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


class LeaseHeld(ArenaError):
    """The lease is held by another live holder (`holder` says who); the caller words the message."""

    def __init__(self, name: str, holder: LeaseHolder) -> None:
        self.name = name
        self.holder = holder
        super().__init__(f"{name} is held by {holder.describe()}")


@dataclass(frozen=True)
class LeaseHolder:
    """A lease's row as read, with its heartbeat's age by the database's clock."""

    name: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_age_s: float
    ttl_s: float

    def describe(self) -> str:
        """'pid 1234 on host H (heartbeat 3 s ago)': who to wait for or stop."""
        return f"pid {self.pid} on host {self.host} (heartbeat {max(0.0, self.heartbeat_age_s):.0f} s ago)"

    def advice(self) -> str:
        """What to do: wait or stop it; or, once its heartbeats have stopped, when it can be taken."""
        if self.heartbeat_age_s > self.ttl_s / HEARTBEATS_PER_TTL * 1.5:  # a heartbeat was missed
            left_s = max(1.0, self.ttl_s - self.heartbeat_age_s)
            return f"its heartbeats have stopped: it can be taken over in {left_s:.0f} s"
        return "wait for it or stop it"

    def gone(self) -> bool:
        """Expired by its ttl, or on this host with a PID that is no longer alive.

        Our own PID with a token this process does not hold is a dead predecessor that had the
        same PID: a container restarted after a kill runs arena as PID 1 again, on the same host.
        """
        if self.heartbeat_age_s > self.ttl_s:
            return True
        if self.host != this_host():
            return False
        if self.pid == os.getpid():
            return self.holder not in _HELD_HERE
        return not pid_alive(self.pid)


@dataclass
class HeldLease:
    """A lease this process holds (or is about to insert): its name, holder token and ttl."""

    name: str
    holder: str
    host: str
    pid: int
    ttl_s: float
    # steady_clock() just before the last successful acquire or renewal was sent
    renewed_at: float = field(default_factory=steady_clock)

    @classmethod
    def new(cls, name: str, ttl_s: float = DEFAULT_TTL_S) -> HeldLease:
        """A fresh holder `host:pid:token` for `name` (not yet in the database)."""
        if not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise ValueError(f"a lease's ttl must be positive, got {ttl_s!r}")
        host, pid = this_host(), os.getpid()
        held = cls(name, f"{host}:{pid}:{secrets.token_hex(8)}", host, pid, float(ttl_s))
        _HELD_HERE.add(held.holder)
        return held


def this_host() -> str:
    return socket.gethostname()[:150]  # the holder column holds host:pid:token in 200


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (a zombie, killed but not reaped, is dead)."""
    if pid <= 0:
        return True  # not a PID we can check: assume alive, the ttl decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"])


# --- the database's clock ------------------------------------------------------------------------


def _now(engine: sa.Engine):
    if engine.dialect.name == "sqlite":
        # The format SQLAlchemy's SQLite DateTime reads back, to the millisecond.
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", "now")
    # The time the statement runs, not now(): the transaction's start, which for a new run's lease
    # (inserted with its plan) is earlier than the moment its holder starts counting from.
    return sa.func.clock_timestamp()


def _age_s(engine: sa.Engine):
    """Seconds since the row's heartbeat, by the database's clock."""
    if engine.dialect.name == "sqlite":
        return (sa.func.julianday("now") - sa.func.julianday(LEASES.c.heartbeat_at)) * 86400.0
    return sa.extract("epoch", sa.func.clock_timestamp() - LEASES.c.heartbeat_at)


# --- operations ------------------------------------------------------------------------------------


def _insert(engine: sa.Engine, conn: sa.Connection, held: HeldLease) -> bool:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = _now(engine)
    return (
        conn.execute(
            insert(LEASES)
            .values(
                name=held.name,
                holder=held.holder,
                host=held.host,
                pid=held.pid,
                acquired_at=now,
                heartbeat_at=now,
                ttl_s=held.ttl_s,
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(LEASES.c.name)  # psycopg's rowcount for ON CONFLICT DO NOTHING is -1
        ).first()
        is not None
    )


def insert_lease(engine: sa.Engine, conn: sa.Connection, held: HeldLease) -> None:
    """Insert a lease on a name nobody holds, inside the caller's transaction (a new run's plan)."""
    held.renewed_at = steady_clock()
    if not _insert(engine, conn, held):
        raise StoreError(f"lease {held.name} already exists")


def read_holders(engine: sa.Engine, where) -> list[LeaseHolder]:
    """The leases matching `where`, each with its heartbeat's age by the database's clock; the
    store's own exception goes through (each caller words its failure)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                LEASES.c.name,
                LEASES.c.holder,
                LEASES.c.host,
                LEASES.c.pid,
                LEASES.c.acquired_at,
                _age_s(engine),
                LEASES.c.ttl_s,
            ).where(where)
        ).all()
    return [LeaseHolder(r[0], r[1], r[2], r[3], r[4], float(r[5]), float(r[6])) for r in rows]


def read_holder(engine: sa.Engine, name: str) -> LeaseHolder | None:
    """Who holds `name` now, or None."""
    try:
        holders = read_holders(engine, LEASES.c.name == name)
    except SQLAlchemyError as exc:
        raise StoreError(f"could not read lease {name}: {one_line(exc)}") from None
    return holders[0] if holders else None


def as_read(engine: sa.Engine, current: LeaseHolder):
    """The condition that a lease row is still as `current` was read: the same holder and, when
    it was expired, still expired. A holder that renewed at the last moment no longer matches,
    so it keeps its lease, and of two processes acting on the same reading only one matches."""
    condition = sa.and_(LEASES.c.name == current.name, LEASES.c.holder == current.holder)
    if current.heartbeat_age_s > current.ttl_s:
        condition = sa.and_(condition, _age_s(engine) > LEASES.c.ttl_s)
    return condition


def acquire_lease(engine: sa.Engine, name: str, ttl_s: float = DEFAULT_TTL_S) -> HeldLease:
    """Take `name` for this process, or raise LeaseHeld naming the live holder.

    A free name is inserted; a row whose holder is gone is taken over by an UPDATE that matches
    only that same holder (and, for an expired one, only while it is still expired), so a holder
    that renews at the last moment keeps its lease and of two takers only one matches.
    """
    held = HeldLease.new(name, ttl_s)
    try:
        return _acquire(engine, held)
    except BaseException:
        _HELD_HERE.discard(held.holder)
        raise


def _acquire(engine: sa.Engine, held: HeldLease) -> HeldLease:
    name = held.name
    try:
        for _ in range(_TRIES):
            held.renewed_at = steady_clock()
            with engine.begin() as conn:
                if _insert(engine, conn, held):
                    return held
            current = read_holder(engine, name)
            if current is None:
                continue  # released between our insert and our look: insert again
            if not current.gone():
                raise LeaseHeld(name, current)
            held.renewed_at = steady_clock()
            condition = as_read(engine, current)
            now = _now(engine)
            with engine.begin() as conn:
                taken = conn.execute(
                    LEASES.update()
                    .where(condition)
                    .values(
                        holder=held.holder,
                        host=held.host,
                        pid=held.pid,
                        acquired_at=now,
                        heartbeat_at=now,
                        ttl_s=held.ttl_s,
                    )
                ).rowcount
            if taken == 1:
                log.info("arena: took over lease %s from %s", name, current.holder)
                return held
            # the row changed under us (renewed, released or taken): look again
    except SQLAlchemyError as exc:
        raise StoreError(f"could not take lease {name}: {one_line(exc)}") from None
    current = read_holder(engine, name)
    if current is not None:
        raise LeaseHeld(name, current)
    raise StoreError(f"could not take lease {name}: it kept changing hands")


def renew_lease(engine: sa.Engine, held: HeldLease) -> bool:
    """Stamp a new heartbeat; False when the row is no longer ours (taken over, or deleted)."""
    started = steady_clock()
    with engine.begin() as conn:
        renewed = conn.execute(
            LEASES.update()
            .where(LEASES.c.name == held.name, LEASES.c.holder == held.holder)
            .values(heartbeat_at=_now(engine))
        ).rowcount
    if renewed == 1:
        held.renewed_at = started
    return renewed == 1


def release_lease(engine: sa.Engine, held: HeldLease) -> None:
    """Give the lease up (only if it is still ours); a store that fails here only leaves it to expire."""
    _HELD_HERE.discard(held.holder)
    try:
        with engine.begin() as conn:
            conn.execute(
                LEASES.delete().where(LEASES.c.name == held.name, LEASES.c.holder == held.holder)
            )
    except SQLAlchemyError as exc:
        log.info(
            "arena: could not release lease %s (%s); it expires %g s after its last heartbeat",
            held.name,
            one_line(exc),
            held.ttl_s,
        )


# --- the heartbeat -------------------------------------------------------------------------------


class Heartbeat:
    """Renews a held lease from a daemon thread; stop_reason() says when its holder must stop sending."""

    def __init__(
        self,
        engine: sa.Engine,
        held: HeldLease,
        *,
        clock: Callable[[], float] = steady_clock,
    ) -> None:
        self.engine = engine
        self.held = held
        self.interval_s = held.ttl_s / HEARTBEATS_PER_TTL
        self._clock = clock
        self._stop = threading.Event()
        self._lost: str | None = None
        self._error = ""
        self._thread = threading.Thread(
            target=self._beat, name=f"arena-lease-{held.name}"[:60], daemon=True
        )

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        # A renewal blocked on a dead store must not hold up the exit: the thread is a daemon, and
        # a renewal that lands after the release only finds the row gone (it never re-creates it).
        self._thread.join(timeout=min(self.interval_s, _RETRY_S))

    @property
    def lost(self) -> bool:
        """Whether another holder has the lease now (not merely a renewal that failed)."""
        return self._lost is not None

    def stop_reason(self) -> str | None:
        """None while sending is safe; otherwise why not (lost to another holder, or not renewed)."""
        if self._lost is not None:
            return self._lost
        silent_s = self._clock() - self.held.renewed_at
        if silent_s > self.held.ttl_s * STOP_AFTER_FRACTION:
            why = f": {self._error}" if self._error else ""
            return (
                f"its lease could not be renewed for {silent_s:.0f} s{why}; "
                f"it expires {self.held.ttl_s:g} s after the last renewal"
            )
        return None

    def _beat(self) -> None:
        # Counted from the last renewal, not from the thread's start: a new run's plan may have
        # taken a while to commit after its lease was written.
        wait_s = max(0.0, self.held.renewed_at + self.interval_s - self._clock())
        while not self._stop.wait(wait_s):
            try:
                renewed = renew_lease(self.engine, self.held)
            except Exception as exc:  # the store is down: keep trying, stop_reason() tells the time
                self._error = one_line(exc)
                wait_s = min(_RETRY_S, self.interval_s)
                # Not a line on the user's terminal: stop_reason() reports it if it lasts too long.
                log.info("arena: could not renew lease %s: %s", self.held.name, self._error)
                continue
            if not renewed:
                self._lost = f"another executor took its lease over ({self._taker()})"
                return
            self._error = ""
            wait_s = max(0.0, self.held.renewed_at + self.interval_s - self._clock())

    def _taker(self) -> str:
        try:
            current = read_holder(self.engine, self.held.name)
        except StoreError:
            return "its holder could not be read"
        return current.describe() if current is not None else "the lease was removed"


@contextmanager
def holding(engine: sa.Engine, name: str, ttl_s: float = DEFAULT_TTL_S) -> Iterator[Heartbeat]:
    """Acquire `name` (LeaseHeld if someone else has it), keep it alive, release it at the end."""
    held = acquire_lease(engine, name, ttl_s)
    heartbeat = Heartbeat(engine, held).start()
    try:
        yield heartbeat
    finally:
        heartbeat.stop()
        release_lease(engine, held)

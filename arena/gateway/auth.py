"""Gateway keys at the door: the Bearer check, each key's rate and budget, and its spend written in batches.

A KeyRing keeps every key's row (by sha256, never the key) in memory and re-reads the table in a
thread every min(flush_s, cache_s / 2), so the hot path makes no database call (about 4 us a
request, against 0.2-0.9 ms for one indexed SELECT in a thread): a revoke or a budget spent by
another process takes effect within `cache_s`; a key unknown here re-reads at once (at most every
miss_refresh_s, so made-up keys cannot flood the store). Settled spend is added up here and written
by the same thread, atomically in SQL, so several gateway processes add up.

Rate limits are a sliding 60 s window per key, shared across gateway processes through the store
without a call per request: this process's admissions count the moment they are made, the other
processes' requests count once they have settled and both sides have written and read the table
(at most about flush_s + cache_s / 2 after they finished). A burst spread over several processes
can therefore pass a key's rate by what the others admitted in that lag; one process alone is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from arena.gateway.replies import GatewayError
from arena.store.keys import KEY_PREFIX, KeyRow, Spend, add_spend, hash_key, list_keys
from arena.store.messages import one_line
from arena.store.tables import utcnow

log = logging.getLogger("arena.gateway")

RATE_WINDOW_S = 60.0
MAX_KEY_CHARS = 256  # arena keys are 49 characters; a longer token is not one (and is not hashed)
BUDGET_SLACK_USD = 1e-9  # float sums of prices: 10 x 0.1 is 0.9999999999999999
LOG_EVERY_S = 60.0  # a lasting store outage is one line a minute, not one per flush
HOW_TO = (
    "send `Authorization: Bearer <key>` (the operator makes keys with `arena keys create NAME`)"
)


@dataclass(frozen=True)
class Grant:
    """Who a request is for: what attempts.gateway_key records and what its spend is charged to."""

    key_name: str  # "playground:<visitor>" for a playground visitor
    playground: bool = False  # a visitor's free allowance (its accounting is the playground's)


@dataclass
class _Known:
    """One key as this process knows it."""

    row: KeyRow  # as last read
    store_requests: int  # row.requests at the last read
    mine_written: int  # this process's requests written to the store, at the last read
    # (monotonic time, requests): admissions here, and other processes' settled requests stamped
    # when this process first saw them in the store
    window: deque[tuple[float, int]] = field(default_factory=deque)
    window_count: int = 0


@dataclass
class _Unsaved:
    cost_usd: float = 0.0
    requests: int = 0
    last_used_at: datetime | None = None

    def add(self, other: _Unsaved) -> None:
        self.cost_usd += other.cost_usd
        self.requests += other.requests
        if other.last_used_at and (not self.last_used_at or other.last_used_at > self.last_used_at):
            self.last_used_at = other.last_used_at


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, code="invalid_api_key")


def _usd(value: float) -> str:
    return f"${round(value, 6):g}"


def bearer_token(authorization: str | None) -> str:
    """The key in an Authorization header, or a 401 that never quotes what was sent."""
    if not authorization or not authorization.strip():
        raise _unauthorized(f"no API key: {HOW_TO}")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(f"the Authorization header is not a Bearer key: {HOW_TO}")
    if len(token) > MAX_KEY_CHARS or not token.startswith(KEY_PREFIX):
        raise _unauthorized(f"the API key is not one this gateway issued: {HOW_TO}")
    return token


class KeyRing:
    """Authorizes requests by their gateway key and charges what they cost (one per process)."""

    def __init__(
        self,
        engine,
        *,
        cache_s: float = 2.0,
        flush_s: float = 1.0,
        stale_wait_s: float = 1.0,
        miss_refresh_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.cache_s = cache_s  # a revoke or another process's spend is seen within this
        self.flush_s = flush_s  # settled spend is written this often
        self.stale_wait_s = stale_wait_s  # the most a request waits for a late re-read
        # an unknown key, or a stale cache the store cannot refresh, re-reads at most this often
        self.miss_refresh_s = miss_refresh_s
        self.clock = clock
        self._lock = threading.Lock()  # the state below is shared with the store thread
        self._known: dict[str, _Known] = {}  # sha256 -> key
        self._pending: dict[str, _Unsaved] = {}  # key name -> settled, not yet written
        self._writing: dict[str, _Unsaved] = {}  # being written now
        self._unread: dict[str, float] = {}  # written, not yet in a row read back
        self._written_requests: dict[str, int] = {}  # this process's requests written, by key
        self._loaded_at: float | None = None  # clock() of the last good read
        self._attempted_at: float | None = None  # clock() when the last write-and-read began
        self._failing_since: float | None = None
        self._last_warning: float = -math.inf
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="arena-keys")
        self._refresh: asyncio.Future | None = None
        self._refresh_began: float = 0.0  # time.monotonic(): how long a request may still wait
        self._task: asyncio.Task | None = None
        self._closed = False

    # --- the hot path ---------------------------------------------------------------------------

    async def authorize(
        self, authorization: str | None, *, expected_cost_usd: float | None = None
    ) -> Grant:
        """The Grant for a request's Authorization header, or a GatewayError (401, 402 or 429)."""
        token = bearer_token(authorization)
        sha = hash_key(token)
        self._start_background()
        if self._loaded_at is None or self.clock() - self._loaded_at >= self.cache_s:
            await self._reread(wait=True)
        known = self._known.get(sha)
        if known is None:
            await self._reread(wait=True)  # a key made since the last read works at once
            known = self._known.get(sha)
        if self._loaded_at is None:
            raise GatewayError(
                503,
                "the gateway cannot read its keys from the store; try again shortly",
                code="key_store_unavailable",
            )
        if known is None or not hmac.compare_digest(known.row.key_sha256, sha):
            raise _unauthorized(f"the API key is not valid: {HOW_TO}")
        row = known.row
        if row.revoked:
            raise _unauthorized(f"this API key was revoked: {HOW_TO}")
        with self._lock:
            self._check_budget(row, expected_cost_usd)
            self._admit(known)
        return Grant(row.name)

    def _check_budget(self, row: KeyRow, expected_cost_usd: float | None) -> None:
        if row.budget_usd is None:
            return
        spent = row.spent_usd + self._unsaved_usd(row.name)
        expected = expected_cost_usd or 0.0
        if spent + expected > row.budget_usd + BUDGET_SLACK_USD or (
            row.budget_usd > 0 and spent >= row.budget_usd - BUDGET_SLACK_USD
        ):
            this = f"; this request would cost about {_usd(expected)}" if expected else ""
            raise GatewayError(
                402,
                f"key {row.name!r} is over its budget: spent {_usd(spent)} of {_usd(row.budget_usd)}"
                f"{this} (the operator can make another key)",
                code="budget_exceeded",
            )

    def _admit(self, known: _Known) -> None:
        """Count one request in the key's window, or 429 with the seconds until one fits."""
        limit = known.row.rate_per_min
        if limit is None:
            return
        now = self.clock()
        self._expire(known, now)
        if known.window_count + 1 > limit:
            remaining, wait_s = known.window_count, RATE_WINDOW_S
            for stamped, n in known.window:  # oldest first: when enough have left the window
                remaining -= n
                if remaining + 1 <= limit:
                    wait_s = stamped + RATE_WINDOW_S - now
                    break
            retry_s = max(1, math.ceil(wait_s))
            raise GatewayError(
                429,
                f"key {known.row.name!r} is over its rate of {limit:g} requests per minute; "
                f"retry after {retry_s} s",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(retry_s)},
            )
        known.window.append((now, 1))
        known.window_count += 1

    @staticmethod
    def _expire(known: _Known, now: float) -> None:
        while known.window and known.window[0][0] <= now - RATE_WINDOW_S:
            known.window_count -= known.window.popleft()[1]

    def _unsaved_usd(self, name: str) -> float:
        total = self._unread.get(name, 0.0)
        for batch in (self._pending, self._writing):
            if name in batch:
                total += batch[name].cost_usd
        return total

    def charge(self, grant: Grant, cost_usd: float | None) -> None:
        """One request settled: its cost (None: unknown, counted as 0) and a request on its key.
        Kept in memory and written within flush_s by the store thread; never raises for the store."""
        if grant.playground:  # a visitor's allowance is accounted by the playground, not a key row
            return
        cost = (
            cost_usd if cost_usd is not None and math.isfinite(cost_usd) and cost_usd > 0 else 0.0
        )
        with self._lock:
            self._pending.setdefault(grant.key_name, _Unsaved()).add(_Unsaved(cost, 1, utcnow()))
        self._start_background()

    # --- the store thread -----------------------------------------------------------------------

    def _start_background(self) -> None:
        if self._task is None and not self._closed:
            # no running loop (a synchronous caller): nothing runs in the background, aclose() writes
            with contextlib.suppress(RuntimeError):
                self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        interval_s = min(self.flush_s, self.cache_s / 2)
        while True:
            await asyncio.sleep(interval_s)
            await self._reread(wait=True)

    async def _reread(self, *, wait: bool) -> None:
        """Write what is settled and read every key, in the store thread; one at a time.
        A caller waits at most stale_wait_s from the start of the read (a slow store does not stall
        requests: they go on with the keys last read)."""
        if self._refresh is None or self._refresh.done():
            if (
                self._attempted_at is not None
                and self.clock() - self._attempted_at < self.miss_refresh_s
            ):
                return  # tried a moment ago (and the store failed, or the key is unknown): go on
            self._start_sync()
        if not wait:
            return
        timeout_s = self._refresh_began + self.stale_wait_s - time.monotonic()
        if timeout_s <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._refresh), timeout_s)

    def sync(self) -> bool:
        """Write the settled spend, then read every key (blocking: the store thread calls it).
        A failure keeps the amounts for the next try and logs one line; True when both worked."""
        with self._lock:
            batch, self._pending = self._pending, {}
            self._writing = batch
        wrote = True
        if batch:
            try:
                add_spend(
                    self.engine,
                    {
                        name: Spend(u.cost_usd, u.requests, u.last_used_at or utcnow())
                        for name, u in batch.items()
                    },
                )
            except Exception as exc:
                wrote = False
                self._store_failed(f"could not save the spend of {len(batch)} key(s)", exc)
            with self._lock:
                self._writing = {}
                if wrote:
                    for name, unsaved in batch.items():
                        self._unread[name] = self._unread.get(name, 0.0) + unsaved.cost_usd
                        self._written_requests[name] = (
                            self._written_requests.get(name, 0) + unsaved.requests
                        )
                else:  # kept, in front of what settled meanwhile, for the next flush
                    for name, unsaved in batch.items():
                        self._pending.setdefault(name, _Unsaved()).add(unsaved)
        started = self.clock()
        try:
            rows = list_keys(self.engine)
        except Exception as exc:
            self._store_failed("could not read the keys", exc)
            return False
        with self._lock:
            self._apply(rows, started)
            self._unread = {}
            self._loaded_at = started
        if wrote and self._failing_since is not None:
            log.warning("arena: gateway keys: the store answers again; spend saved")
            self._failing_since = None
        return wrote

    def _apply(self, rows: list[KeyRow], now: float) -> None:
        """The rows read replace the known ones; other processes' new requests enter the windows."""
        known: dict[str, _Known] = {}
        for row in rows:
            mine = self._written_requests.get(row.name, 0)
            old = self._known.get(row.key_sha256)
            if old is None:
                known[row.key_sha256] = _Known(row, row.requests, mine)
                continue
            others = (row.requests - old.store_requests) - (mine - old.mine_written)
            if others > 0 and row.rate_per_min is not None:
                old.window.append((now, others))
                old.window_count += others
            old.row, old.store_requests, old.mine_written = row, row.requests, mine
            known[row.key_sha256] = old
        self._known = known

    def _store_failed(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._last_warning >= LOG_EVERY_S:
            self._last_warning = now
            log.warning(
                "arena: gateway keys: %s (%s); kept in memory, trying again every %g s",
                what,
                one_line(exc),
                min(self.flush_s, self.cache_s / 2),
            )

    def _start_sync(self) -> None:
        loop = asyncio.get_running_loop()
        self._refresh = asyncio.ensure_future(loop.run_in_executor(self._executor, self.sync))
        self._refresh_began = time.monotonic()
        self._attempted_at = self.clock()

    async def flush(self) -> bool:
        """Write what is settled and read the keys now; True when the store took it."""
        if self._refresh is not None and not self._refresh.done():
            await asyncio.shield(self._refresh)
        self._start_sync()
        return await asyncio.shield(self._refresh)

    async def aclose(self, *, tries: int = 3, retry_s: float = 0.5) -> None:
        """Stop the background writes and flush what is not yet written (a few tries)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for attempt in range(tries):
            if await self.flush() or not self._pending:
                break
            if attempt + 1 < tries:
                await asyncio.sleep(retry_s)
        with self._lock:
            lost = {name: u for name, u in self._pending.items()}
        if lost:
            log.warning(
                "arena: gateway keys: the spend of %s was not saved (the store failed)",
                ", ".join(
                    f"{n!r}: {_usd(u.cost_usd)} in {u.requests} request(s)" for n, u in lost.items()
                ),
            )
        self._executor.shutdown(wait=True)

"""The results writer: attempts, images and finished jobs saved in batches from a thread of their own.

A batch the store cannot take (a database outage, a full disk) is held and tried again, with
backoff, for `retry_s`; meanwhile the writer reports itself unhealthy so that the harness sends
nothing new. When the bound passes it gives up: what it holds, and what still arrives, goes to the
run's spill file (store/spill.py), which `arena run --resume` replays first (replay_spill).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from arena.errors import StoreError, plural
from arena.store.messages import one_line
from arena.store.spill import (
    HeldResult,
    SpillReport,
    read_spill,
    spill_keys,
    spill_paths,
    write_spill,
)
from arena.store.tables import Attempt, BudgetHold, Job, StoredImage, utcnow

log = logging.getLogger("arena.store")

HEALTHY, FAILING, FAILED = "healthy", "failing", "failed"
FIRST_RETRY_S = 0.1
LONGEST_RETRY_S = 5.0
BATCH_LIMIT = 500
# A NOT NULL column an attempt record may leave out or spill as null, and its value then.
ATTEMPT_DEFAULTS = {"source": "benchmark"}
_CLOSE, _WAKE = object(), object()  # queue markers: flush and stop; stop waiting (abandon)


def insert_ignoring_duplicates(engine: sa.Engine, table: sa.Table):
    """INSERT ... ON CONFLICT DO NOTHING in the engine's dialect (SQLite and PostgreSQL both have it)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def record_results(
    engine: sa.Engine,
    items: list[tuple[Attempt, StoredImage | None, bool]],
    claimed_by: str | None = None,
) -> None:
    """Write attempts (and images), and mark each finished job done, in one transaction.

    Each item is (attempt, image or None, final): `final` marks the attempt's job done with the
    attempt's outcome. Bulk Core statements rather than the ORM: this runs beside the event loop
    that times requests, and every millisecond of Python here is a millisecond the loop waits for
    the GIL. A replayed result is harmless: (job_id, attempt) is unique and done jobs stay as they
    are. `claimed_by` (a worker's holder) marks a job done only while the job is unclaimed or
    claimed by it. Raises StoreError, in one line, when the store refuses.
    """
    try:
        _write_results(engine, items, claimed_by)
    except SQLAlchemyError as exc:
        raise StoreError(f"could not save results: {describe_failure(exc)}") from None


def _attempt_row(attempt, columns: list[str]) -> dict:
    row = {c: getattr(attempt, c, None) for c in columns}
    for column, default in ATTEMPT_DEFAULTS.items():
        if row.get(column) is None:
            row[column] = default
    return row


def _write_results(
    engine: sa.Engine,
    items: list[tuple[Attempt, StoredImage | None, bool]],
    claimed_by: str | None = None,
) -> None:
    """record_results' transaction, letting the store's own exception through."""
    attempt_columns = [c.name for c in Attempt.__table__.columns if c.name != "id"]
    images = {image.sha256: image for _, image, _ in items if image is not None}
    attempt_rows = [_attempt_row(a, attempt_columns) for a, _, _ in items]
    now = utcnow()
    job_rows = [
        {
            "job_id": a.job_id,
            "outcome": "success" if a.ok else a.failure_class,
            "attempts": a.attempt,
            "cost_usd": a.cost_usd,
            "image_sha256": a.image_sha256,
            "finished_at": now,
        }
        for a, _, final in items
        if final and a.job_id is not None
    ]
    jobs = Job.__table__
    with engine.begin() as conn:
        if images:
            conn.execute(
                insert_ignoring_duplicates(engine, StoredImage.__table__),
                [
                    {c.name: getattr(i, c.name) for c in StoredImage.__table__.columns}
                    for i in images.values()
                ],
            )
        if attempt_rows:
            late = _insert_attempts(engine, conn, attempt_rows)
            job_rows = [row for row in job_rows if (row["job_id"], row["attempts"]) not in late]
        if job_rows:
            done_once = jobs.c.status != "done"
            if claimed_by is not None:
                done_once = sa.and_(
                    done_once, sa.or_(jobs.c.claimed_by.is_(None), jobs.c.claimed_by == claimed_by)
                )
            conn.execute(
                jobs.update()
                .where(jobs.c.id == sa.bindparam("job_id"), done_once)
                .values(
                    status="done",
                    outcome=sa.bindparam("outcome"),
                    attempts=sa.bindparam("attempts"),
                    cost_usd=sa.bindparam("cost_usd"),
                    image_sha256=sa.bindparam("image_sha256"),
                    finished_at=sa.bindparam("finished_at"),
                ),
                job_rows,
            )
            if claimed_by is not None:  # the budget held for them is now spent (or not)
                holds = BudgetHold.__table__
                conn.execute(
                    holds.delete().where(holds.c.job_id.in_([r["job_id"] for r in job_rows]))
                )


def _insert_attempts(engine: sa.Engine, conn: sa.Connection, rows: list[dict]) -> set[tuple]:
    """Insert attempt rows; returns the (job_id, attempt) of those that arrived late.

    A row whose (job_id, attempt) is already stored is either the same attempt again (a replayed
    spill: skipped) or another request that got the same number: sent by an executor whose lease
    or claim was lost while it was in flight, while the job's next executor numbered its own from
    what was stored. That request was paid for, so it is kept under the job's next free number,
    and it is no longer the job's final attempt (its key is returned).
    """
    table = Attempt.__table__
    inserted = {
        (row[0], row[1])
        for row in conn.execute(
            insert_ignoring_duplicates(engine, table).returning(table.c.job_id, table.c.attempt),
            rows,
        )
    }
    clashed = [
        r for r in rows if r["job_id"] is not None and (r["job_id"], r["attempt"]) not in inserted
    ]
    if not clashed:
        return set()
    stored = {
        (job_id, attempt): _aware(started_at).timestamp()
        for job_id, attempt, started_at in conn.execute(
            sa.select(table.c.job_id, table.c.attempt, table.c.started_at).where(
                table.c.job_id.in_({r["job_id"] for r in clashed})
            )
        )
    }
    late = set()
    for row in clashed:
        key = (row["job_id"], row["attempt"])
        if key in stored and stored[key] == _aware(row["started_at"]).timestamp():
            continue  # the same attempt saved before
        number = max(a for (j, a) in stored if j == row["job_id"]) + 1
        stored[(row["job_id"], number)] = _aware(row["started_at"]).timestamp()
        conn.execute(table.insert(), [{**row, "attempt": number}])
        late.add(key)
    return late


def describe_failure(exc: BaseException) -> str:
    """One short line for why a write failed, with the kind of failure: never SQL or parameters."""
    if isinstance(exc, OSError):
        return one_line(exc)
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {one_line(exc)}"


def store_image(data_dir: Path, image: bytes, info) -> StoredImage:
    """Save an image file under the data dir (once by its sha256) and describe it for the images table."""
    from arena.images import save_image

    path = save_image(Path(data_dir) / "images", image, info)
    return StoredImage(
        sha256=info.sha256,
        path=str(path.relative_to(data_dir)),
        format=info.format,
        width=info.width,
        height=info.height,
        size_bytes=info.size_bytes,
    )


def replay_spill(
    engine: sa.Engine, data_dir: Path, run_id: str, skip: frozenset[str] = frozenset()
) -> int:
    """Save what a run's spill files hold, then remove them; returns how many results were replayed.

    Idempotent: (job_id, attempt) is unique, done jobs stay as they are, and a warm-up already
    saved is not saved again; a file is removed only after its results are committed. The files
    of the keys in `skip` (live workers' own) are left to their writers.
    """
    replayed = 0
    paths = [
        path
        for key in spill_keys(data_dir, run_id)
        if key not in skip
        for path in spill_paths(data_dir, key)
    ]
    for path in paths:
        if not path.is_file():
            continue
        held, torn = read_spill(path)
        if torn:
            log.warning(
                "arena: %s: its last line was cut short by a crash; that result's job stays "
                "pending and is sent again",
                path,
            )
        items = []
        for result in held:
            if result.image is not None:
                try:
                    result.stored = store_image(data_dir, result.image, result.info)
                except OSError as exc:
                    raise StoreError(
                        f"{path}: could not save a spilled image ({describe_failure(exc)})"
                    ) from None
            elif result.stored is not None and not (Path(data_dir) / result.stored.path).is_file():
                raise StoreError(f"{path}: spilled image {result.stored.path} is missing")
            items.append((result.attempt, result.stored, result.final))
        items = _without_saved_warmups(engine, run_id, items)
        if items:
            record_results(engine, items)
        path.unlink()
        replayed += len(held)
    return replayed


def _without_saved_warmups(engine, run_id, items):
    """Warm-ups have no job, so (job_id, attempt) cannot keep them unique: look for them instead."""
    warmups = [item for item in items if item[0].job_id is None]
    if not warmups:
        return items
    table = Attempt.__table__
    try:
        with engine.connect() as conn:
            saved = {
                (model, provider, _aware(started_at).timestamp())
                for model, provider, started_at in conn.execute(
                    sa.select(table.c.model, table.c.provider, table.c.started_at).where(
                        table.c.run_id == run_id, table.c.warmup.is_(True)
                    )
                )
            }
    except SQLAlchemyError as exc:
        raise StoreError(f"could not read the run's warm-ups: {describe_failure(exc)}") from None

    def key(attempt):
        return (attempt.model, attempt.provider, _aware(attempt.started_at).timestamp())

    return [item for item in items if item[0].job_id is not None or key(item[0]) not in saved]


def _aware(moment):
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class StoreWriter:
    """The harness's sink: a thread that saves image files and writes attempts in small batches.

    Blocking work (file and database writes) stays off the event loop that times requests; a
    crash loses at most the results still in the queue, and their jobs stay pending for --resume.

    Its health, for the harness (watch_health): "healthy"; "failing" while it holds results the
    store refused and tries again (backoff from 0.1 s to 5 s, for at most `retry_s`); "failed" once
    it gave up, after which every result goes to the run's spill file. It never drops a result:
    what neither the store nor a spill file could take is counted, and failure_summary() says so.
    """

    def __init__(
        self,
        engine: sa.Engine,
        data_dir: Path,
        batch_window_s: float = 0.2,
        *,
        run_id: str = "run",
        retry_s: float = 60.0,
        claimed_by: str | None = None,
        spill_key: str | None = None,
    ) -> None:
        self.engine = engine
        self.claimed_by = claimed_by  # a worker's holder: see record_results
        self.spill_key = spill_key or run_id  # the spill file's name (a worker's is its own)
        self.data_dir = Path(data_dir)
        self.batch_window_s = batch_window_s
        self.run_id = run_id
        self.retry_s = retry_s
        self.health = HEALTHY
        self.failure: str | None = None  # why the store refused, the latest time it did
        self.failing_s = 0.0  # how long the outage that made it give up lasted
        self.spilled = SpillReport()
        self._listeners: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._abandon = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="arena-store-writer", daemon=True)
        self._thread.start()

    def submit(self, attempt, image: bytes | None, info, final: bool) -> None:
        self._queue.put(HeldResult(attempt, image, info, final))

    def watch_health(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call listener(health) now and at every change (from the writer's thread); returns the
        function that stops it."""
        with self._lock:
            self._listeners.append(listener)
            listener(self.health)

        def unwatch() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unwatch

    def abandon(self) -> None:
        """Stop waiting for a failing store: what is held goes to the spill file now (a second Ctrl-C)."""
        self._abandon.set()
        self._queue.put(_WAKE)

    def close(self) -> None:
        """Flush everything submitted so far: saved, or (after retry_s of failures) spilled.

        Never raises for the store: health is "failed" afterwards when it gave up, and
        failure_summary() says what failed and where the results are.
        """
        self._queue.put(_CLOSE)
        self._thread.join()

    def failure_summary(self) -> str:
        """One line: what failed, for how long, and where the results it could not save went."""
        return (
            f"the store failed for {self.failing_s:.1f} s ({self.failure}): "
            f"{self.spilled.describe()}"
        )

    # --- the thread --------------------------------------------------------------------------

    def _set_health(self, health: str) -> None:
        with self._lock:
            self.health = health
            for listener in list(self._listeners):
                with contextlib.suppress(Exception):  # a listener's loop may have closed
                    listener(health)

    def _loop(self) -> None:
        held: list[HeldResult] = []
        closing = False
        failing_since = next_try_at = 0.0
        backoff_s = FIRST_RETRY_S
        while not (closing and not held):
            waiting = self.health == FAILING and not self._abandon.is_set()
            if held:  # failing: gather what arrives until the next try (now, once abandoned)
                results, closed = self._collect(next_try_at if waiting else time.monotonic())
            else:
                results, closed = self._collect(None)
            closing = closing or closed
            held += results
            if not held:
                continue
            if self.health == FAILED:
                self._spill(held)
                held = []
                continue
            if waiting and time.monotonic() < next_try_at and not self._abandon.is_set():
                continue
            try:
                self._save(held)
            except Exception as exc:  # a database or file error; anything else is kept the same way
                now = time.monotonic()
                self.failure = describe_failure(exc)
                if self.health == HEALTHY:
                    failing_since, backoff_s = now, FIRST_RETRY_S
                    self._set_health(FAILING)
                    log.warning(
                        "arena: the store is failing (%s): holding %s and sending no "
                        "new request; trying again for up to %g s",
                        self.failure,
                        plural(len(held), "result"),
                        self.retry_s,
                    )
                deadline = failing_since + self.retry_s
                if now >= deadline or self._abandon.is_set():
                    self.failing_s = now - failing_since
                    self._set_health(FAILED)
                    log.warning(
                        "arena: gave up on the store after %.1f s (%s): stopping the run; what is "
                        "held and what is still in flight goes to the spill file",
                        self.failing_s,
                        self.failure,
                    )
                    self._spill(held)
                    held = []
                else:
                    next_try_at = min(now + backoff_s, deadline)
                    backoff_s = min(backoff_s * 2, LONGEST_RETRY_S)
                continue
            if self.health == FAILING:
                log.warning(
                    "arena: the store is back after %.1f s: %s saved; continuing",
                    time.monotonic() - failing_since,
                    plural(len(held), "held result"),
                )
                self._set_health(HEALTHY)
            held = []

    def _collect(self, until: float | None) -> tuple[list[HeldResult], bool]:
        """Results submitted until `until` (monotonic); None: wait for one, then the batch window
        after it. Also whether close() asked to stop; abandon() cuts the wait short."""
        results: list[HeldResult] = []
        limit = None
        if until is None:
            item = self._queue.get()
            until, limit = time.monotonic() + self.batch_window_s, BATCH_LIMIT
        else:
            item = self._next(until)
        while item is not None and item is not _WAKE:
            if item is _CLOSE:
                return results, True
            results.append(item)
            if limit is not None and len(results) >= limit:
                break
            item = self._next(until)
        return results, False

    def _next(self, until: float):
        remaining = until - time.monotonic()
        try:
            return self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _save(self, held: list[HeldResult]) -> None:
        for result in held:
            if result.stored is None and result.image is not None and result.info is not None:
                result.stored = store_image(self.data_dir, result.image, result.info)
        _write_results(self.engine, [(r.attempt, r.stored, r.final) for r in held], self.claimed_by)

    def _spill(self, held: list[HeldResult]) -> None:
        for result in held:  # a saved image is named in its line, not carried in it
            if result.stored is None and result.image is not None and result.info is not None:
                with contextlib.suppress(OSError):
                    result.stored = store_image(self.data_dir, result.image, result.info)
        report = write_spill(self.data_dir, self.spill_key, held)
        self.spilled.add(report)
        if report.lost:
            log.warning("arena: %s", report.describe())

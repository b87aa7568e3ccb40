"""The store: an engine from a URL, the tables, writes of runs/jobs/attempts/images, reads into DataFrames."""

from __future__ import annotations

import contextlib
import gc
import json
import queue
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pandas.api.types import union_categoricals
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, select

from arena.errors import RunError, StoreError
from arena.tables import Attempt, Job, Run, StoredImage, Vote, utcnow

__all__ = ["Attempt", "Job", "Run", "StoredImage", "Vote", "open_engine"]


def engine_url(url: str) -> str:
    """Pick our drivers: psycopg 3 for PostgreSQL, the stdlib for SQLite."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def apply_sqlite_pragmas(dbapi_conn) -> None:
    """WAL (readers never block the writer), fsync at checkpoints only, and waiting out a busy lock."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_engine(url: str, create: bool = True) -> sa.Engine:
    """An engine with the tables created; SQLite gets WAL and a busy timeout for concurrent readers."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            apply_sqlite_pragmas(dbapi_conn)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if create:
        try:
            SQLModel.metadata.create_all(engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open the database: {exc.orig}") from None
    return engine


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# --- runs and jobs ---------------------------------------------------------------------------

def create_run(engine: sa.Engine, run: Run, jobs: Iterable[Job]) -> Run:
    """Store a run and its whole plan in one transaction, before any request is sent."""
    jobs = list(jobs)
    run.jobs_total = len(jobs)
    with Session(engine) as session:
        session.add(run)
        session.flush()
        for job in jobs:
            job.run_id = run.id
            session.add(job)
        try:
            session.commit()
        except IntegrityError as exc:
            raise StoreError(f"run {run.id} could not be planned: {exc.orig}") from None
        session.refresh(run)
        session.expunge(run)
    return run


def get_run(engine: sa.Engine, run_id: str) -> Run:
    """A run by id, or the newest run for "last"."""
    with Session(engine) as session:
        if run_id == "last":
            run = session.exec(select(Run).order_by(Run.created_at.desc(), Run.id.desc())).first()
            if run is None:
                raise RunError("no run to resume: the store has no runs yet")
        else:
            run = session.get(Run, run_id)
            if run is None:
                raise RunError(f"no run with id {run_id!r}")
        session.expunge(run)
        return run


def list_runs(engine: sa.Engine) -> list[Run]:
    with Session(engine) as session:
        runs = list(session.exec(select(Run).order_by(Run.created_at.desc())))
        for run in runs:
            session.expunge(run)
        return runs


def set_run_status(engine: sa.Engine, run_id: str, status: str, finished: bool = False) -> None:
    with Session(engine) as session:
        run = session.get(Run, run_id)
        run.status = status
        if finished:
            run.finished_at = utcnow()
        session.add(run)
        session.commit()


def pending_jobs(engine: sa.Engine, run_id: str) -> list[Job]:
    """Jobs of a run not yet done, in plan order."""
    with Session(engine) as session:
        jobs = list(session.exec(select(Job).where(Job.run_id == run_id, Job.status == "pending").order_by(Job.id)))
        for job in jobs:
            session.expunge(job)
        return jobs


def next_attempt_number(engine: sa.Engine, job_ids: list[int]) -> dict[int, int]:
    """For resumed jobs: the attempt number to use next (attempts made before a crash are kept)."""
    if not job_ids:
        return {}
    with Session(engine) as session:
        rows = session.exec(
            select(Attempt.job_id, sa.func.max(Attempt.attempt)).where(Attempt.job_id.in_(job_ids)).group_by(Attempt.job_id)
        ).all()
    return {job_id: last + 1 for job_id, last in rows}


def run_cost_usd(engine: sa.Engine, run_id: str) -> float:
    with Session(engine) as session:
        total = session.exec(select(sa.func.sum(Attempt.cost_usd)).where(Attempt.run_id == run_id)).one()
    return float(total or 0.0)


# --- results ---------------------------------------------------------------------------------

def insert_ignoring_duplicates(engine: sa.Engine, table: sa.Table):
    """INSERT ... ON CONFLICT DO NOTHING in the engine's dialect (SQLite and PostgreSQL both have it)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def record_results(engine: sa.Engine, items: list[tuple[Attempt, StoredImage | None, bool]]) -> None:
    """Write attempts (and images), and mark each finished job done, in one transaction.

    Each item is (attempt, image or None, final): `final` marks the attempt's job done with the
    attempt's outcome. Bulk Core statements rather than the ORM: this runs beside the event loop
    that times requests, and every millisecond of Python here is a millisecond the loop waits for
    the GIL. A replayed result is harmless: (job_id, attempt) is unique and done jobs stay as they are.
    """
    attempt_columns = [c.name for c in Attempt.__table__.columns if c.name != "id"]
    images = {image.sha256: image for _, image, _ in items if image is not None}
    attempt_rows = [{c: getattr(a, c, None) for c in attempt_columns} for a, _, _ in items]
    now = utcnow()
    job_rows = [
        {"job_id": a.job_id, "outcome": "success" if a.ok else a.failure_class, "attempts": a.attempt,
         "cost_usd": a.cost_usd, "image_sha256": a.image_sha256, "finished_at": now}
        for a, _, final in items if final and a.job_id is not None
    ]
    jobs = Job.__table__
    try:
        with engine.begin() as conn:
            if images:
                conn.execute(insert_ignoring_duplicates(engine, StoredImage.__table__),
                             [{c.name: getattr(i, c.name) for c in StoredImage.__table__.columns} for i in images.values()])
            if attempt_rows:
                conn.execute(insert_ignoring_duplicates(engine, Attempt.__table__), attempt_rows)
            if job_rows:
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == sa.bindparam("job_id"), jobs.c.status != "done")
                    .values(status="done", outcome=sa.bindparam("outcome"), attempts=sa.bindparam("attempts"),
                            cost_usd=sa.bindparam("cost_usd"), image_sha256=sa.bindparam("image_sha256"),
                            finished_at=sa.bindparam("finished_at")),
                    job_rows,
                )
    except SQLAlchemyError as exc:
        raise StoreError(f"could not save results: {exc}") from None


# --- reads -----------------------------------------------------------------------------------

ATTEMPT_COLUMNS = [c.name for c in Attempt.__table__.columns]
# Text columns that name things (few distinct values): categoricals in lean reads. Per-row text
# (battle ids, error messages, request ids) stays plain.
ATTEMPT_LABELS = frozenset({"run_id", "challenge", "task", "category", "model", "provider", "failure_class",
                            "image_sha256", "format", "served_by"})
VOTE_LABELS = frozenset({"challenge", "task", "category", "model_left", "model_right", "provider_left",
                         "provider_right", "image_left", "image_right", "outcome", "voter", "flag_reason"})
READ_CHUNK_ROWS = 20_000  # rows in flight as Python objects during a lean read


def read_attempts(
    engine: sa.Engine,
    since: datetime | None = None,
    model: str | None = None,
    include_warmup: bool = False,
    run_id: str | None = None,
    *,
    columns: Iterable[str] | None = None,
    labels_as_categories: bool = False,
) -> pd.DataFrame:
    """Attempts as a DataFrame (started_at as UTC timestamps), in id order, filters applied in SQL.

    `columns` picks columns (default: all). `labels_as_categories=True` is the lean read for large
    stores: rows come through in chunks and names (model, provider, challenge...) become
    categoricals, booleans bool and numbers float (int when a column has no NULL); the values are
    the default read's.
    """
    table = Attempt.__table__
    names = _column_names(table, columns, ATTEMPT_COLUMNS)
    query = sa.select(*[table.c[n] for n in names]).order_by(table.c.id)
    if not include_warmup:
        query = query.where(table.c.warmup == sa.false())
    if since is not None:
        query = query.where(table.c.started_at >= since)
    if model is not None:
        query = query.where(table.c.model == model)
    if run_id is not None:
        query = query.where(table.c.run_id == run_id)
    if labels_as_categories:
        return _lean_frame(engine, query, ATTEMPT_LABELS)
    return _plain_frame(engine, query, names, times=("started_at",))


def _plain_frame(engine: sa.Engine, query: sa.Select, names: list[str], times: tuple[str, ...] = (),
                 flags: tuple[str, ...] = ()) -> pd.DataFrame:
    """The default read: pandas over the query, timestamps as UTC, flags as bool, empty with its columns."""
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    if frame.empty:
        return pd.DataFrame(columns=names)
    for name in times:
        if name in frame:
            frame[name] = pd.to_datetime(frame[name], utc=True)
    for name in flags:
        if name in frame:
            frame[name] = frame[name].astype(bool)
    return frame


def _column_names(table: sa.Table, columns: Iterable[str] | None, default: list[str]) -> list[str]:
    if columns is None:
        return list(default)
    names = list(columns)
    unknown = [n for n in names if n not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {', '.join(unknown)}")
    return names


@contextlib.contextmanager
def _gc_paused():
    """No cyclic GC while a read makes millions of short-lived tuples (they hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


LABEL_GROUP = 3  # up to this many adjacent NOT NULL labels travel as one string in a lean read
_LABEL_JOIN = "\x1f"  # the ASCII unit separator; a label holding it makes the read go column by column


class _JoinedLabelClash(Exception):
    """A label contains _LABEL_JOIN, so joined labels cannot be split back."""


def _lean_frame(engine: sa.Engine, query: sa.Select, labels: frozenset[str], join_labels: bool = True) -> pd.DataFrame:
    """The query's rows as a frame, READ_CHUNK_ROWS at a time, each chunk's columns converted at once.

    Only the chunk in flight exists as Python objects: labels become categoricals, DateTime columns
    UTC timestamps, Boolean columns bool, numbers int64 (float64 when NULLs occur). Result
    processing is skipped (SQLite hands back ISO text, PostgreSQL datetimes; both parse the same).
    Adjacent NOT NULL labels (task, category, challenge; the two models and the outcome) are
    fetched joined into one string: one Python object per row instead of three, split again per
    distinct value, which roughly halves the time a million votes take.
    """
    selected = list(query.selected_columns)
    names = [c.name for c in selected]
    kinds = []
    for column in selected:
        kind = ("time" if isinstance(column.type, sa.DateTime) else "flag" if isinstance(column.type, sa.Boolean)
                else "number" if isinstance(column.type, sa.Integer | sa.Float | sa.Numeric)
                else "label" if column.name in labels else "text")
        kinds.append(kind)
    # What each fetched value holds: one column's position, or a group of adjacent joinable labels.
    joinable = [join_labels and kind == "label" and getattr(column, "nullable", True) is False
                for column, kind in zip(selected, kinds, strict=True)]
    fetched: list[list[int]] = []
    for k in range(len(selected)):
        last = fetched[-1] if fetched else None
        if joinable[k] and last and joinable[last[0]] and last[-1] == k - 1 and len(last) < LABEL_GROUP:
            last.append(k)
        else:
            fetched.append([k])
    raw = {"time": sa.String, "flag": sa.Integer}
    expressions = []
    for group in fetched:
        if len(group) > 1:
            expression = selected[group[0]]
            for k in group[1:]:
                expression = expression + sa.literal(_LABEL_JOIN, sa.String) + selected[k]
            expressions.append(expression.label(f"_labels_{group[0]}"))
        else:
            k = group[0]
            column = selected[k]
            expressions.append(sa.type_coerce(column, raw[kinds[k]]).label(column.name) if kinds[k] in raw else column)
    parts: list[list] = [[] for _ in names]
    try:
        with _gc_paused(), engine.connect() as conn:
            result = conn.execution_options(yield_per=READ_CHUNK_ROWS).execute(query.with_only_columns(*expressions))
            for rows in result.partitions():
                for group, values in zip(fetched, zip(*rows, strict=True), strict=True):
                    if len(group) > 1:
                        for k, piece in zip(group, _split_labels(values, len(group)), strict=True):
                            parts[k].append(piece)
                    else:
                        parts[group[0]].append(_lean_column(kinds[group[0]], values))
                del rows
    except _JoinedLabelClash:
        return _lean_frame(engine, query, labels, join_labels=False)
    data = {}
    for k, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        pieces, parts[k] = parts[k], None  # a column's chunks go as soon as it is joined
        if not pieces:
            data[name] = pd.Series([], dtype={"label": "category", "time": "datetime64[us, UTC]", "flag": bool,
                                              "number": float}.get(kind, object))
        elif kind == "label":
            data[name] = union_categoricals(pieces, sort_categories=True)
        elif kind == "time":
            data[name] = pd.concat(pieces, ignore_index=True)
        else:
            data[name] = np.concatenate(pieces)
    return pd.DataFrame(data)


def _split_labels(values: tuple, count: int) -> list[pd.Categorical]:
    """Joined labels back to `count` categoricals; the splitting is done once per distinct value."""
    codes, joined = pd.factorize(np.array(values, dtype=object))
    split = [text.split(_LABEL_JOIN) for text in joined]
    if any(len(labels) != count for labels in split):
        raise _JoinedLabelClash
    out = []
    for j in range(count):
        member_codes, member_names = pd.factorize(np.array([labels[j] for labels in split], dtype=object))
        out.append(pd.Categorical.from_codes(member_codes[codes], member_names))
    return out


def _lean_column(kind: str, values: tuple):
    if kind == "label":
        codes, names = pd.factorize(np.array(values, dtype=object))
        return pd.Categorical.from_codes(codes, names)
    if kind == "time":
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    if kind == "flag":
        return np.array(values, dtype=bool)
    if kind == "number":
        array = np.array(values)
        return array if array.dtype.kind in "if" else np.array(values, dtype=float)  # None -> NaN
    return np.array(values, dtype=object)


def read_image_paths(engine: sa.Engine) -> dict[str, tuple[str, str]]:
    """sha256 -> (path relative to the data dir, format) for every stored image."""
    table = StoredImage.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.sha256, table.c.path, table.c.format))
        return {sha: (path, fmt) for sha, path, fmt in rows}


def read_jobs(engine: sa.Engine, run_id: str | None = None) -> pd.DataFrame:
    query = select(Job)
    if run_id is not None:
        query = query.where(Job.run_id == run_id)
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def run_summary(engine: sa.Engine, run_id: str) -> dict:
    """Counts of a run's jobs by status and outcome."""
    with Session(engine) as session:
        rows = session.exec(
            select(Job.status, Job.outcome, sa.func.count()).where(Job.run_id == run_id).group_by(Job.status, Job.outcome)
        ).all()
    summary = {"pending": 0, "done": 0, "success": 0, "failed": 0, "outcomes": {}}
    for status, outcome, count in rows:
        summary[status] = summary.get(status, 0) + count
        if outcome:
            summary["outcomes"][outcome] = summary["outcomes"].get(outcome, 0) + count
            summary["success" if outcome == "success" else "failed"] += count
    return summary


def settings_snapshot(settings) -> str:
    """The providers and models of a run, as JSON, without any secret (only env var names)."""
    data = {
        "providers": {
            name: {k: getattr(p, k) for k in ("protocol", "base_url", "api_key_env", "rate_limit_per_s",
                                              "max_concurrency", "timeout_s", "max_retries", "warmup", "baseline")}
            for name, p in settings.providers.items()
        },
        "models": {
            name: {"tasks": list(m.tasks), "baseline": m.baseline, "routes": [
                {"provider": r.provider, "model_id": r.model_id, "price_usd": r.price_usd,
                 "price_usd_by_tier": r.price_usd_by_tier} for r in m.routes]}
            for name, m in settings.models.items()
        },
    }
    return json.dumps(data, sort_keys=True)


class StoreWriter:
    """The harness's sink: a thread that saves image files and writes attempts in small batches.

    Blocking work (file and database writes) stays off the event loop that times requests; a
    crash loses at most the results still in the queue, and their jobs stay pending for --resume.
    """

    def __init__(self, engine: sa.Engine, data_dir: Path, batch_window_s: float = 0.2) -> None:
        self.engine = engine
        self.data_dir = Path(data_dir)
        self.batch_window_s = batch_window_s
        self._queue: queue.Queue = queue.Queue()
        self._errors: list[Exception] = []
        self._thread = threading.Thread(target=self._loop, name="arena-store-writer", daemon=True)
        self._thread.start()

    def submit(self, attempt: Attempt, image: bytes | None, info, final: bool) -> None:
        self._queue.put((attempt, image, info, final))

    def _loop(self) -> None:
        from arena.images import save_image

        done = False
        while not done:
            item = self._queue.get()
            batch = [item]
            deadline = time.monotonic() + self.batch_window_s
            while len(batch) < 500:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=max(0.0, remaining)) if remaining > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                done = True
                batch = [b for b in batch if b is not None]
            rows = []
            try:
                for attempt, image, info, final in batch:
                    stored = None
                    if image is not None and info is not None:
                        path = save_image(self.data_dir / "images", image, info)
                        stored = StoredImage(sha256=info.sha256, path=str(path.relative_to(self.data_dir)),
                                             format=info.format, width=info.width, height=info.height,
                                             size_bytes=info.size_bytes)
                    rows.append((attempt, stored, final))
                if rows:
                    record_results(self.engine, rows)
            except Exception as exc:  # kept and re-raised by close(): the run must not report success
                self._errors.append(exc)

    def close(self) -> None:
        """Flush everything submitted so far; raise StoreError if any write failed."""
        self._queue.put(None)
        self._thread.join()
        if self._errors:
            raise StoreError(f"{len(self._errors)} batch(es) of results could not be saved: {self._errors[0]}")


# --- votes -----------------------------------------------------------------------------------

VOTE_COLUMNS = ["battle_id", "challenge", "task", "category", "model_left", "model_right", "outcome",
                "voter", "created_at", "flagged"]


def add_votes(engine: sa.Engine, votes: list[dict]) -> int:
    """Insert vote rows (dicts with Vote's columns) in one transaction; returns how many."""
    if not votes:
        return 0
    try:
        with engine.begin() as conn:
            conn.execute(Vote.__table__.insert(), votes)
    except IntegrityError as exc:
        raise StoreError(f"vote rejected: {exc.orig}") from None
    return len(votes)


def read_votes(engine: sa.Engine, include_flagged: bool = True, extra_columns: bool = False, *,
               columns: Iterable[str] | None = None, labels_as_categories: bool = False) -> pd.DataFrame:
    """Votes as the canonical vote DataFrame of arena.votes (flagged votes marked, not removed), in id order.

    `columns` picks columns (default: the canonical ones, plus the battle's providers, images,
    dwell and flag reason with `extra_columns`). `labels_as_categories=True` is the lean read for
    large stores: rows come through in chunks and labels (models, outcome, task, challenge...)
    become categoricals, so a million votes take tens of MB instead of over a GB; the values are
    the default read's.
    """
    table = Vote.__table__
    default = VOTE_COLUMNS + (["provider_left", "provider_right", "image_left", "image_right", "dwell_ms",
                               "flag_reason"] if extra_columns else [])
    names = _column_names(table, columns, default)
    query = sa.select(*[table.c[name] for name in names]).order_by(table.c.id)
    if not include_flagged:
        query = query.where(table.c.flagged == sa.false())
    if labels_as_categories:
        return _lean_frame(engine, query, VOTE_LABELS)
    return _plain_frame(engine, query, names, times=("created_at",), flags=("flagged",))

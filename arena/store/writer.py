"""The results writer: attempts, images and finished jobs saved in batches from a thread of their own."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from arena.errors import StoreError
from arena.store.tables import Attempt, Job, StoredImage, utcnow


def insert_ignoring_duplicates(engine: sa.Engine, table: sa.Table):
    """INSERT ... ON CONFLICT DO NOTHING in the engine's dialect (SQLite and PostgreSQL both have it)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def record_results(
    engine: sa.Engine, items: list[tuple[Attempt, StoredImage | None, bool]]
) -> None:
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
    try:
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
                conn.execute(insert_ignoring_duplicates(engine, Attempt.__table__), attempt_rows)
            if job_rows:
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == sa.bindparam("job_id"), jobs.c.status != "done")
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
    except SQLAlchemyError as exc:
        raise StoreError(f"could not save results: {exc}") from None


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
                    batch.append(
                        self._queue.get(timeout=max(0.0, remaining))
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
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
                        stored = StoredImage(
                            sha256=info.sha256,
                            path=str(path.relative_to(self.data_dir)),
                            format=info.format,
                            width=info.width,
                            height=info.height,
                            size_bytes=info.size_bytes,
                        )
                    rows.append((attempt, stored, final))
                if rows:
                    record_results(self.engine, rows)
            except (
                Exception
            ) as exc:  # kept and re-raised by close(): the run must not report success
                self._errors.append(exc)

    def close(self) -> None:
        """Flush everything submitted so far; raise StoreError if any write failed."""
        self._queue.put(None)
        self._thread.join()
        if self._errors:
            raise StoreError(
                f"{len(self._errors)} batch(es) of results could not be saved: {self._errors[0]}"
            )

"""The checks that need no model, stored: one row per output image and check (output_checks),
replaced when a check runs again, and read back beside the model and provider that returned it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from arena.store.tables import Attempt, OutputCheck, utcnow

CHECK_COLUMNS = ["image_sha256", "check", "flagged", "value", "threshold", "detail", "checked_at"]
# What read_checks adds from the attempts that returned each image.
OUTPUT_COLUMNS = ["challenge", "task", "category", "model", "provider"]
BATCH_ROWS = 500


def _upsert(engine: sa.Engine, table: sa.Table):
    """INSERT ... ON CONFLICT (the primary key) DO UPDATE, in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )


def save_checks(engine: sa.Engine, rows: Iterable[dict], checked_at: datetime | None = None) -> int:
    """Store check results (dicts with OutputCheck's columns: image_sha256, check, challenge,
    flagged, value, threshold, detail); a row already there for the same image and check is
    replaced. One transaction per batch; returns how many rows were written."""
    checked_at = checked_at or utcnow()
    table = OutputCheck.__table__
    detail_max = table.c.detail.type.length
    prepared = [
        {
            "image_sha256": row["image_sha256"],
            "check": row["check"],
            "challenge": row.get("challenge", "") or "",
            "flagged": bool(row["flagged"]),
            "value": None if row.get("value") is None else float(row["value"]),
            "threshold": None if row.get("threshold") is None else float(row["threshold"]),
            "detail": (row.get("detail") or "")[:detail_max],
            "checked_at": row.get("checked_at") or checked_at,
        }
        for row in rows
    ]
    statement = _upsert(engine, table)
    for start in range(0, len(prepared), BATCH_ROWS):
        with engine.begin() as conn:
            conn.execute(statement, prepared[start : start + BATCH_ROWS])
    return len(prepared)


def read_checks(engine: sa.Engine, run_id: str | None = None) -> pd.DataFrame:
    """Every stored check, one row per output that returned the checked image: the check's columns
    (image_sha256, check, flagged, value, threshold, detail, checked_at, and check_challenge: the
    challenge it was checked for) with the output's challenge, task, category, model and provider.

    Outputs are the successful, non-warm-up benchmark attempts (votepath.successful_outputs' set),
    only `run_id`'s when given. The same bytes returned for two challenges or by two routes (an
    unchanged source, say) are one check and two outputs, each counted for its own model."""
    c, a = OutputCheck.__table__, Attempt.__table__
    query = (
        sa.select(
            *(c.c[name] for name in CHECK_COLUMNS),
            c.c.challenge.label("check_challenge"),
            *(a.c[name] for name in OUTPUT_COLUMNS),
        )
        .join(a, a.c.image_sha256 == c.c.image_sha256)
        .where(
            a.c.ok == sa.true(),
            a.c.warmup == sa.false(),
            a.c.source == "benchmark",
            *([a.c.run_id == run_id] if run_id is not None else []),
        )
        .distinct()
        .order_by(a.c.model, a.c.provider, a.c.challenge, c.c.check, c.c.image_sha256)
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["flagged"] = frame["flagged"].astype(bool)  # SQLite hands back 0 and 1
    return frame[[*CHECK_COLUMNS, "check_challenge", *OUTPUT_COLUMNS]]

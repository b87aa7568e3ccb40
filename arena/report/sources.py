"""Lean reads of the store for the site build: only the columns pages use, labels as categoricals.

store.read_votes and store.read_attempts build one Python object per cell and parse every
timestamp string through the ORM; at a million votes that alone takes ~9 s and over 1 GB. Here
rows come through the DB-API cursor in chunks and each chunk's text columns are turned into
categoricals at once, so a million votes cost ~80 MB. The frames are the same canonical frames
(tests compare them with the store's own reads), minus voter identities, which the site never shows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pandas.api.types import union_categoricals

from arena.tables import Attempt, StoredImage, Vote

CHUNK_ROWS = 50_000  # rows in flight as Python objects: 200k chunks cost ~200 MB more at peak
VOTE_COLUMNS = ("battle_id", "challenge", "task", "category", "model_left", "model_right", "outcome",
                "created_at", "flagged")
ATTEMPT_COLUMNS = ("run_id", "challenge", "task", "category", "model", "provider", "started_at", "ok",
                   "failure_class", "status_code", "generation_ms", "ttfb_ms", "download_ms", "cost_usd",
                   "image_sha256", "width", "height", "format")
LABELS = {"challenge", "task", "category", "model_left", "model_right", "outcome", "run_id", "model",
          "provider", "failure_class", "format"}
TIMES = {"created_at", "started_at"}
FLAGS = {"flagged", "ok"}
NUMBERS = {"generation_ms", "ttfb_ms", "download_ms", "cost_usd", "status_code", "width", "height"}


def _chunks(engine: sa.Engine, query: sa.Select) -> Iterator[list[tuple]]:
    """Raw row tuples, CHUNK_ROWS at a time, straight from the driver's cursor."""
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            yield rows
        cursor.close()
    finally:
        connection.close()


def _column(name: str, values: tuple) -> object:
    if name in LABELS:
        codes, names = pd.factorize(np.array(values, dtype=object))
        return pd.Categorical.from_codes(codes, names)
    if name in TIMES:
        # SQLite hands back ISO text, PostgreSQL datetimes: both parse to UTC timestamps.
        parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        return parsed.dt.tz_localize(None).to_numpy()
    if name in FLAGS:
        return np.array([bool(v) for v in values], dtype=bool)
    if name in NUMBERS:
        return np.array(values, dtype=float)
    return np.array(values, dtype=object)


def _frame(engine: sa.Engine, query: sa.Select, columns: tuple[str, ...]) -> pd.DataFrame:
    parts: dict[str, list] = {name: [] for name in columns}
    for rows in _chunks(engine, query):
        for name, values in zip(columns, zip(*rows, strict=True), strict=True):
            parts[name].append(_column(name, values))
    data = {}
    for name in columns:
        pieces = parts[name]
        if not pieces:
            data[name] = pd.Series([], dtype="category" if name in LABELS else
                                   "datetime64[us, UTC]" if name in TIMES else bool if name in FLAGS else
                                   float if name in NUMBERS else object)
        elif name in LABELS:
            data[name] = union_categoricals(pieces, sort_categories=True)
        elif name in TIMES:
            data[name] = pd.Series(np.concatenate(pieces)).dt.tz_localize("UTC")
        else:
            data[name] = np.concatenate(pieces)
    return pd.DataFrame(data)


def read_vote_frame(engine: sa.Engine) -> pd.DataFrame:
    """Every vote, flagged ones marked, in insertion order: the canonical vote frame without voters."""
    table = Vote.__table__
    query = sa.select(*[sa.type_coerce(table.c[n], sa.String) if n in TIMES else table.c[n]
                        for n in VOTE_COLUMNS]).order_by(table.c.id)
    return _frame(engine, query, VOTE_COLUMNS)


def read_attempt_frame(engine: sa.Engine) -> pd.DataFrame:
    """Every attempt but warm-ups, oldest first."""
    table = Attempt.__table__
    query = (sa.select(*[sa.type_coerce(table.c[n], sa.String) if n in TIMES else table.c[n]
                         for n in ATTEMPT_COLUMNS])
             .where(table.c.warmup == sa.false()).order_by(table.c.started_at, table.c.id))
    return _frame(engine, query, ATTEMPT_COLUMNS)


def read_image_paths(engine: sa.Engine) -> dict[str, tuple[str, str]]:
    """sha256 -> (path relative to the data dir, format) for every stored image."""
    table = StoredImage.__table__
    with engine.connect() as conn:
        return {sha: (path, fmt) for sha, path, fmt in conn.execute(sa.select(table.c.sha256, table.c.path, table.c.format))}

"""Reads into DataFrames: attempts, jobs, votes (plain and lean chunked reads, and pair counts
counted in SQL for the boards), judge calls, image paths."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pandas.api.types import union_categoricals

from arena.ratings.frames import CANONICAL_COLUMNS, COUNT_COLUMN
from arena.store.tables import Attempt, JudgeCall, StoredImage, Vote

ATTEMPT_COLUMNS = [c.name for c in Attempt.__table__.columns]
# Text columns that name things (few distinct values): categoricals in lean reads. Per-row text
# (battle ids, error messages, request ids) stays plain.
ATTEMPT_LABELS = frozenset(
    {
        "run_id",
        "challenge",
        "task",
        "category",
        "model",
        "provider",
        "failure_class",
        "image_sha256",
        "format",
        "served_by",
        "source",
        "gateway_key",
    }
)
# Where an attempt came from: the benchmark's harness, or the gateway's upstream requests.
ATTEMPT_SOURCES = ("benchmark", "traffic")
VOTE_LABELS = frozenset(
    {
        "challenge",
        "task",
        "category",
        "model_left",
        "model_right",
        "provider_left",
        "provider_right",
        "image_left",
        "image_right",
        "outcome",
        "voter",
        "flag_reason",
    }
)
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
    source: str | None = None,
) -> pd.DataFrame:
    """Attempts as a DataFrame (started_at as UTC timestamps), in id order, filters applied in SQL.

    `source` keeps one source's attempts: "benchmark" (the harness) or "traffic" (the gateway's
    upstream requests); None reads both. `columns` picks columns (default: all). `labels_as_categories=True` is the lean read for large
    stores: rows come through in chunks and names (model, provider, challenge...) become
    categoricals, booleans bool and numbers float (int when a column has no NULL); the values are
    the default read's.
    """
    if source is not None and source not in ATTEMPT_SOURCES:
        raise ValueError(
            f"source must be one of {', '.join(ATTEMPT_SOURCES)} or None, got {source!r}"
        )
    table = Attempt.__table__
    names = _column_names(table, columns, ATTEMPT_COLUMNS)
    query = sa.select(*[table.c[n] for n in names]).order_by(table.c.id)
    if source is not None:
        query = query.where(table.c.source == source)
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


def _plain_frame(
    engine: sa.Engine,
    query: sa.Select,
    names: list[str],
    times: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> pd.DataFrame:
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


LABEL_GROUP = 3  # up to this many adjacent NOT NULL labels travel as one string in a lean read
_LABEL_JOIN = (
    "\x1f"  # the ASCII unit separator; a label holding it makes the read go column by column
)


class _JoinedLabelClash(Exception):
    """A label contains _LABEL_JOIN, so joined labels cannot be split back."""


def _lean_frame(
    engine: sa.Engine, query: sa.Select, labels: frozenset[str], join_labels: bool = True
) -> pd.DataFrame:
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
        kind = (
            "time"
            if isinstance(column.type, sa.DateTime)
            else "flag"
            if isinstance(column.type, sa.Boolean)
            else "number"
            if isinstance(column.type, sa.Integer | sa.Float | sa.Numeric)
            else "label"
            if column.name in labels
            else "text"
        )
        kinds.append(kind)
    # What each fetched value holds: one column's position, or a group of adjacent joinable labels.
    joinable = [
        join_labels and kind == "label" and getattr(column, "nullable", True) is False
        for column, kind in zip(selected, kinds, strict=True)
    ]
    fetched: list[list[int]] = []
    for k in range(len(selected)):
        last = fetched[-1] if fetched else None
        if (
            joinable[k]
            and last
            and joinable[last[0]]
            and last[-1] == k - 1
            and len(last) < LABEL_GROUP
        ):
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
            expressions.append(
                sa.type_coerce(column, raw[kinds[k]]).label(column.name)
                if kinds[k] in raw
                else column
            )
    parts: list[list] = [[] for _ in names]
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=READ_CHUNK_ROWS).execute(
                query.with_only_columns(*expressions)
            )
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
            data[name] = pd.Series(
                [],
                dtype={
                    "label": "category",
                    "time": "datetime64[us, UTC]",
                    "flag": bool,
                    "number": float,
                }.get(kind, object),
            )
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
        member_codes, member_names = pd.factorize(
            np.array([labels[j] for labels in split], dtype=object)
        )
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


# The default vote read is the canonical vote frame the ratings take.
VOTE_COLUMNS = list(CANONICAL_COLUMNS)


def read_votes(
    engine: sa.Engine,
    include_flagged: bool = True,
    extra_columns: bool = False,
    *,
    columns: Iterable[str] | None = None,
    labels_as_categories: bool = False,
    voters: str = "humans",
) -> pd.DataFrame:
    """Votes as the canonical vote DataFrame of arena.ratings.frames (flagged votes marked, not removed), in id order.

    `voters` picks whose votes: "humans" (the default, what every published board uses),
    "judge:NAME" (one judge's), "judges" (every judge's) or "all".

    `columns` picks columns (default: the canonical ones, plus the battle's providers, images,
    dwell and flag reason with `extra_columns`). `labels_as_categories=True` is the lean read for
    large stores: rows come through in chunks and labels (models, outcome, task, challenge...)
    become categoricals, so a million votes take tens of MB instead of over a GB; the values are
    the default read's.
    """
    table = Vote.__table__
    default = VOTE_COLUMNS + (
        ["provider_left", "provider_right", "image_left", "image_right", "dwell_ms", "flag_reason"]
        if extra_columns
        else []
    )
    names = _column_names(table, columns, default)
    query = sa.select(*[table.c[name] for name in names]).order_by(table.c.id)
    if not include_flagged:
        query = query.where(table.c.flagged == sa.false())
    query = query.where(*voter_filter(table, voters))
    if labels_as_categories:
        return _lean_frame(engine, query, VOTE_LABELS)
    return _plain_frame(engine, query, names, times=("created_at",), flags=("flagged",))


# What read_pair_counts groups by besides the task, the two models, the outcome and flagged.
PAIR_COUNT_GROUPS = {
    None: (),
    "category": ("category",),
    "challenge": ("challenge",),
    "route": ("provider_left", "provider_right"),
}


def read_pair_counts(
    engine: sa.Engine, *, voters: str = "humans", by: str | None = None, task: str | None = None
) -> pd.DataFrame:
    """Votes counted by the database: one row per (task, model_left, model_right, outcome, flagged,
    by's columns) that has votes, with their number in `votes` (COUNT_COLUMN).

    What the boards need from the vote table, without a row per vote: the ratings fold these
    counts into the same Tally as the votes themselves (arena.ratings.compute_boards_from_counts).
    `voters` as read_votes; `by` None, "category", "challenge" or "route" (the two providers);
    `task` keeps one task. Flagged votes are counted apart (flagged=True), so a caller can say how
    many were left out.
    """
    if by not in PAIR_COUNT_GROUPS:
        raise ValueError(f"by must be one of {tuple(PAIR_COUNT_GROUPS)}, not {by!r}")
    table = Vote.__table__
    # In the order of ix_votes_pair_counts (after voter_kind): PostgreSQL then counts from the
    # index alone, its entries already grouped.
    names = ["task", "model_left", "model_right", "outcome", "flagged", *PAIR_COUNT_GROUPS[by]]
    keys = [table.c[name] for name in names]
    query = (
        sa.select(*keys, sa.func.count().label(COUNT_COLUMN))
        .where(*voter_filter(table, voters))
        .group_by(*keys)
    )
    if task is not None:
        query = query.where(table.c.task == task)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Compiling the count's expressions costs more than it saves (0.1 s at 10M votes, over
            # a second once the table's size passes jit_inline_above_cost).
            conn.exec_driver_sql("SET LOCAL jit = off")
        # Plain tuples: pandas builds a frame from them ten times faster than from Row objects.
        rows = [tuple(row) for row in conn.execute(query)]
    frame = pd.DataFrame.from_records(rows, columns=[*names, COUNT_COLUMN])
    return frame.astype({"flagged": bool, COUNT_COLUMN: np.int64})


def count_votes(engine: sa.Engine, by: str, *, voters: str = "humans") -> dict[str, int]:
    """Unflagged votes per value of one column (challenge, task, ...), counted by the database."""
    table = Vote.__table__
    if by not in table.c:
        raise ValueError(f"votes has no column {by!r}")
    column = table.c[by]
    query = (
        sa.select(column, sa.func.count())
        .where(table.c.flagged == sa.false(), *voter_filter(table, voters))
        .group_by(column)
    )
    with engine.connect() as conn:
        return {str(value): int(n) for value, n in conn.execute(query)}


VOTER_CHOICES = ("humans", "judges", "all")  # or "judge:NAME"


def voter_filter(table: sa.Table, voters: str) -> list:
    """The WHERE clauses that pick `voters`' votes (see read_votes)."""
    if voters == "humans":
        return [table.c.voter_kind == "human"]
    if voters == "judges":
        return [table.c.voter_kind.like("judge:%")]
    if voters == "all":
        return []
    if voters.startswith("judge:") and len(voters) > len("judge:"):
        return [table.c.voter_kind == voters]
    raise ValueError(f"voters must be humans, judges, all or judge:NAME, not {voters!r}")


def voter_kinds(engine: sa.Engine) -> list[str]:
    """The voter kinds that have votes ("human", "judge:NAME", ...), sorted."""
    table = Vote.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.voter_kind).distinct())
        return sorted(kind for (kind,) in rows)


JUDGE_CALL_COLUMNS = [c.name for c in JudgeCall.__table__.columns]


def read_judge_calls(engine: sa.Engine, judge: str | None = None) -> pd.DataFrame:
    """Judge calls (every column of judge_calls) in id order; started_at as UTC, ok as bool.

    `judge` keeps one judge's calls: its name, or its voter kind "judge:NAME".
    """
    table = JudgeCall.__table__
    query = sa.select(table).order_by(table.c.id)
    if judge is not None:
        query = query.where(table.c.judge == judge.removeprefix("judge:"))
    return _plain_frame(engine, query, JUDGE_CALL_COLUMNS, times=("started_at",), flags=("ok",))

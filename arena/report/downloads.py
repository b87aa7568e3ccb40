"""The site's downloads: leaderboard.json, generations.csv, votes.csv (no voter ids, no IPs), and
manifest.json, which names each file's columns and the schema version they follow."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from arena import stats
from arena.ratings import RatingOptions, board_records

# The downloads' format: bumped when a column or key is renamed, removed or changes meaning (adding
# one is not a change). leaderboard.json and manifest.json carry it; the CSVs are listed in the
# manifest; arena.ratings.frames reads vote files up to the version it knows.
DOWNLOADS_SCHEMA_VERSION = 1

VOTE_FIELDS = (
    "battle_id",
    "created_at",
    "task",
    "category",
    "challenge",
    "model_left",
    "model_right",
    "outcome",
    "flagged",
)
GENERATION_FIELDS = (
    "run_id",
    "started_at",
    "task",
    "category",
    "challenge",
    "model",
    "provider",
    "ok",
    "failure_class",
    "status_code",
    "generation_ms",
    "ttfb_ms",
    "download_ms",
    "cost_usd",
    "image_sha256",
    "width",
    "height",
    "failure_message",  # the provider's words (or arena's) for a failure, one line, capped
    "client_wait_ms",  # waiting for a connection before the request went out: outside generation_ms
)
# What generations.csv is written from: the stored columns, the failure message's source text
# instead of the message (derived when the file is written).
GENERATION_SOURCE_COLUMNS = (*(f for f in GENERATION_FIELDS if f != "failure_message"), "error")


def _iso(values: pd.Series) -> np.ndarray:
    """UTC timestamps as ISO 8601 text with a Z, vectorized (strftime on a million rows takes seconds)."""
    naive = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    text = np.datetime_as_string(naive, unit="ms")
    return np.char.add(text.astype(str), "Z")


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _quoted(text: str) -> str:
    """One cell exactly as csv.writer (QUOTE_MINIMAL) writes it."""
    if not _NEEDS_QUOTES.search(text):
        return text
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([text, ""])
    return buffer.getvalue()[:-2]  # the cell without the empty second cell's "," and the newline


def _cells(values: pd.Series, whole: bool = False) -> list[str]:
    """A column as CSV cells: labels through their (quoted) categories, numbers as repr prints
    them (whole ones as integers), timestamps as ISO 8601 UTC, missing as ''."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        names = np.array([_quoted(str(c)) for c in values.cat.categories] + [""], dtype=object)
        return names[
            values.cat.codes.to_numpy()
        ].tolist()  # code -1 (missing) picks the trailing ''
    if values.dtype.kind == "M":
        return _iso(values).tolist()
    if values.dtype == bool:
        return np.where(values.to_numpy(), "True", "False").tolist()
    if values.dtype.kind in "iuf":
        # Each distinct number printed once (repr: the shortest text that reads back the same float).
        codes, distinct = pd.factorize(values.to_numpy())  # NaN: code -1, the trailing ''
        show = (lambda v: str(int(v))) if whole or values.dtype.kind in "iu" else repr
        return np.array([show(v) for v in distinct.tolist()] + [""], dtype=object)[codes].tolist()
    cells = list(map(str, values.astype(object).where(values.notna(), "").to_numpy()))
    if _NEEDS_QUOTES.search("".join(cells)):  # one scan of the chunk; quoting cell by cell is rare
        cells = list(map(_quoted, cells))
    return cells


CSV_CHUNK_ROWS = 50_000  # rows turned into cell text at a time


def _write_csv(
    frame: pd.DataFrame, fields: tuple[str, ...], path: Path, whole: set[str] = frozenset()
) -> int:
    """What csv.writer writes for the frame's cells, CSV_CHUNK_ROWS rows at a time.

    Cells are quoted column by column (a label once per category), so rows are plain joins: four
    times faster than csv.writer, and only one chunk's text exists at once.
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write(",".join(_quoted(name) for name in fields) + "\n")
        for first in range(0, len(frame), CSV_CHUNK_ROWS):
            chunk = frame.iloc[first : first + CSV_CHUNK_ROWS]
            columns = [_cells(chunk[name], name in whole) for name in fields]
            handle.write("\n".join(map(",".join, zip(*columns, strict=True))))
            handle.write("\n")
    return len(frame)


def write_votes_csv(votes: pd.DataFrame, path: Path) -> int:
    """One row per vote, flagged ones marked; the voter and IP columns are never read, so never written."""
    return _write_csv(votes, VOTE_FIELDS, path)


def failure_message_column(attempts: pd.DataFrame) -> pd.Series:
    """Each failed attempt's message as the pages show it (stats.short_message); empty otherwise."""
    if "error" not in attempts or attempts.empty:
        return pd.Series([None] * len(attempts), index=attempts.index, dtype=object)
    failed = ~attempts["ok"].astype(bool).to_numpy()
    errors = attempts["error"].astype(object).where(failed)
    codes, distinct = pd.factorize(errors)  # each distinct text shortened once; missing: -1
    shortened = np.array([stats.short_message(t) for t in distinct] + [None], dtype=object)
    return pd.Series(shortened[codes], index=attempts.index, dtype=object)


def write_generations_csv(attempts: pd.DataFrame, path: Path) -> int:
    """One row per attempt (warm-ups left out), oldest first: the build passes the benchmark's
    attempts only, so the file has no source column (the gateway's traffic stays out of it)."""
    frame = attempts.assign(failure_message=failure_message_column(attempts))
    return _write_csv(frame, GENERATION_FIELDS, path, whole={"status_code", "width", "height"})


def leaderboard(
    boards: dict[str, pd.DataFrame],
    extras: dict[str, dict],
    *,
    data_through: str | None,
    options: RatingOptions,
) -> dict:
    """The boards as JSON: each row is ratings.board_records' row plus the model's speed and price."""
    return {
        "schema_version": DOWNLOADS_SCHEMA_VERSION,
        "data_through": data_through,
        "rating_options": asdict(options),
        "boards": [
            {
                "task": task,
                "votes": board.attrs.get("votes"),
                "groups": board.attrs.get("groups"),
                "message": board.attrs.get("message", ""),
                "models": [{**row, **extras.get(row["model"], {})} for row in board_records(board)],
            }
            for task, board in boards.items()
        ],
    }


def quality(context: dict) -> dict:
    """quality.json: the route boards and comparisons, each judge's board, calls and agreement with
    the humans, and the checks per model and provider, as the quality page shows them."""
    return _plain(
        {
            "schema_version": DOWNLOADS_SCHEMA_VERSION,
            "route_boards": context["route_boards"],
            "route_comparisons": context["routes"],
            "judges": context["judges"],
            "checks": context["checks"],
        }
    )


_PAGE_ONLY = {"slug", "provider_page", "page", "challenge_page"}  # links, not data


def _plain(value):
    """JSON-ready: numpy numbers as Python's, NaN as None, a model reference as its name."""
    if isinstance(value, dict):
        if set(value) == {"name", "slug", "baseline"}:
            return value["name"]
        return {k: _plain(v) for k, v in value.items() if k not in _PAGE_ONLY}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else round(float(value), 4)
    return value


def manifest() -> dict:
    """manifest.json: the schema version, and each download with what it holds (CSVs: their columns)."""
    return {
        "schema_version": DOWNLOADS_SCHEMA_VERSION,
        "files": [
            {
                "name": "leaderboard.json",
                "format": "json",
                "description": "every board with intervals, ranks and vote counts, plus each "
                "model's fastest provider and price; carries schema_version itself",
            },
            {
                "name": "generations.csv",
                "format": "csv",
                "description": "every benchmark attempt (warm-ups excluded), oldest first; "
                "the gateway's traffic attempts are not included",
                "columns": list(GENERATION_FIELDS),
            },
            {
                "name": "votes.csv",
                "format": "csv",
                "description": "every human vote, flagged ones marked; no voter ids, no IP data "
                "(judges' votes are in no board but their own: see quality.json)",
                "columns": list(VOTE_FIELDS),
            },
            {
                "name": "quality.json",
                "format": "json",
                "description": "route boards and the test of two routes of one model, each "
                "judge's board, calls and agreement with the human votes, and the checks that "
                "need no model per model and provider; carries schema_version itself",
            },
        ],
    }

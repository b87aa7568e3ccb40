"""The site's downloads: leaderboard.json, generations.csv and votes.csv (no voter ids, no IPs)."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from arena.ratings import RatingOptions, board_records

VOTE_FIELDS = ("battle_id", "created_at", "task", "category", "challenge", "model_left", "model_right",
               "outcome", "flagged")
GENERATION_FIELDS = ("run_id", "started_at", "task", "category", "challenge", "model", "provider", "ok",
                     "failure_class", "status_code", "generation_ms", "ttfb_ms", "download_ms", "cost_usd",
                     "image_sha256", "width", "height")


def _iso(values: pd.Series) -> np.ndarray:
    """UTC timestamps as ISO 8601 text with a Z, vectorized (strftime on a million rows takes seconds)."""
    naive = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    text = np.datetime_as_string(naive, unit="ms")
    return np.char.add(text.astype(str), "Z")


def _text(values: pd.Series, whole: bool = False) -> np.ndarray:
    """A column as CSV cell text: labels through their categories, numbers as repr, missing as ''."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        names = np.append(np.asarray(values.cat.categories, dtype=object), "")
        return names[values.cat.codes.to_numpy()]  # code -1 (missing) picks the trailing ''
    if values.dtype.kind == "M":
        return _iso(values)
    if values.dtype == bool:
        return np.where(values.to_numpy(), "True", "False")
    if values.dtype.kind == "f":
        numbers = values.to_numpy()
        text = (np.nan_to_num(numbers).astype(np.int64).astype(str) if whole else numbers.astype(str)).astype(object)
        text[np.isnan(numbers)] = ""
        return text
    return values.astype(object).where(values.notna(), "").to_numpy()


CSV_CHUNK_ROWS = 50_000  # rows turned into cell text at a time: all rows at once would hold every cell as a str


def _write_csv(frame: pd.DataFrame, fields: tuple[str, ...], path: Path, whole: set[str] = frozenset()) -> int:
    """CSV through the csv module on prepared text columns (pandas' to_csv takes seconds per million
    rows), CSV_CHUNK_ROWS rows at a time so only one chunk's cell text exists at once."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(fields)
        for first in range(0, len(frame), CSV_CHUNK_ROWS):
            chunk = frame.iloc[first:first + CSV_CHUNK_ROWS]
            writer.writerows(zip(*[_text(chunk[name], name in whole) for name in fields], strict=True))
    return len(frame)


def write_votes_csv(votes: pd.DataFrame, path: Path) -> int:
    """One row per vote, flagged ones marked; the voter and IP columns are never read, so never written."""
    return _write_csv(votes, VOTE_FIELDS, path)


def write_generations_csv(attempts: pd.DataFrame, path: Path) -> int:
    """One row per attempt (warm-ups left out), oldest first."""
    return _write_csv(attempts, GENERATION_FIELDS, path, whole={"status_code", "width", "height"})


def leaderboard(boards: dict[str, pd.DataFrame], extras: dict[str, dict], *, data_through: str | None,
                options: RatingOptions) -> dict:
    """The boards as JSON: each row is ratings.board_records' row plus the model's speed and price."""
    return {
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


def write_json(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")

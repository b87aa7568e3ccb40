"""The site's downloads: leaderboard.json, generations.csv and votes.csv (no voter ids, no IPs)."""

from __future__ import annotations

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


def write_votes_csv(votes: pd.DataFrame, path: Path) -> int:
    """One row per vote, flagged ones marked; the voter and IP columns are never read, so never written."""
    frame = pd.DataFrame({name: votes[name] for name in VOTE_FIELDS}) if len(votes) else pd.DataFrame(columns=VOTE_FIELDS)
    if len(frame):
        frame["created_at"] = _iso(frame["created_at"])
    frame.to_csv(path, index=False, lineterminator="\n")
    return len(frame)


def write_generations_csv(attempts: pd.DataFrame, path: Path) -> int:
    """One row per attempt (warm-ups left out), oldest first."""
    frame = pd.DataFrame({name: attempts[name] for name in GENERATION_FIELDS}) if len(attempts) \
        else pd.DataFrame(columns=GENERATION_FIELDS)
    if len(frame):
        frame["started_at"] = _iso(frame["started_at"])
        frame["status_code"] = frame["status_code"].astype("Int64")
        frame["width"] = frame["width"].astype("Int64")
        frame["height"] = frame["height"].astype("Int64")
    frame.to_csv(path, index=False, lineterminator="\n")
    return len(frame)


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

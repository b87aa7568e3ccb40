"""Vote rows: the canonical vote DataFrame, reading released votes from CSV/JSONL, and validation;
and figures frames as JSON-ready records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from arena.errors import VoteDataError

CANONICAL_COLUMNS = (
    "battle_id",
    "challenge",
    "task",
    "category",
    "model_left",
    "model_right",
    "outcome",
    "voter",
    "created_at",
    "flagged",
)
OUTCOMES = ("left", "right", "tie", "both_bad")
TASKS = ("text-to-image", "edit")
DEFAULT_TASK = "text-to-image"
DEFAULT_CATEGORY = "uncategorized"
# Pair counts carry this column: how many identical votes a row stands for (see count_weights).
COUNT_COLUMN = "votes"

# Released-vote spellings of the winner column (compared lower-cased, spaces and dashes as "_").
WINNER_SPELLINGS = {
    "model_a": "left",
    "model_b": "right",
    "tie": "tie",
    "both_bad": "both_bad",
    "bothbad": "both_bad",
    "tie_(bothbad)": "both_bad",
    "tie_(both_bad)": "both_bad",
}
FILE_COLUMNS_REQUIRED = ("model_a", "model_b", "winner")
# The newest downloads schema version (arena.report.downloads.DOWNLOADS_SCHEMA_VERSION) these readers
# know. A file says its version in a `schema_version` column or key, in a JSON document
# {"schema_version": N, "votes": [...]}, or in the manifest.json beside it that lists it; a file
# that says none is read as it always was.
NEWEST_SCHEMA_VERSION = 1
TIME_MAX_S = 7_258_118_400  # 2200-01-01 in Unix seconds: later is a typo, not a vote
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f", "none", "nan"}


def read_votes_file(path: str | Path) -> pd.DataFrame:
    """Votes from a .csv or .jsonl file (released-vote or canonical columns) as the canonical frame."""
    path = Path(path)
    if not path.is_file():
        raise VoteDataError(f"{path}: no such votes file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            rows = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise VoteDataError(f"{path}: no votes (the file is empty)") from None
        except UnicodeDecodeError:
            raise VoteDataError(f"{path}: not UTF-8 text (save the votes as UTF-8)") from None
        except pd.errors.ParserError as error:  # pandas' message ends in a line break
            reason = " ".join(str(error).split())
            raise VoteDataError(f"{path}: not a readable CSV file: {reason}") from None
        row_numbers = np.arange(1, len(rows) + 1)
        where = "row"
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows, row_numbers, version = _read_json_lines(path)
        _check_schema_version(version, f"{path}: schema_version")
        where = "line"
    else:
        raise VoteDataError(f"{path}: unknown votes file type {suffix!r}; use .csv or .jsonl")
    _check_schema_version(
        _manifest_version(path), f"{path.parent / 'manifest.json'}: schema_version"
    )
    if "schema_version" in rows.columns:
        for value in pd.unique(rows["schema_version"]):
            _check_schema_version(value, f"{path}: schema_version")
        rows = rows.drop(columns="schema_version")
    if rows.empty:
        raise VoteDataError(f"{path}: no votes in the file")
    return votes_from_rows(rows, source=str(path), row_numbers=row_numbers, row_word=where)


def _check_schema_version(value, where: str) -> None:
    """A stated schema version must be one these readers know (absent: the file is read as it is)."""
    if isinstance(value, float | np.floating) and not np.isnan(value) and float(value).is_integer():
        value = int(value)  # a JSON-lines column with gaps reads as floats
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return
    text = str(value).strip()
    if not text:
        return
    if isinstance(value, bool) or not text.isdigit():
        raise VoteDataError(f"{where}: {value!r} is not a whole number")
    version = int(text)
    if version > NEWEST_SCHEMA_VERSION:
        raise VoteDataError(
            f"{where}: version {version} is newer than this arena reads (up to "
            f"{NEWEST_SCHEMA_VERSION}); upgrade arena to read it"
        )


def _manifest_version(path: Path):
    """The schema version of the manifest.json beside a downloaded file that lists it, if any."""
    manifest = path.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise VoteDataError(f"{manifest}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        return None
    names = [f.get("name") for f in data.get("files", []) if isinstance(f, dict)]
    return data.get("schema_version") if path.name in names else None


def votes_from_rows(
    rows: pd.DataFrame,
    *,
    source: str = "votes",
    row_numbers: np.ndarray | None = None,
    row_word: str = "row",
) -> pd.DataFrame:
    """Released-vote rows (`model_a, model_b, winner`, ...) or canonical rows → the canonical frame."""
    rows = rows.rename(columns=lambda name: str(name).strip().lower()).reset_index(drop=True)
    numbers = np.arange(1, len(rows) + 1) if row_numbers is None else np.asarray(row_numbers)

    def fail(index: int, problem: str) -> VoteDataError:
        return VoteDataError(f"{source}: {row_word} {numbers[index]}: {problem}")

    if {"model_left", "model_right", "outcome"} <= set(rows.columns):
        left, right = _text(rows["model_left"]), _text(rows["model_right"])
        outcome = _text(rows["outcome"]).str.lower()
        _check_values(outcome, OUTCOMES, "outcome", fail)
    else:
        missing = [name for name in FILE_COLUMNS_REQUIRED if name not in rows.columns]
        if missing:
            raise VoteDataError(
                f"{source}: missing column(s) {', '.join(missing)}; "
                f"found {', '.join(map(str, rows.columns)) or 'none'}; "
                "a votes file needs model_a, model_b, winner"
            )
        left, right = _text(rows["model_a"]), _text(rows["model_b"])
        spelled = _text(rows["winner"]).str.lower().str.replace(r"[\s\-]+", "_", regex=True)
        outcome = spelled.map(WINNER_SPELLINGS)
        if outcome.isna().any():
            index = int(np.flatnonzero(outcome.isna().to_numpy())[0])
            raise fail(
                index,
                f"unknown winner {rows['winner'].iloc[index]!r}; expected model_a, model_b, tie, "
                "both_bad or 'tie (bothbad)'",
            )
    for column, values in (("model_a", left), ("model_b", right)):
        empty = (values == "").to_numpy()
        if empty.any():
            raise fail(int(np.flatnonzero(empty)[0]), f"empty model name in {column}")
    same = (left == right).to_numpy()
    if same.any():
        index = int(np.flatnonzero(same)[0])
        raise fail(index, f"model {left.iloc[index]!r} is on both sides of the battle")
    task = _optional_text(rows, "task", DEFAULT_TASK).str.lower().replace("", DEFAULT_TASK)
    _check_values(task, TASKS, "task", fail)
    timestamps = rows["created_at"] if "created_at" in rows.columns else rows.get("tstamp")
    battle_ids = rows["battle_id"] if "battle_id" in rows.columns else rows.get("question_id")
    return pd.DataFrame(
        {
            "battle_id": _text(battle_ids)
            if battle_ids is not None
            else _row_ids(numbers, len(rows)),
            "challenge": _optional_text(rows, "challenge", ""),
            "task": task,
            "category": _optional_text(rows, "category", DEFAULT_CATEGORY).replace(
                "", DEFAULT_CATEGORY
            ),
            "model_left": left,
            "model_right": right,
            "outcome": outcome.astype(str),
            "voter": _optional_text(rows, "voter", ""),
            "created_at": _parse_times(timestamps, len(rows), fail),
            "flagged": _parse_flags(rows.get("flagged"), len(rows), fail),
        }
    ).reset_index(drop=True)


def check_vote_frame(votes: pd.DataFrame, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The canonical vote frame with defaults for absent optional columns; raises on bad rows.

    With `columns`, only those (besides the models, outcome and flagged) are kept, checked and
    defaulted: a reader of a few columns does not pay for looking through the other labels.
    Row numbers in errors are 1-based positions in the frame.
    """
    require_vote_columns(votes)
    outcomes = pd.unique(votes["outcome"])
    unknown = [value for value in outcomes if value not in OUTCOMES]
    if unknown:
        raise unknown_outcome_error(votes, unknown)
    if columns is not None:
        wanted = {"model_left", "model_right", "outcome", "flagged", *columns}
        votes = votes[[name for name in votes.columns if name in wanted]]
    defaults = {
        "battle_id": "",
        "challenge": "",
        "task": DEFAULT_TASK,
        "category": DEFAULT_CATEGORY,
        "voter": "",
        "created_at": pd.Series(pd.NaT, index=votes.index, dtype="datetime64[ns, UTC]"),
        "flagged": False,
    }
    if columns is not None:
        defaults = {name: value for name, value in defaults.items() if name in wanted}
    absent = {name: value for name, value in defaults.items() if name not in votes.columns}
    # Missing labels fall back to the same defaults, so no vote silently drops out of a grouping.
    for name in ("challenge", "task", "category"):
        if name in votes.columns and votes[name].isna().any():
            absent[name] = votes[name].fillna(defaults[name])
    checked = votes.assign(**absent) if absent else votes
    if checked["flagged"].dtype != bool:
        checked = checked.assign(flagged=checked["flagged"].fillna(False).astype(bool))
    return checked


def unflagged(votes: pd.DataFrame, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The checked frame (of `columns`, as check_vote_frame) without its flagged votes."""
    votes = check_vote_frame(votes, columns)
    flagged = votes["flagged"].to_numpy(dtype=bool)
    return votes[~flagged] if flagged.any() else votes


def label_names(*columns: pd.Series) -> np.ndarray:
    """The sorted distinct labels of some columns (categoricals: the categories they use)."""
    found = set()
    for column in columns:
        if isinstance(column.dtype, pd.CategoricalDtype):
            used = np.unique(column.cat.codes.to_numpy())
            found.update(column.cat.categories[used[used >= 0]])
        else:
            found.update(pd.unique(column))
    return np.array(sorted(str(v) for v in found), dtype=object)


def label_codes(column: pd.Series, names: np.ndarray) -> np.ndarray:
    """Positions of a label column's values in the sorted array `names` (which holds them all)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        at = np.searchsorted(names, np.asarray(column.cat.categories, dtype=object))
        return at[column.cat.codes.to_numpy()]
    return np.searchsorted(names, column.to_numpy(dtype=object))


def require_vote_columns(votes: pd.DataFrame) -> None:
    """Raise when the frame lacks a column a rating needs."""
    missing = [
        name for name in ("model_left", "model_right", "outcome") if name not in votes.columns
    ]
    if missing:
        raise VoteDataError(
            f"vote table: missing column(s) {', '.join(missing)}; found {', '.join(map(str, votes.columns)) or 'none'}"
        )


def count_weights(counts: pd.DataFrame) -> np.ndarray:
    """The votes each row of pair counts stands for (its COUNT_COLUMN) as float64 whole numbers.

    Pair counts are vote rows with a count: what `store.read_pair_counts` returns, one row per
    (task, group, model_left, model_right, outcome, flagged) the SQL counted.
    """
    if COUNT_COLUMN not in counts.columns:
        raise VoteDataError(
            f"pair counts: missing column {COUNT_COLUMN!r} (the votes each row stands for); "
            f"found {', '.join(map(str, counts.columns)) or 'none'}"
        )
    weights = pd.to_numeric(counts[COUNT_COLUMN], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(weights) | (weights < 0) | (weights != np.round(weights))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise VoteDataError(
            f"pair counts: row {row + 1}: {COUNT_COLUMN} must be a whole number of votes, "
            f"not {counts[COUNT_COLUMN].iloc[row]!r}"
        )
    return weights


def unknown_outcome_error(votes: pd.DataFrame, unknown: list) -> VoteDataError:
    """The error naming the first row whose outcome is one of `unknown`."""
    index = int(np.flatnonzero(votes["outcome"].isin(unknown).to_numpy())[0])
    return VoteDataError(
        f"vote table: row {index + 1}: unknown outcome {votes['outcome'].iloc[index]!r}; "
        f"expected one of {', '.join(OUTCOMES)}"
    )


def _read_json_lines(path: Path) -> tuple[pd.DataFrame, np.ndarray, object]:
    """One JSON object per line (blank lines skipped), one JSON array of objects, or one document
    {"schema_version": N, "votes": [objects]}; and the document's schema version (None otherwise)."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise VoteDataError(
            f"{path}: line {line}: not UTF-8 text (save the votes as UTF-8)"
        ) from None
    document = _votes_document(text)
    version = None
    if document is not None:
        version, records = document.get("schema_version"), document["votes"]
        numbers = list(range(1, len(records) + 1))
        word = "item"
    elif text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise VoteDataError(f"{path}: not valid JSON: {error}") from None
        numbers = list(range(1, len(records) + 1))
        word = "item"
    else:
        records, numbers, word = [], [], "line"
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise VoteDataError(f"{path}: line {number}: not valid JSON: {error.msg}") from None
            numbers.append(number)
    for record, number in zip(records, numbers, strict=True):
        if not isinstance(record, dict):
            raise VoteDataError(
                f"{path}: {word} {number}: expected a JSON object, got {type(record).__name__}"
            )
    return pd.DataFrame.from_records(records), np.asarray(numbers, dtype=int), version


def _votes_document(text: str) -> dict | None:
    """The file as one {"votes": [...]} document, or None (a JSON array, or JSON lines)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None  # JSON lines: each line is read on its own
    if isinstance(data, dict) and isinstance(data.get("votes"), list):
        return data
    return None


def _text(values: pd.Series) -> pd.Series:
    """Strings with surrounding spaces removed; missing values become ''."""
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _optional_text(rows: pd.DataFrame, column: str, default: str) -> pd.Series:
    if column not in rows.columns:
        return pd.Series(default, index=rows.index, dtype=str)
    return _text(rows[column])


def _row_ids(numbers: np.ndarray, count: int) -> pd.Series:
    return pd.Series([f"row-{number}" for number in numbers[:count]], dtype=str)


def _check_values(values: pd.Series, allowed: tuple[str, ...], column: str, fail) -> None:
    bad = ~values.isin(allowed).to_numpy()
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise fail(
            index, f"unknown {column} {values.iloc[index]!r}; expected one of {', '.join(allowed)}"
        )


def _parse_times(values: pd.Series | None, count: int, fail) -> pd.Series:
    """Unix seconds or ISO 8601 text → UTC timestamps; empty stays NaT."""
    if values is None:
        return pd.Series(pd.NaT, index=range(count), dtype="datetime64[ns, UTC]")
    text = _text(values).reset_index(drop=True)
    numeric = pd.to_numeric(text, errors="coerce")
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    is_number = numeric.notna()
    # Outside 1970..2200 (1e20 s, nan, inf) is no vote's time; pandas would overflow on it.
    out_of_range = (is_number & ~numeric.between(0, TIME_MAX_S)).to_numpy()
    if out_of_range.any():
        index = int(np.flatnonzero(out_of_range)[0])
        raise fail(
            index,
            f"time {text.iloc[index]!r} is outside 1970..2200 (Unix seconds or ISO 8601)",
        )
    parsed[is_number] = pd.to_datetime(numeric[is_number], unit="s", utc=True)
    rest = ~is_number & (text != "")
    if rest.any():
        parsed[rest] = pd.to_datetime(text[rest], utc=True, errors="coerce", format="ISO8601")
    bad = (rest & parsed.isna()).to_numpy()
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise fail(index, f"unreadable time {text.iloc[index]!r}; use Unix seconds or ISO 8601")
    return parsed


def _parse_flags(values: pd.Series | None, count: int, fail) -> pd.Series:
    if values is None:
        return pd.Series(False, index=range(count), dtype=bool)
    text = _text(values).str.lower().reset_index(drop=True)
    flags = text.isin(_TRUE)
    bad = (~flags & ~text.isin(_FALSE)).to_numpy()
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise fail(index, f"flagged must be true or false, not {text.iloc[index]!r}")
    return flags.astype(bool)


def frame_records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows of a figures frame (agreement, position bias, route comparisons): plain numbers, shares to 4 places, NaN as None."""
    records = []
    for row in frame.to_dict("records"):
        record = {}
        for name, value in row.items():
            if isinstance(value, bool | np.bool_):
                value = bool(value)
            elif isinstance(value, float | np.floating):
                value = None if math.isnan(value) else round(float(value), 4)
            elif isinstance(value, np.integer):
                value = int(value)
            record[name] = value
        records.append(record)
    return records

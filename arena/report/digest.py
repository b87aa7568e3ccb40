"""The site's numbers, computed once by stats, ratings and matchups and arranged for the pages.

Two halves that share nothing, so a large build can run them in two processes: the vote half
(boards, matchups, rating history, position bias) and the attempt half (provider tables over the
window, per-night figures, the newest image per model and challenge). Neither does statistics of
its own; they pick, group and sort what arena.stats and arena.ratings return.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from arena import stats
from arena.ratings import ELO_PER_LOGIT, RatingOptions, compute_boards
from arena.ratings.frames import TASKS
from arena.ratings.matchups import best_for, position_bias

# Boards per category and per challenge only order models within a slice; their intervals use
# the closed form (instant, and equal to the bootstrap on large boards), the main boards bootstrap.
SLICE_OPTIONS = RatingOptions(intervals="closed_form")
MATCHUP_ROWS = 10
HISTORY_MODELS = 8
HISTORY_POINTS = 200
ELO_K, ELO_INITIAL = 4.0, 1000.0  # matchups.online_elo's defaults


@dataclass
class VoteDigest:
    """Everything the pages show that comes from votes."""

    total: int = 0
    flagged: int = 0
    per_task: dict[str, int] = field(default_factory=dict)
    boards: dict[str, pd.DataFrame] = field(
        default_factory=dict
    )  # task -> board (published options)
    best_for: pd.DataFrame | None = None  # per task, category and model: rank, win rate
    challenge_records: dict[str, dict[str, dict]] = field(
        default_factory=dict
    )  # challenge -> model -> W/L/T
    opponents: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> record per opponent
    matchups: dict[str, pd.DataFrame] = field(
        default_factory=dict
    )  # model -> per opponent and challenge
    history: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    bias: dict = field(default_factory=dict)
    newest: datetime | None = None


RESULTS = ("wins", "losses", "ties", "both_bad")
# Column of RESULTS an outcome adds to, for the left model and for the right model.
_FOR_LEFT = {"left": 0, "right": 1, "tie": 2, "both_bad": 3}
_FOR_RIGHT = {"left": 1, "right": 0, "tie": 2, "both_bad": 3}


def _codes(column: pd.Series, names: np.ndarray) -> np.ndarray:
    """Positions of a label column's values in the sorted array `names` (which holds them all)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        at = np.searchsorted(names, np.asarray(column.cat.categories, dtype=object))
        return at[column.cat.codes.to_numpy()]
    return np.searchsorted(names, column.to_numpy(dtype=object))


def _labels(*columns: pd.Series) -> np.ndarray:
    """The sorted distinct labels of some columns (categoricals: their used categories)."""
    found = set()
    for column in columns:
        if isinstance(column.dtype, pd.CategoricalDtype):
            used = np.unique(column.cat.codes.to_numpy())
            found.update(column.cat.categories[used[used >= 0]])
        else:
            found.update(pd.unique(column))
    return np.array(sorted(str(v) for v in found), dtype=object)


def _records(rated: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Every model's record per opponent and challenge, counted once from the votes.

    What matchups.head_to_head(votes, model, by="challenge") gives for each model, for all models
    in one pass: votes are counted per (left, right, challenge, outcome) cell, and each cell adds
    to the left model's record against the right one and the other way round. Returns the model
    names, the challenge names, and a frame of (model, opponent, challenge) codes with RESULTS.
    """
    models = _labels(rated["model_left"], rated["model_right"])
    challenges = _labels(rated["challenge"])
    outcomes = np.array(sorted(_FOR_LEFT), dtype=object)
    m, c, o = len(models), len(challenges), len(outcomes)
    key = _codes(rated["model_left"], models) * (m * c * o)
    key += _codes(rated["model_right"], models) * (c * o)
    key += _codes(rated["challenge"], challenges) * o
    key += _codes(rated["outcome"], outcomes)
    if m * m * c * o <= 1 << 22:  # a dense count per cell while that stays small
        votes = np.bincount(key, minlength=m * m * c * o)
        cells = np.flatnonzero(votes)
        votes = votes[cells]
    else:
        cells, votes = np.unique(key, return_counts=True)
    del key
    rest, outcome = np.divmod(cells, o)
    rest, challenge = np.divmod(rest, c)
    left, right = np.divmod(rest, m)
    for_left = np.array([_FOR_LEFT[x] for x in outcomes])[outcome]
    for_right = np.array([_FOR_RIGHT[x] for x in outcomes])[outcome]
    model, opponent = np.concatenate([left, right]), np.concatenate([right, left])
    matchup = (model * m + opponent) * c + np.concatenate([challenge, challenge])
    result = np.concatenate([for_left, for_right])
    keys, at = np.unique(matchup, return_inverse=True)
    cell = at * len(RESULTS) + result
    counts = np.bincount(cell, np.concatenate([votes, votes]), len(keys) * len(RESULTS))
    counts = counts.round().astype(np.int64).reshape(len(keys), len(RESULTS))
    rest, challenge = np.divmod(keys, c)
    model, opponent = np.divmod(rest, m)
    frame = pd.DataFrame(
        {
            "model": model,
            "opponent": opponent,
            "challenge": challenge,
            **{name: counts[:, k] for k, name in enumerate(RESULTS)},
        }
    )
    return models, challenges, frame


def _with_shares(table: pd.DataFrame) -> pd.DataFrame:
    """votes and the percentages as head_to_head defines them (tie_pct includes both_bad)."""
    table.insert(table.columns.get_loc("wins"), "votes", table[list(RESULTS)].sum(axis=1))
    table["win_pct"] = 100 * table["wins"] / table["votes"]
    table["loss_pct"] = 100 * table["losses"] / table["votes"]
    table["tie_pct"] = 100 * (table["ties"] + table["both_bad"]) / table["votes"]
    return table


def _per_model(
    table: pd.DataFrame, keys: list[str], names: dict[str, np.ndarray], head: int | None
):
    """(model name, its rows) with labels for codes, most votes first then by the keys' names."""
    table = _with_shares(table)
    # Codes follow sorted names, so sorting codes sorts names.
    table = table.sort_values(
        ["model", "votes", *keys], ascending=[True, False] + [True] * len(keys), ignore_index=True
    )
    for key in keys:
        table[key] = names[key][table[key].to_numpy()]
    bounds = np.flatnonzero(np.diff(table["model"].to_numpy())) + 1
    for rows in np.split(np.arange(len(table)), bounds):
        mine = table.iloc[rows if head is None else rows[:head]]
        yield (
            str(names["model"][mine["model"].iat[0]]),
            mine.drop(columns="model").reset_index(drop=True),
        )


def _matchups(digest: VoteDigest, rated: pd.DataFrame) -> None:
    models, challenges, records = _records(rated)
    names = {"model": models, "opponent": models, "challenge": challenges}
    for model, table in _per_model(records.copy(), ["opponent", "challenge"], names, MATCHUP_ROWS):
        digest.matchups[model] = table
    per_opponent = (
        records.groupby(["model", "opponent"], sort=False)[list(RESULTS)].sum().reset_index()
    )
    for model, table in _per_model(per_opponent, ["opponent"], names, MATCHUP_ROWS):
        digest.opponents[model] = table
    per_challenge = (
        records.groupby(["model", "challenge"], sort=False)[list(RESULTS)].sum().reset_index()
    )
    for model, table in _per_model(per_challenge, ["challenge"], names, None):
        for row in table.to_dict(orient="records"):
            digest.challenge_records.setdefault(str(row["challenge"]), {})[model] = row


def _rating_history(
    votes: pd.DataFrame, board: pd.DataFrame
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Online Elo after each vote for the top models of the board, thinned to HISTORY_POINTS each.

    matchups.online_elo's ratings (same K, start, order and tie handling), but computed on integer
    codes and kept only for the HISTORY_MODELS models the chart draws: its full history would be
    two rows per vote. Every vote still moves the ratings, so the series are online_elo's exactly.
    """
    top = [str(m) for m in board["model"].head(HISTORY_MODELS)]
    if votes.empty or not top:
        return {}
    order = np.argsort(
        votes["created_at"].to_numpy(dtype="datetime64[ns]"), kind="stable"
    )  # NaT last
    models = _labels(votes["model_left"], votes["model_right"])
    left = _codes(votes["model_left"], models)[order]
    right = _codes(votes["model_right"], models)[order]
    outcomes = np.array(sorted(_FOR_LEFT), dtype=object)
    # The left side's score: 1 for "left", 0 for "right", a half otherwise (three shared floats).
    scores = np.array(
        [1.0 if x == "left" else 0.0 if x == "right" else 0.5 for x in outcomes], dtype=object
    )
    score = scores[_codes(votes["outcome"], outcomes)[order]]
    after_left, after_right = _elo(left.tolist(), right.tolist(), score.tolist(), len(models))
    times = (
        votes["created_at"]
        .dt.tz_convert("UTC")
        .dt.tz_localize(None)
        .to_numpy(dtype="datetime64[ms]")[order]
    )
    series = {}
    for model in top:
        code = int(np.searchsorted(models, model))
        if code >= len(models) or models[code] != model:
            continue
        rows = np.flatnonzero((left == code) | (right == code))
        rating = np.where(left[rows] == code, after_left[rows], after_right[rows])
        keep = np.unique(
            np.linspace(0, len(rows) - 1, min(HISTORY_POINTS, len(rows))).round().astype(int)
        )
        series[model] = (times[rows[keep]], rating[keep])
    return series


def _elo(
    left: list[int],
    right: list[int],
    score: list[float],
    m: int,
    k: float = ELO_K,
    initial: float = ELO_INITIAL,
) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' ratings after each vote (the update of matchups.online_elo, on model codes)."""
    ratings = [initial] * m
    after_left, after_right = [0.0] * len(left), [0.0] * len(left)
    exp = math.exp
    for n, (a, b, s) in enumerate(zip(left, right, score, strict=True)):
        rating_a, rating_b = ratings[a], ratings[b]
        change = k * (s - 1.0 / (1.0 + exp((rating_b - rating_a) / ELO_PER_LOGIT)))
        ratings[a] = after_left[n] = rating_a + change
        ratings[b] = after_right[n] = rating_b - change
    return np.array(after_left), np.array(after_right)


def digest_votes(votes: pd.DataFrame) -> VoteDigest:
    """Boards, matchups and history from the canonical vote frame (flagged votes kept, marked)."""
    digest = VoteDigest(total=len(votes), flagged=int(votes["flagged"].sum()) if len(votes) else 0)
    rated = votes[~votes["flagged"].to_numpy(dtype=bool)] if len(votes) else votes
    if rated.empty:
        return digest
    digest.newest = pd.Timestamp(votes["created_at"].max()).to_pydatetime()
    # Slice labels as plain text: grouping on them then never meets an unused category.
    rated = rated.assign(**{c: rated[c].astype(str) for c in ("task", "category", "challenge")})
    digest.per_task = {str(k): int(v) for k, v in rated["task"].value_counts().sort_index().items()}
    digest.boards = {task: board for (task, _), board in compute_boards(rated).items()}
    digest.best_for = best_for(rated, SLICE_OPTIONS)
    _matchups(digest, rated)
    task_column = rated["task"].to_numpy()
    for task, board in digest.boards.items():
        digest.history[task] = _rating_history(rated[task_column == task], board)
    digest.bias = position_bias(rated)
    return digest


@dataclass
class AttemptDigest:
    """Everything the pages show that comes from attempts."""

    attempts: int = 0
    window_days: int = 30
    window_start: datetime | None = None
    window_end: datetime | None = None
    provider_rows: pd.DataFrame = field(
        default_factory=lambda: stats.provider_table(pd.DataFrame())
    )
    provider_totals: pd.DataFrame = field(
        default_factory=lambda: stats.provider_table(pd.DataFrame())
    )
    nights: pd.DataFrame = field(default_factory=lambda: stats.provider_table(pd.DataFrame()))
    latencies: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # provider -> successful generation_ms
    newest_images: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # model, challenge, provider, sha


def digest_attempts(attempts: pd.DataFrame, window_days: int = 30) -> AttemptDigest:
    """Provider tables over the window that ends at the newest attempt (so a rebuild gives the same page)."""
    digest = AttemptDigest(attempts=len(attempts), window_days=window_days)
    if attempts.empty:
        return digest
    # Only the columns the tables read, labels as text (a copy of these few columns, not of the frame).
    table_columns = ["ok", "generation_ms", "ttfb_ms", "download_ms", "cost_usd"]
    frame = attempts[[c for c in table_columns if c in attempts.columns]].assign(
        model=attempts["model"].astype(str),
        provider=attempts["provider"].astype(str),
        failure_class=attempts["failure_class"]
        .astype(object)
        .where(attempts["failure_class"].notna(), None),
    )
    started = attempts["started_at"]
    end = started.max()
    start = end - timedelta(days=window_days)
    digest.window_start, digest.window_end = start.to_pydatetime(), end.to_pydatetime()
    inside = (started >= start).to_numpy()
    window = frame if inside.all() else frame[inside]
    digest.provider_rows = stats.provider_table(window)
    # The same definitions per provider over all its models, and per provider per night: the
    # grouping key stats groups by is relabelled, so every figure still comes from stats.
    digest.provider_totals = stats.provider_table(window.assign(model="all"))
    days = started[inside].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    digest.nights = stats.provider_table(window.assign(model=np.datetime_as_string(days)))
    ok = window["ok"].to_numpy(dtype=bool)
    generation, provider = (
        window["generation_ms"].to_numpy(dtype=float),
        window["provider"].to_numpy(),
    )
    digest.latencies = {
        str(p): generation[ok & (provider == p) & ~np.isnan(generation)]
        for p in sorted(set(provider[ok]))
    }
    done = frame["ok"].to_numpy(dtype=bool) & attempts["image_sha256"].notna().to_numpy()
    newest = pd.DataFrame(
        {
            "model": frame["model"][done],
            "challenge": attempts["challenge"][done].astype(str),
            "provider": frame["provider"][done],
            "image_sha256": attempts["image_sha256"][done],
            "started_at": started[done],
        }
    )
    newest = newest.sort_values(["started_at", "provider"]).drop_duplicates(
        ["model", "challenge"], keep="last"
    )
    digest.newest_images = newest.sort_values(["model", "challenge"], ignore_index=True)
    return digest


@dataclass(frozen=True)
class ModelInfo:
    """What the config (or the newest run that knew the model) says about a model."""

    name: str
    baseline: bool = False
    description: str = ""
    tasks: tuple[str, ...] = ()
    prices: dict[str, float | None] = field(
        default_factory=dict
    )  # provider -> starting price per image

    @property
    def price_from_usd(self) -> float | None:
        known = [p for p in self.prices.values() if p is not None]
        return min(known) if known else None


def model_infos(settings, run_snapshots: list[str]) -> dict[str, ModelInfo]:
    """Models from run snapshots (oldest first) overridden by the current settings."""
    infos: dict[str, ModelInfo] = {}
    for text in run_snapshots:
        try:
            snapshot = json.loads(text or "{}")
        except json.JSONDecodeError:
            continue
        for name, model in (snapshot.get("models") or {}).items():
            prices = {}
            for route in model.get("routes", []):
                candidates = [
                    route.get("price_usd"),
                    *(route.get("price_usd_by_tier") or {}).values(),
                ]
                known = [p for p in candidates if p is not None]
                prices[route.get("provider", "")] = min(known) if known else None
            infos[name] = ModelInfo(
                name, bool(model.get("baseline")), "", tuple(model.get("tasks", ())), prices
            )
    if settings is not None:
        for name, model in settings.models.items():
            infos[name] = ModelInfo(
                name,
                model.baseline,
                model.description,
                tuple(model.tasks),
                {r.provider: r.starting_price_usd for r in model.routes},
            )
    return infos


def ordered_tasks(tasks) -> list[str]:
    """Text-to-image first, then edit, then anything else by name."""
    return sorted(set(tasks), key=lambda t: (TASKS.index(t) if t in TASKS else len(TASKS), t))

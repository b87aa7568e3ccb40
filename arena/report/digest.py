"""The site's numbers, computed once by stats, ratings and matchups and arranged for the pages.

Two halves that share nothing, so a large build can run them in two processes: the vote half
(boards, matchups, rating history, position bias) and the attempt half (provider tables over the
window, per-night figures, the newest image per model and challenge). Neither does statistics of
its own; they pick, group and sort what arena.stats and arena.ratings return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from arena import stats
from arena.matchups import best_for, head_to_head, online_elo, position_bias
from arena.ratings import RatingOptions, compute_boards
from arena.votes import TASKS

# Boards per category and per challenge only order models within a slice; their intervals use
# the closed form (instant, and equal to the bootstrap on large boards), the main boards bootstrap.
SLICE_OPTIONS = RatingOptions(intervals="closed_form")
MATCHUP_ROWS = 10
HISTORY_MODELS = 8
HISTORY_POINTS = 200


@dataclass
class VoteDigest:
    """Everything the pages show that comes from votes."""

    total: int = 0
    flagged: int = 0
    per_task: dict[str, int] = field(default_factory=dict)
    boards: dict[str, pd.DataFrame] = field(default_factory=dict)  # task -> board (published options)
    best_for: pd.DataFrame | None = None  # per task, category and model: rank, win rate
    challenge_records: dict[str, dict[str, dict]] = field(default_factory=dict)  # challenge -> model -> W/L/T
    opponents: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> record per opponent
    matchups: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> per opponent and challenge
    history: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    bias: dict = field(default_factory=dict)
    newest: datetime | None = None


def _model_slices(votes: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row positions of each model's votes (either side), found once instead of once per model."""
    left = votes["model_left"].astype(str).to_numpy()
    right = votes["model_right"].astype(str).to_numpy()
    names = np.concatenate([left, right])
    rows = np.concatenate([np.arange(len(votes))] * 2)
    codes, models = pd.factorize(names, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(models) + 1))
    return {str(m): np.sort(rows[order[bounds[k]:bounds[k + 1]]]) for k, m in enumerate(models)}


def _summed(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """head_to_head's per opponent and challenge rows added up per `key` (percentages as it defines them)."""
    counts = ["votes", "wins", "losses", "ties", "both_bad"]
    if table.empty:
        return pd.DataFrame(columns=[key, *counts, "win_pct", "loss_pct", "tie_pct"])
    totals = table.groupby(key, sort=True)[counts].sum().reset_index()
    totals["win_pct"] = 100 * totals["wins"] / totals["votes"]
    totals["loss_pct"] = 100 * totals["losses"] / totals["votes"]
    totals["tie_pct"] = 100 * (totals["ties"] + totals["both_bad"]) / totals["votes"]
    return totals.sort_values(["votes", key], ascending=[False, True], ignore_index=True)


def _per_opponent(table: pd.DataFrame) -> pd.DataFrame:
    return _summed(table, "opponent")


def _rating_history(votes: pd.DataFrame, board: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Online Elo after each vote for the top models of the board, thinned to HISTORY_POINTS each."""
    history = online_elo(votes)
    top = list(board["model"].head(HISTORY_MODELS))
    series = {}
    for model in top:
        mine = history[history["model"] == model]
        if mine.empty:
            continue
        keep = np.unique(np.linspace(0, len(mine) - 1, min(HISTORY_POINTS, len(mine))).round().astype(int))
        times = mine["created_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
        series[model] = (times[keep], mine["rating"].to_numpy()[keep])
    return series


def digest_votes(votes: pd.DataFrame) -> VoteDigest:
    """Boards, matchups and history from the canonical vote frame (flagged votes kept, marked)."""
    digest = VoteDigest(total=len(votes), flagged=int(votes["flagged"].sum()) if len(votes) else 0)
    rated = votes[~votes["flagged"].to_numpy(dtype=bool)] if len(votes) else votes
    if rated.empty:
        return digest
    digest.newest = pd.Timestamp(votes["created_at"].max()).to_pydatetime()
    digest.per_task = {str(k): int(v) for k, v in rated["task"].astype(str).value_counts().sort_index().items()}
    digest.boards = {task: board for (task, _), board in compute_boards(rated).items()}
    digest.best_for = best_for(rated, SLICE_OPTIONS)
    # Each model's matchups from its own rows only: one pass over a million votes, not one per model.
    narrow = rated[["model_left", "model_right", "outcome", "challenge", "flagged"]]
    for model, rows in _model_slices(narrow).items():
        table = head_to_head(narrow.iloc[rows], model, by="challenge")
        digest.matchups[model] = table.head(MATCHUP_ROWS)
        digest.opponents[model] = _per_opponent(table).head(MATCHUP_ROWS)
        for row in _summed(table, "challenge").to_dict(orient="records"):
            digest.challenge_records.setdefault(str(row["challenge"]), {})[model] = row
    task_column = rated["task"].astype(str)
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
    provider_rows: pd.DataFrame = field(default_factory=lambda: stats.provider_table(pd.DataFrame()))
    provider_totals: pd.DataFrame = field(default_factory=lambda: stats.provider_table(pd.DataFrame()))
    nights: pd.DataFrame = field(default_factory=lambda: stats.provider_table(pd.DataFrame()))
    latencies: dict[str, np.ndarray] = field(default_factory=dict)  # provider -> successful generation_ms
    newest_images: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, challenge, provider, sha


def digest_attempts(attempts: pd.DataFrame, window_days: int = 30) -> AttemptDigest:
    """Provider tables over the window that ends at the newest attempt (so a rebuild gives the same page)."""
    digest = AttemptDigest(attempts=len(attempts), window_days=window_days)
    if attempts.empty:
        return digest
    frame = attempts.assign(model=attempts["model"].astype(str), provider=attempts["provider"].astype(str),
                            challenge=attempts["challenge"].astype(str),
                            failure_class=attempts["failure_class"].astype(object).where(attempts["failure_class"].notna(), None))
    end = frame["started_at"].max()
    start = end - timedelta(days=window_days)
    digest.window_start, digest.window_end = start.to_pydatetime(), end.to_pydatetime()
    window = frame[frame["started_at"] >= start]
    digest.provider_rows = stats.provider_table(window)
    # The same definitions per provider over all its models, and per provider per night: the
    # grouping key stats groups by is relabelled, so every figure still comes from stats.
    digest.provider_totals = stats.provider_table(window.assign(model="all"))
    days = window["started_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    digest.nights = stats.provider_table(window.assign(model=np.datetime_as_string(days)))
    ok = window[window["ok"].to_numpy(dtype=bool)]
    digest.latencies = {str(p): g["generation_ms"].dropna().to_numpy() for p, g in ok.groupby("provider", sort=True)}
    done = frame[frame["ok"].to_numpy(dtype=bool) & frame["image_sha256"].notna()]
    newest = done.sort_values(["started_at", "provider"]).drop_duplicates(["model", "challenge"], keep="last")
    digest.newest_images = newest[["model", "challenge", "provider", "image_sha256", "started_at"]].sort_values(
        ["model", "challenge"], ignore_index=True)
    return digest


@dataclass(frozen=True)
class ModelInfo:
    """What the config (or the newest run that knew the model) says about a model."""

    name: str
    baseline: bool = False
    description: str = ""
    tasks: tuple[str, ...] = ()
    prices: dict[str, float | None] = field(default_factory=dict)  # provider -> starting price per image

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
                candidates = [route.get("price_usd"), *(route.get("price_usd_by_tier") or {}).values()]
                known = [p for p in candidates if p is not None]
                prices[route.get("provider", "")] = min(known) if known else None
            infos[name] = ModelInfo(name, bool(model.get("baseline")), "", tuple(model.get("tasks", ())), prices)
    if settings is not None:
        for name, model in settings.models.items():
            infos[name] = ModelInfo(name, model.baseline, model.description, tuple(model.tasks),
                                    {r.provider: r.starting_price_usd for r in model.routes})
    return infos


def ordered_tasks(tasks) -> list[str]:
    """Text-to-image first, then edit, then anything else by name."""
    return sorted(set(tasks), key=lambda t: (TASKS.index(t) if t in TASKS else len(TASKS), t))

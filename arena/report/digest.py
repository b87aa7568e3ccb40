"""The site's numbers, computed once by stats, ratings and matchups and arranged for the pages.

Two halves that share nothing, so a large build can run them in two processes: the vote half
(boards, matchups, rating history, position bias) and the attempt half (provider tables over the
window, per-night figures, the newest image per model and challenge), which reads the benchmark's
attempts only. The gateway's attempts (source traffic) have a digest of their own, shown beside
the benchmark's figures and never mixed into them. None does statistics of its own; they pick,
group and sort what arena.stats and arena.ratings return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from arena import stats
from arena.ratings import (
    RatingOptions,
    best_for,
    compute_boards,
    compute_boards_from_counts,
    count_records,
    elo_series,
    position_bias,
)
from arena.ratings.frames import TASKS
from arena.report.quality import routes_from_votes

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
    route_boards: dict[str, pd.DataFrame] = field(default_factory=dict)  # task -> routes' board
    routes: pd.DataFrame | None = None  # two routes of one model compared (ratings.compare_routes)
    judges: list = field(default_factory=list)  # quality.JudgeDigest per judge with votes


def _matchups(digest: VoteDigest, rated: pd.DataFrame) -> None:
    """Each model's most-played matchups, its record per opponent, and per challenge."""
    records = count_records(rated, by="challenge")
    for model, table in records.per_model(["opponent", "challenge"], MATCHUP_ROWS):
        digest.matchups[model] = table
    for model, table in records.per_model(["opponent"], MATCHUP_ROWS):
        digest.opponents[model] = table
    for model, table in records.per_model(["challenge"]):
        for row in table.to_dict(orient="records"):
            digest.challenge_records.setdefault(str(row["challenge"]), {})[model] = row


def _rating_history(
    votes: pd.DataFrame, board: pd.DataFrame
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The online Elo series of the board's top models, thinned to HISTORY_POINTS evenly spread."""
    top = [str(m) for m in board["model"].head(HISTORY_MODELS)]
    series = {}
    for model, rows in elo_series(votes, top).items():
        keep = np.unique(
            np.linspace(0, len(rows) - 1, min(HISTORY_POINTS, len(rows))).round().astype(int)
        )
        times = rows["created_at"].dt.tz_convert("UTC").dt.tz_localize(None)
        series[model] = (
            times.to_numpy(dtype="datetime64[ms]")[keep],
            rows["rating"].to_numpy()[keep],
        )
    return series


def digest_votes(votes: pd.DataFrame, counts: pd.DataFrame | None = None) -> VoteDigest:
    """Boards, matchups and history from the canonical vote frame (flagged votes kept, marked).

    With `counts`, the same votes counted per pair by the store (store.read_pair_counts), the main
    boards are fitted on those, as `arena ratings` and the voting server fit theirs; the same
    Tally either way. Matchups, history and the per-category boards need the rows.
    """
    digest = VoteDigest(total=len(votes), flagged=int(votes["flagged"].sum()) if len(votes) else 0)
    rated = votes[~votes["flagged"].to_numpy(dtype=bool)] if len(votes) else votes
    if rated.empty:
        return digest
    digest.newest = pd.Timestamp(votes["created_at"].max()).to_pydatetime()
    # Slice labels as plain text: grouping on them then never meets an unused category.
    rated = rated.assign(**{c: rated[c].astype(str) for c in ("task", "category", "challenge")})
    digest.per_task = {str(k): int(v) for k, v in rated["task"].value_counts().sort_index().items()}
    boards = compute_boards(rated) if counts is None else compute_boards_from_counts(counts)
    digest.boards = {task: board for (task, _), board in boards.items()}
    digest.best_for = best_for(rated, SLICE_OPTIONS)
    _matchups(digest, rated)
    task_column = rated["task"].to_numpy()
    for task, board in digest.boards.items():
        digest.history[task] = _rating_history(rated[task_column == task], board)
    digest.bias = position_bias(rated)
    digest.route_boards, digest.routes = routes_from_votes(rated)
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
    # provider, failure_class, message, count: the commonest failure messages in the window
    messages: pd.DataFrame = field(
        default_factory=lambda: stats.failure_messages(pd.DataFrame(), by=("provider",))
    )


def digest_attempts(attempts: pd.DataFrame, window_days: int = 30) -> AttemptDigest:
    """Provider tables over the window that ends at the newest attempt (so a rebuild gives the same page)."""
    digest = AttemptDigest(attempts=len(attempts), window_days=window_days)
    if attempts.empty:
        return digest
    # Only the columns the tables read, labels as text (a copy of these few columns, not of the frame).
    table_columns = ["ok", "generation_ms", "ttfb_ms", "download_ms", "cost_usd", "error"]
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
    digest.messages = stats.failure_messages(window, by=("provider",))
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


@dataclass
class TrafficDigest:
    """The gateway's attempts (source traffic), kept apart from the benchmark's: provider tables per
    model and per provider over the gateway's window, and how many real API requests each covers."""

    window_days: float = 30.0
    window_start: datetime | None = None
    window_end: datetime | None = None
    provider_rows: pd.DataFrame = field(
        default_factory=lambda: stats.provider_table(pd.DataFrame())
    )
    provider_totals: pd.DataFrame = field(
        default_factory=lambda: stats.provider_table(pd.DataFrame())
    )
    requests_by_model: dict[str, int] = field(default_factory=dict)
    requests_by_provider: dict[str, int] = field(default_factory=dict)


def digest_traffic(traffic: pd.DataFrame, window_days: float = 30.0) -> TrafficDigest:
    """Traffic figures over the window that ends at the newest traffic attempt (a rebuild of the
    same store gives the same page), by the benchmark's definitions (arena.stats)."""
    digest = TrafficDigest(window_days=window_days)
    if traffic.empty:
        return digest
    started = traffic["started_at"]
    end = started.max()
    start = end - timedelta(days=window_days)
    digest.window_start, digest.window_end = start.to_pydatetime(), end.to_pydatetime()
    inside = (started >= start).to_numpy()
    columns = ["ok", "generation_ms", "ttfb_ms", "download_ms", "cost_usd"]
    window = traffic[inside][columns].assign(
        model=traffic["model"][inside].astype(str),
        provider=traffic["provider"][inside].astype(str),
        failure_class=traffic["failure_class"][inside]
        .astype(object)
        .where(traffic["failure_class"][inside].notna(), None),
        gateway_request_id=traffic["gateway_request_id"][inside].astype(object),
    )
    digest.provider_rows = stats.provider_table(window)
    digest.provider_totals = stats.provider_table(window.assign(model="all"))
    for key, target in (
        ("model", digest.requests_by_model),
        ("provider", digest.requests_by_provider),
    ):
        for name, rows in window.groupby(key, sort=True):
            target[str(name)] = stats.request_count(rows)
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

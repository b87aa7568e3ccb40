"""Leaderboards from votes: Bradley–Terry ratings on the Elo scale, intervals, ranks, text and JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from arena.errors import VoteDataError
from arena.ratings import bradley_terry as bt
from arena.ratings.frames import (
    OUTCOMES,
    TASKS,
    check_vote_frame,
    count_weights,
    require_vote_columns,
    unknown_outcome_error,
)
from arena.ratings.routes import route_votes

ELO_PER_LOGIT = 400.0 / math.log(10.0)
BOARD_COLUMNS = (
    "model",
    "rating",
    "lower",
    "upper",
    "rank",
    "votes",
    "wins",
    "losses",
    "ties",
    "both_bad",
    "win_rate",
    "preliminary",
    "group",
    "note",
)
BY_CHOICES = (None, "category", "challenge", "route")


@dataclass(frozen=True)
class RatingOptions:
    """How votes become ratings; the defaults are what the published boards use."""

    ties: str = "half"  # "half": a tie is half a win each; "drop"; "davidson": Davidson's tie model
    both_bad: str = "tie"  # "tie": count as a tie; "drop": leave out of the fit
    anchor: str | None = None  # a model pinned at anchor_rating; None centres the mean there
    anchor_rating: float = 1000.0
    bootstrap_rounds: int = 1000
    seed: int = 0
    intervals: str = "bootstrap"  # or "closed_form" (sandwich)
    min_votes: int = 30  # fewer votes than this marks a model preliminary
    confidence: float = 0.95

    def __post_init__(self) -> None:
        choices = {
            "ties": ("half", "drop", "davidson"),
            "both_bad": ("tie", "drop"),
            "intervals": ("bootstrap", "closed_form"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"RatingOptions.{name} must be one of {allowed}, not {getattr(self, name)!r}"
                )
        if self.bootstrap_rounds < 1:
            raise ValueError("RatingOptions.bootstrap_rounds must be at least 1")
        if not 0 < self.confidence < 1:
            raise ValueError("RatingOptions.confidence must be between 0 and 1")


@dataclass(frozen=True)
class Tally:
    """Non-flagged votes aggregated per unordered pair of models (i < j, indices into `models`)."""

    models: np.ndarray  # (m,) sorted model names
    i: np.ndarray
    j: np.ndarray
    outcomes: np.ndarray  # (K, 4): i won, j won, tie, both_bad
    flagged: int  # votes excluded as flagged

    def pair_counts(self, options: RatingOptions) -> bt.PairCounts:
        """The counts the fit sees under the tie options."""
        ties = self.outcomes[:, 2] + (self.outcomes[:, 3] if options.both_bad == "tie" else 0)
        if options.ties == "drop":
            ties = np.zeros_like(ties)
        return bt.PairCounts(
            len(self.models), self.i, self.j, self.outcomes[:, 0], self.outcomes[:, 1], ties
        )

    def model_totals(self) -> np.ndarray:
        """(m, 4) wins, losses, ties, both_bad per model."""
        m, o = len(self.models), self.outcomes
        totals = np.zeros((m, 4))
        for column, (as_i, as_j) in enumerate(
            [(o[:, 0], o[:, 1]), (o[:, 1], o[:, 0]), (o[:, 2],) * 2, (o[:, 3],) * 2]
        ):
            totals[:, column] = np.bincount(self.i, as_i, m) + np.bincount(self.j, as_j, m)
        return totals


def tally_votes(votes: pd.DataFrame) -> Tally:
    """Aggregate a canonical vote frame; left/right order does not matter to the rating model."""
    return _tally(votes, None)


def tally_counts(counts: pd.DataFrame) -> Tally:
    """Aggregate pair counts: vote rows whose `votes` column says how many identical votes each
    row stands for, as `store.read_pair_counts` returns them. The same votes give the same Tally
    as tally_votes, to the last bit (the counts are whole numbers, summed exactly)."""
    return _tally(counts, count_weights(counts))


def _tally(votes: pd.DataFrame, weights: np.ndarray | None) -> Tally:
    """Votes (each row one vote, or `weights` votes) aggregated per unordered pair of models.

    Each column is factorized once; the rows are then counted per (left, right, outcome) label
    triple with one bincount, and only those few distinct triples are mapped onto sorted models
    and folded onto unordered pairs.
    """
    require_vote_columns(votes)
    outcome_code, outcome_names = _factorize_labels(votes["outcome"])
    unknown = [name for name in outcome_names if name not in OUTCOMES]
    if unknown:
        raise unknown_outcome_error(votes, unknown)
    if (outcome_code < 0).any():
        row = int(np.flatnonzero(outcome_code < 0)[0])
        raise VoteDataError(
            f"vote table: row {row + 1}: missing outcome; expected one of {', '.join(OUTCOMES)}"
        )
    if "flagged" in votes.columns:
        keep = ~votes["flagged"].fillna(False).to_numpy(dtype=bool)
    else:
        keep = np.ones(len(votes), dtype=bool)
    flagged = int(len(keep) - keep.sum()) if weights is None else int(weights[~keep].sum())
    left_code, left_names = _model_labels(votes["model_left"], keep)
    right_code, right_names = _model_labels(votes["model_right"], keep)
    if not keep.all():  # selecting a million codes copies them; with nothing flagged, take them all
        left_code, right_code, outcome_code = left_code[keep], right_code[keep], outcome_code[keep]
        weights = None if weights is None else weights[keep]
    # Votes per distinct (left label, right label, outcome label).
    shape = (len(left_names), len(right_names), len(outcome_names))
    key = left_code * (shape[1] * shape[2])
    key += right_code * shape[2]
    key += outcome_code
    if math.prod(shape) <= 1 << 22:  # a dense count grid is fastest while it stays small
        per_label = np.bincount(key, weights, minlength=math.prod(shape))
        key = np.flatnonzero(per_label)
        votes_per_key = per_label[key]
    elif weights is None:  # thousands of models: count only the label pairs that met
        key, votes_per_key = np.unique(key, return_counts=True)
    else:
        key, at = np.unique(key, return_inverse=True)
        votes_per_key = np.bincount(at, weights, len(key))
        key, votes_per_key = key[votes_per_key > 0], votes_per_key[votes_per_key > 0]
    left_label, right_label, outcome_label = np.unravel_index(key, shape)
    # Two outputs of one model (a judge comparing two routes of it) say nothing about its rating.
    between = left_names[left_label] != right_names[right_label]
    if not between.all():
        left_label, right_label = left_label[between], right_label[between]
        outcome_label, votes_per_key = outcome_label[between], votes_per_key[between]
    used = set(left_names[np.unique(left_label)]) | set(right_names[np.unique(right_label)])
    models = np.array(sorted(used), dtype=object)
    position = {name: k for k, name in enumerate(models)}
    left_at = np.array([position.get(name, -1) for name in left_names], dtype=np.int64)
    right_at = np.array([position.get(name, -1) for name in right_names], dtype=np.int64)
    left, right = left_at[left_label], right_at[right_label]
    # Re-express each outcome from the lower-indexed model's side: "left won" is "i won" unless
    # the left model is the higher-indexed one.
    column = np.array([OUTCOMES.index(name) for name in outcome_names], dtype=np.int64)
    column = column[outcome_label]
    column = np.where((left > right) & (column <= 1), 1 - column, column)
    m = len(models)
    pair = np.minimum(left, right) * m + np.maximum(left, right)
    cell, slot = np.unique(pair * 4 + column, return_inverse=True)
    present, row = np.unique(cell // 4, return_inverse=True)
    outcomes = np.zeros((len(present), 4))
    outcomes[row, cell % 4] = np.bincount(slot, votes_per_key, len(cell))
    return Tally(models, present // m, present % m, outcomes, flagged)


def _model_labels(column: pd.Series, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A model column factorized: codes and names; a missing name in a kept row is an error."""
    codes, names = _factorize_labels(column)
    missing = (codes < 0) & keep
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise VoteDataError(f"vote table: row {row + 1}: missing model name in {column.name}")
    return codes, np.asarray(names, dtype=object)


def _factorize_labels(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (−1 for missing) and the distinct labels of a column, as pd.factorize gives them.

    Categorical columns (how the store hands large vote tables over) are already factorized.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64), np.asarray(column.cat.categories)
    return pd.factorize(column.to_numpy())


def compute_board(votes: pd.DataFrame, options: RatingOptions | None = None) -> pd.DataFrame:
    """One leaderboard row per model, best first within each group of models that met.

    Columns: see BOARD_COLUMNS. `board.attrs` carries the vote count, the number of groups and a
    message when groups are not comparable.
    """
    return _board_from_tally(tally_votes(votes), options or RatingOptions(), require_anchor=True)


def compute_boards(
    votes: pd.DataFrame, options: RatingOptions | None = None, by: str | None = None
) -> dict[tuple[str, str | None], pd.DataFrame]:
    """Separate boards per task, and per category or challenge with `by`; keys are (task, key or None).

    `by="route"` is one board per task whose rows are routes, "model@provider" (the votes need
    provider_left and provider_right, as the store's read with extra_columns gives them).
    """
    return _boards(votes, options, by, counted=False)


def compute_boards_from_counts(
    counts: pd.DataFrame, options: RatingOptions | None = None, by: str | None = None
) -> dict[tuple[str, str | None], pd.DataFrame]:
    """compute_boards on pair counts (see tally_counts): the same boards as from the votes they
    count. The counts must hold `by`'s columns (category, challenge, or with "route" the providers),
    as `store.read_pair_counts(engine, by=by)` gives them."""
    return _boards(counts, options, by, counted=True)


def _boards(
    votes: pd.DataFrame, options: RatingOptions | None, by: str | None, *, counted: bool
) -> dict:
    if by not in BY_CHOICES:
        raise ValueError(f"by must be one of {BY_CHOICES}, not {by!r}")
    options = options or RatingOptions()
    if by == "route":
        votes, by = route_votes(votes), None
    votes = check_vote_frame(votes)
    kept = ~votes["flagged"].to_numpy(dtype=bool)
    tally = tally_counts if counted else tally_votes
    if counted:
        kept &= count_weights(votes) > 0  # a count of no votes is no vote
    votes = votes[kept]
    if votes.empty:
        raise VoteDataError("no votes to rate (all votes are flagged or the vote table is empty)")
    boards: dict[tuple[str, str | None], pd.DataFrame] = {}
    tasks = sorted(
        votes["task"].unique(),
        key=lambda task: (TASKS.index(task) if task in TASKS else len(TASKS), task),
    )
    for task in tasks:
        task_votes = votes[votes["task"] == task]
        if by is None:
            boards[(task, None)] = _board_from_tally(
                tally(task_votes), options, require_anchor=False
            )
            continue
        for key, key_votes in task_votes.groupby(by, sort=True):
            boards[(task, str(key))] = _board_from_tally(
                tally(key_votes), options, require_anchor=False
            )
    return boards


def _board_from_tally(
    tally: Tally, options: RatingOptions, *, require_anchor: bool
) -> pd.DataFrame:
    if len(tally.outcomes) == 0:
        excluded = f" ({tally.flagged} flagged votes excluded)" if tally.flagged else ""
        raise VoteDataError(f"no votes to rate{excluded}")
    models = list(tally.models)
    if require_anchor and options.anchor is not None and options.anchor not in models:
        raise VoteDataError(
            f"anchor model {options.anchor!r} has no votes; models with votes: {', '.join(models)}"
        )
    counts = tally.pair_counts(options)
    n_groups, labels = _ordered_groups(counts, tally)
    rating = np.full(len(models), options.anchor_rating)
    lower, upper = np.full(len(models), np.nan), np.full(len(models), np.nan)
    regularized = np.zeros(len(models), dtype=bool)
    for group in range(n_groups):
        members = np.flatnonzero(labels == group)
        if len(members) == 1:
            continue  # alone in its group: nothing to compare with, the centre with no interval
        anchor_hits = np.flatnonzero(tally.models[members] == options.anchor)
        anchor_at = int(anchor_hits[0]) if len(anchor_hits) else None
        sub = counts.subset(members)
        precision = (
            0.0
            if bt.mle_exists(sub, ties_count=options.ties != "drop")
            else bt.fallback_precision()
        )
        regularized[members] = precision > 0
        point = bt.fit(sub, davidson=options.ties == "davidson", prior_precision=precision)
        rating[members], lower[members], upper[members] = _group_ratings(
            sub, point, options, anchor_at, seed=(options.seed, group)
        )
    totals = tally.model_totals()
    board = pd.DataFrame(
        {
            "model": models,
            "rating": rating,
            "lower": lower,
            "upper": upper,
            "rank": _ranks(lower, upper, labels),
            "votes": totals.sum(axis=1).astype(int),
            "wins": totals[:, 0].astype(int),
            "losses": totals[:, 1].astype(int),
            "ties": totals[:, 2].astype(int),
            "both_bad": totals[:, 3].astype(int),
            "win_rate": totals[:, 0] / totals.sum(axis=1),
            "group": labels,
            "note": _notes(counts, regularized),
        }
    )
    board["preliminary"] = (board["votes"] < options.min_votes) | (board["note"] != "")
    board = board.sort_values(
        ["group", "rating", "model"], ascending=[True, False, True], ignore_index=True
    )
    board = board[list(BOARD_COLUMNS)]
    board.attrs.update(
        votes=int(tally.outcomes.sum()),
        flagged_excluded=tally.flagged,
        groups=n_groups,
        comparable=n_groups == 1,
        message=_groups_message(n_groups, options),
        options=asdict(options),
    )
    return board


def _group_ratings(
    sub: bt.PairCounts, point: bt.Fit, options: RatingOptions, anchor_at: int | None, seed
):
    """Ratings and interval bounds on the Elo scale for one connected group."""
    alpha = 1.0 - options.confidence

    def to_elo(theta: np.ndarray) -> np.ndarray:
        reference = (
            theta[..., anchor_at, None]
            if anchor_at is not None
            else theta.mean(axis=-1, keepdims=True)
        )
        return options.anchor_rating + ELO_PER_LOGIT * (theta - reference)

    rating = to_elo(point.theta)
    if options.intervals == "bootstrap":
        replicates = to_elo(
            bt.bootstrap_thetas(
                sub, point, options.bootstrap_rounds, seed, prior_precision=point.prior_precision
            )
        )
        lower, upper = np.quantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)
        return rating, lower, upper
    covariance = bt.sandwich_covariance(sub, point)
    variance = np.diag(covariance).copy()
    if anchor_at is not None:
        variance = variance + covariance[anchor_at, anchor_at] - 2 * covariance[:, anchor_at]
    half_width = norm.ppf(1 - alpha / 2) * ELO_PER_LOGIT * np.sqrt(np.maximum(variance, 0.0))
    return rating, rating - half_width, rating + half_width


def _ordered_groups(counts: bt.PairCounts, tally: Tally) -> tuple[int, np.ndarray]:
    """Connected groups numbered by votes (most first), then by first model name."""
    n_groups, labels = bt.group_models(counts)
    votes = np.bincount(labels, tally.model_totals().sum(axis=1), n_groups)
    first = [np.flatnonzero(labels == g)[0] for g in range(n_groups)]
    order = sorted(range(n_groups), key=lambda g: (-votes[g], first[g]))
    renumber = np.empty(n_groups, dtype=int)
    renumber[order] = np.arange(n_groups)
    return n_groups, renumber[labels]


def _ranks(lower: np.ndarray, upper: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 + the number of models in the same group whose lower bound is above this model's upper bound."""
    same_group = labels[:, None] == labels[None, :]
    above = (lower[None, :] > upper[:, None]) & same_group
    return 1 + above.sum(axis=1)


def _notes(counts: bt.PairCounts, regularized: np.ndarray) -> list[str]:
    """Why a rating is less trustworthy: a model that never won or never lost, a prior, no votes."""
    m = counts.n_models
    scored = np.bincount(counts.i, counts.wins_i + counts.ties, m) + np.bincount(
        counts.j, counts.wins_j + counts.ties, m
    )
    conceded = np.bincount(counts.i, counts.wins_j + counts.ties, m) + np.bincount(
        counts.j, counts.wins_i + counts.ties, m
    )
    notes = []
    for k in range(m):
        parts = []
        if scored[k] + conceded[k] == 0:
            parts.append("no decisive votes")
        elif conceded[k] == 0:
            parts.append("never lost")
        elif scored[k] == 0:
            parts.append("never won")
        if regularized[k]:
            parts.append("rating held finite by a prior")
        notes.append("; ".join(parts))
    return notes


def _groups_message(n_groups: int, options: RatingOptions) -> str:
    if n_groups == 1:
        return ""
    centre = (
        f"on {options.anchor} if it is in the group, else on its mean"
        if options.anchor
        else "on its own mean"
    )
    return (
        f"the votes split into {n_groups} groups of models that never met, directly or through others; "
        f"ratings compare only within a group (each group is centred {centre})"
    )


# --- JSON-ready records ---------------------------------------------------------------------------


def board_records(board: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: plain Python numbers, ratings rounded to 0.1, missing bounds as None."""
    records = []
    for row in board.itertuples(index=False):
        record = {}
        for column in BOARD_COLUMNS:
            value = getattr(row, column)
            if isinstance(value, float | np.floating):
                value = (
                    None
                    if math.isnan(value)
                    else round(float(value), 4 if column == "win_rate" else 1)
                )
            elif isinstance(value, np.integer):
                value = int(value)
            elif isinstance(value, np.bool_):
                value = bool(value)
            record[column] = value
        records.append(record)
    return records


def boards_records(
    boards: dict[tuple[str, str | None], pd.DataFrame], by: str | None = None
) -> list[dict]:
    """One JSON object per board: task, the grouping and its key, notes, and the model rows."""
    return [
        {
            "task": task,
            "by": by,
            "key": key,
            "votes": board.attrs.get("votes"),
            "groups": board.attrs.get("groups"),
            "message": board.attrs.get("message", ""),
            "models": board_records(board),
        }
        for (task, key), board in boards.items()
    ]

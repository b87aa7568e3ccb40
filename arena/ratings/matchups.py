"""Views of votes beside the board: head-to-head records, win matrices, best-for, position bias."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.stats import norm

from arena.ratings.boards import RatingOptions, compute_boards, tally_votes
from arena.ratings.frames import label_codes, label_names, unflagged

HEAD_TO_HEAD_COLUMNS = (
    "opponent",
    "challenge",
    "votes",
    "wins",
    "losses",
    "ties",
    "both_bad",
    "win_pct",
    "loss_pct",
    "tie_pct",
)
RESULTS = ("wins", "losses", "ties", "both_bad")  # a model's record, from its own side
# Column of RESULTS an outcome adds to, for the left model and for the right model.
_FOR_LEFT = {"left": 0, "right": 1, "tie": 2, "both_bad": 3}
_FOR_RIGHT = {"left": 1, "right": 0, "tie": 2, "both_bad": 3}


def head_to_head(votes: pd.DataFrame, model: str, *, by: str | None = "challenge") -> pd.DataFrame:
    """The model's record against each opponent (and challenge), most-played matchups first.

    Percentages are of all the matchup's votes; tie_pct includes both_bad. A model without votes
    gets an empty frame.
    """
    columns = [c for c in HEAD_TO_HEAD_COLUMNS if by or c != "challenge"]
    if by and by != "challenge":
        columns = [by if c == "challenge" else c for c in columns]
    records = count_records(votes, by=by)
    code = int(np.searchsorted(records.models, model))
    if code == len(records.models) or records.models[code] != model:
        return pd.DataFrame(columns=columns)
    mine = records.counts[records.counts["model"].to_numpy() == code]
    keys = ["opponent"] + ([by] if by else [])
    ((_, table),) = replace(records, counts=mine).per_model(keys)
    return table[columns]


@dataclass(frozen=True)
class Records:
    """Every model's wins, losses, ties and both_bad against each opponent within each slice.

    `counts` holds codes: model and opponent index `models`, the `by` column (when there is one)
    indexes `slices`; codes follow the sorted names, so sorting codes sorts names.
    """

    models: np.ndarray
    slices: np.ndarray
    by: str | None
    counts: pd.DataFrame  # model, opponent, [by], *RESULTS; one row per pair and slice that met

    def per_model(
        self, keys: list[str], head: int | None = None
    ) -> Iterator[tuple[str, pd.DataFrame]]:
        """Each model's record summed per `keys` (opponent and/or the by column), labelled, with
        votes and head_to_head's percentages, most votes first then by the keys' names; `head` rows
        at most per model."""
        every = ["opponent"] + ([self.by] if self.by else [])
        table = self.counts
        if list(keys) != every:
            table = table.groupby(["model", *keys], sort=False)[list(RESULTS)].sum().reset_index()
        else:
            table = table.copy()
        table.insert(table.columns.get_loc("wins"), "votes", table[list(RESULTS)].sum(axis=1))
        table["win_pct"] = 100 * table["wins"] / table["votes"]
        table["loss_pct"] = 100 * table["losses"] / table["votes"]
        table["tie_pct"] = 100 * (table["ties"] + table["both_bad"]) / table["votes"]
        table = table.sort_values(
            ["model", "votes", *keys],
            ascending=[True, False] + [True] * len(keys),
            ignore_index=True,
        )
        names = {"opponent": self.models, self.by: self.slices}
        for key in keys:
            table[key] = names[key][table[key].to_numpy()]
        bounds = np.flatnonzero(np.diff(table["model"].to_numpy())) + 1
        for rows in np.split(np.arange(len(table)), bounds) if len(table) else ():
            mine = table.iloc[rows if head is None else rows[:head]]
            yield (
                str(self.models[mine["model"].iat[0]]),
                mine.drop(columns="model").reset_index(drop=True),
            )


def count_records(votes: pd.DataFrame, *, by: str | None = "challenge") -> Records:
    """Every model's record per opponent (and `by` slice), counted once from the unflagged votes.

    What head_to_head gives for each model, for all models in one pass: votes are counted per
    (left, right, slice, outcome) cell, and each cell adds to the left model's record against the
    right one and the other way round.
    """
    rated = unflagged(votes, (by,) if by else ())
    if rated.empty:
        columns = ["model", "opponent", *([by] if by else []), *RESULTS]
        empty = np.array([], dtype=object)
        return Records(empty, empty, by, pd.DataFrame({c: np.array([], int) for c in columns}))
    models = label_names(rated["model_left"], rated["model_right"])
    slices = label_names(rated[by]) if by else np.array([""], dtype=object)
    outcomes = np.array(sorted(_FOR_LEFT), dtype=object)
    m, c, o = len(models), len(slices), len(outcomes)
    key = label_codes(rated["model_left"], models) * (m * c * o)
    key += label_codes(rated["model_right"], models) * (c * o)
    if by:
        key += label_codes(rated[by], slices) * o
    key += label_codes(rated["outcome"], outcomes)
    if m * m * c * o <= 1 << 22:  # a dense count per cell while that stays small
        votes_per_cell = np.bincount(key, minlength=m * m * c * o)
        cells = np.flatnonzero(votes_per_cell)
        votes_per_cell = votes_per_cell[cells]
    else:
        cells, votes_per_cell = np.unique(key, return_counts=True)
    del key
    rest, outcome = np.divmod(cells, o)
    rest, piece = np.divmod(rest, c)
    left, right = np.divmod(rest, m)
    for_left = np.array([_FOR_LEFT[x] for x in outcomes])[outcome]
    for_right = np.array([_FOR_RIGHT[x] for x in outcomes])[outcome]
    model, opponent = np.concatenate([left, right]), np.concatenate([right, left])
    matchup = (model * m + opponent) * c + np.concatenate([piece, piece])
    result = np.concatenate([for_left, for_right])
    keys, at = np.unique(matchup, return_inverse=True)
    cell = at * len(RESULTS) + result
    counts = np.bincount(
        cell, np.concatenate([votes_per_cell, votes_per_cell]), len(keys) * len(RESULTS)
    )
    counts = counts.round().astype(np.int64).reshape(len(keys), len(RESULTS))
    rest, piece = np.divmod(keys, c)
    model, opponent = np.divmod(rest, m)
    frame = pd.DataFrame(
        {
            "model": model,
            "opponent": opponent,
            **({by: piece} if by else {}),
            **{name: counts[:, k] for k, name in enumerate(RESULTS)},
        }
    )
    return Records(models, slices, by, frame)


def battle_matrix(votes: pd.DataFrame) -> pd.DataFrame:
    """Votes between each pair of models (symmetric; flagged votes excluded)."""
    tally = tally_votes(votes)
    m = len(tally.models)
    counts = np.zeros((m, m), dtype=int)
    counts[tally.i, tally.j] = counts[tally.j, tally.i] = tally.outcomes.sum(axis=1)
    return pd.DataFrame(counts, index=tally.models, columns=tally.models)


def win_matrix(votes: pd.DataFrame, options: RatingOptions | None = None) -> pd.DataFrame:
    """Share of row-vs-column votes the row model won; NaN where they never met.

    Ties count as half a win with ties="half", and are left out otherwise (as both_bad="drop" leaves
    both_bad out).
    """
    options = options or RatingOptions()
    tally = tally_votes(votes)
    counts = tally.pair_counts(options)
    m = len(tally.models)
    tie_share = 0.5 if options.ties == "half" else 0.0
    total = counts.wins_i + counts.wins_j + (counts.ties if options.ties == "half" else 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_i = (counts.wins_i + tie_share * counts.ties) / total
    matrix = np.full((m, m), np.nan)
    matrix[counts.i, counts.j] = share_i
    matrix[counts.j, counts.i] = 1 - share_i
    return pd.DataFrame(matrix, index=tally.models, columns=tally.models)


def best_for(
    votes: pd.DataFrame, options: RatingOptions | None = None, model: str | None = None
) -> pd.DataFrame:
    """Per task and category: each model's rank, rating, win rate and votes (one model with `model`)."""
    boards = compute_boards(votes, options, by="category")
    rows = []
    for (task, category), board in boards.items():
        picked = board if model is None else board[board["model"] == model]
        for row in picked.itertuples(index=False):
            rows.append(
                {
                    "task": task,
                    "category": category,
                    "model": row.model,
                    "rank": row.rank,
                    "rating": row.rating,
                    "lower": row.lower,
                    "upper": row.upper,
                    "win_rate": row.win_rate,
                    "votes": row.votes,
                    "models_in_board": len(board),
                    "preliminary": row.preliminary,
                }
            )
    columns = ["task", "category", "model", "rank", "rating", "lower", "upper", "win_rate", "votes"]
    frame = pd.DataFrame(rows, columns=columns + ["models_in_board", "preliminary"])
    return frame.sort_values(
        ["task", "category", "rank", "rating"],
        ascending=[True, True, True, False],
        ignore_index=True,
    )


def position_bias(votes: pd.DataFrame, confidence: float = 0.95) -> dict:
    """P(left wins | a model won) with a Wilson interval; 0.5 means the side shown does not matter."""
    votes = unflagged(votes)
    left_wins = int((votes["outcome"] == "left").sum())
    right_wins = int((votes["outcome"] == "right").sum())
    n = left_wins + right_wins
    if n == 0:
        return {
            "left_wins": 0,
            "right_wins": 0,
            "decisive_votes": 0,
            "p_left": None,
            "lower": None,
            "upper": None,
        }
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = left_wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {
        "left_wins": left_wins,
        "right_wins": right_wins,
        "decisive_votes": n,
        "p_left": p,
        "lower": max(0.0, centre - half_width),
        "upper": min(1.0, centre + half_width),
    }

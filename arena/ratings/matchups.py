"""Views of votes beside the board: head-to-head, win matrices, best-for, online Elo, position bias."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from arena.ratings.boards import ELO_PER_LOGIT, RatingOptions, compute_boards, tally_votes
from arena.ratings.frames import check_vote_frame

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


def head_to_head(votes: pd.DataFrame, model: str, *, by: str | None = "challenge") -> pd.DataFrame:
    """The model's record against each opponent (and challenge), most-played matchups first.

    Percentages are of all the matchup's votes; tie_pct includes both_bad. A model without votes
    gets an empty frame.
    """
    votes = _unflagged(votes)
    on_left, on_right = votes["model_left"] == model, votes["model_right"] == model
    mine = votes[on_left | on_right]
    keys = ["opponent"] + ([by] if by else [])
    columns = [c for c in HEAD_TO_HEAD_COLUMNS if by or c != "challenge"]
    if by and by != "challenge":
        columns = [by if c == "challenge" else c for c in columns]
    if mine.empty:
        return pd.DataFrame(columns=columns)
    left_side = on_left[mine.index].to_numpy()
    outcome = mine["outcome"].to_numpy()
    result = np.select(
        [outcome == "tie", outcome == "both_bad", (outcome == "left") == left_side],
        ["ties", "both_bad", "wins"],
        default="losses",
    )
    frame = pd.DataFrame(
        {
            "opponent": np.where(left_side, mine["model_right"], mine["model_left"]),
            "result": result,
            **({by: mine[by].to_numpy()} if by else {}),
        }
    )
    table = frame.groupby(keys + ["result"]).size().unstack("result", fill_value=0)
    table = table.reindex(
        columns=["wins", "losses", "ties", "both_bad"], fill_value=0
    ).reset_index()
    table["votes"] = table[["wins", "losses", "ties", "both_bad"]].sum(axis=1)
    table["win_pct"] = 100 * table["wins"] / table["votes"]
    table["loss_pct"] = 100 * table["losses"] / table["votes"]
    table["tie_pct"] = 100 * (table["ties"] + table["both_bad"]) / table["votes"]
    table = table.sort_values(
        ["votes"] + keys, ascending=[False] + [True] * len(keys), ignore_index=True
    )
    table.columns.name = None
    return table[columns]


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


def online_elo(
    votes: pd.DataFrame,
    *,
    k: float = 4.0,
    initial_rating: float = 1000.0,
    options: RatingOptions | None = None,
) -> pd.DataFrame:
    """Elo updated vote by vote in time order (file order breaks ties), for rating-over-time charts.

    Secondary to the Bradley–Terry board: it depends on vote order and on K. Returns one row per model
    per vote: vote (0-based position), created_at, battle_id, model, rating after the vote.
    """
    options = options or RatingOptions()
    votes = _unflagged(votes)
    order = np.argsort(votes["created_at"].to_numpy(dtype="datetime64[ns]"), kind="stable")
    votes = votes.iloc[order]  # NaT sorts last, keeping undated votes in file order
    outcome = votes["outcome"].to_numpy()
    score_left = np.select([outcome == "left", outcome == "right"], [1.0, 0.0], default=0.5)
    counted = ~((outcome == "tie") & (options.ties == "drop"))
    counted &= ~(
        (outcome == "both_bad") & ((options.both_bad == "drop") | (options.ties == "drop"))
    )
    left, right = votes["model_left"].to_numpy(), votes["model_right"].to_numpy()
    ratings: dict[str, float] = {}
    after_left, after_right = np.empty(len(votes)), np.empty(len(votes))
    for n in range(len(votes)):
        a, b = left[n], right[n]
        rating_a, rating_b = ratings.get(a, initial_rating), ratings.get(b, initial_rating)
        if counted[n]:
            expected_a = 1.0 / (1.0 + math.exp((rating_b - rating_a) / ELO_PER_LOGIT))
            change = k * (score_left[n] - expected_a)
            rating_a, rating_b = rating_a + change, rating_b - change
        ratings[a], ratings[b] = after_left[n], after_right[n] = rating_a, rating_b
    positions = np.arange(len(votes))
    history = pd.DataFrame(
        {
            "vote": np.concatenate([positions, positions]),
            "created_at": pd.concat([votes["created_at"]] * 2, ignore_index=True),
            "battle_id": np.concatenate([votes["battle_id"].to_numpy()] * 2),
            "model": np.concatenate([left, right]),
            "rating": np.concatenate([after_left, after_right]),
        }
    )
    return history.sort_values(["vote", "model"], ignore_index=True)


def position_bias(votes: pd.DataFrame, confidence: float = 0.95) -> dict:
    """P(left wins | a model won) with a Wilson interval; 0.5 means the side shown does not matter."""
    votes = _unflagged(votes)
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


def _unflagged(votes: pd.DataFrame) -> pd.DataFrame:
    votes = check_vote_frame(votes)
    return votes[~votes["flagged"].to_numpy(dtype=bool)]

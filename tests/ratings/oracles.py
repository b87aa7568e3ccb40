"""The slow, plainly correct head-to-head and online Elo that arena.ratings' fast ones must equal.

pandas groupby and a dict-of-ratings loop, as the definitions read; the property tests in
tests/ratings/ hold arena.ratings.matchups and arena.ratings.history to these on random votes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from arena.ratings import ELO_PER_LOGIT, RatingOptions
from arena.ratings.frames import check_vote_frame
from arena.ratings.matchups import HEAD_TO_HEAD_COLUMNS


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


def _unflagged(votes: pd.DataFrame) -> pd.DataFrame:
    votes = check_vote_frame(votes)
    return votes[~votes["flagged"].to_numpy(dtype=bool)]

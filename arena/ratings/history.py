"""Online Elo: ratings updated vote by vote in time order, for rating-over-time charts.

Secondary to the Bradley–Terry board (it depends on vote order and on K); the loop runs on integer
model codes, so a million votes take well under a second.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from arena.ratings.boards import ELO_PER_LOGIT, RatingOptions
from arena.ratings.frames import OUTCOMES, label_codes, label_names, unflagged

ELO_K = 4.0
ELO_INITIAL = 1000.0


def online_elo(
    votes: pd.DataFrame,
    *,
    k: float = ELO_K,
    initial_rating: float = ELO_INITIAL,
    options: RatingOptions | None = None,
) -> pd.DataFrame:
    """Elo updated vote by vote in time order (file order breaks ties), for rating-over-time charts.

    Returns one row per model per vote: vote (0-based position), created_at, battle_id, model,
    rating after the vote. Votes the options drop (ties="drop", both_bad="drop") move no rating.
    """
    votes = unflagged(votes, ("battle_id", "created_at"))
    order, models, left, right, after_left, after_right = _run(votes, k, initial_rating, options)
    votes = votes.iloc[order]
    positions = np.arange(len(votes))
    history = pd.DataFrame(
        {
            "vote": np.concatenate([positions, positions]),
            "created_at": pd.concat([votes["created_at"]] * 2, ignore_index=True),
            "battle_id": np.concatenate([votes["battle_id"].to_numpy()] * 2),
            "model": models[np.concatenate([left, right])],
            "rating": np.concatenate([after_left, after_right]),
        }
    )
    return history.sort_values(["vote", "model"], ignore_index=True)


def elo_series(
    votes: pd.DataFrame,
    models: list[str],
    *,
    k: float = ELO_K,
    initial_rating: float = ELO_INITIAL,
    options: RatingOptions | None = None,
) -> dict[str, pd.DataFrame]:
    """online_elo's rows of a few models: per model, created_at and rating after each of its votes.

    Every vote still moves the ratings, so the series are online_elo's exactly; only the rows of
    `models` are kept (the full history is two rows per vote). A model without votes is left out.
    """
    votes = unflagged(votes, ("created_at",))
    if votes.empty or not models:
        return {}
    order, names, left, right, after_left, after_right = _run(votes, k, initial_rating, options)
    created_at = votes["created_at"]
    series = {}
    for model in models:
        code = int(np.searchsorted(names, model))
        if code >= len(names) or names[code] != model:
            continue
        rows = np.flatnonzero((left == code) | (right == code))
        series[model] = pd.DataFrame(
            {
                "created_at": created_at.iloc[order[rows]].reset_index(drop=True),
                "rating": np.where(left[rows] == code, after_left[rows], after_right[rows]),
            }
        )
    return series


def _run(votes: pd.DataFrame, k: float, initial: float, options: RatingOptions | None):
    """The vote order, the sorted model names, each ordered vote's model codes and both sides'
    ratings after it."""
    options = options or RatingOptions()
    # NaT sorts last, keeping undated votes in file order
    order = np.argsort(votes["created_at"].to_numpy(dtype="datetime64[ns]"), kind="stable")
    models = label_names(votes["model_left"], votes["model_right"])
    left = label_codes(votes["model_left"], models)[order]
    right = label_codes(votes["model_right"], models)[order]
    outcomes = np.array(sorted(OUTCOMES), dtype=object)
    dropped = {"tie"} if options.ties == "drop" else set()
    if options.ties == "drop" or options.both_bad == "drop":
        dropped.add("both_bad")
    # The left side's score: 1 for "left", 0 for "right", a half for the rest, None when dropped.
    # An object array of a few shared floats: tolist() then makes no float per vote.
    scores = np.array(
        [
            None if x in dropped else 1.0 if x == "left" else 0.0 if x == "right" else 0.5
            for x in outcomes
        ],
        dtype=object,
    )
    score = scores[label_codes(votes["outcome"], outcomes)[order]]
    after_left, after_right = _elo(
        left.tolist(), right.tolist(), score.tolist(), len(models), k, initial
    )
    return order, models, left, right, after_left, after_right


def _elo(
    left: list[int], right: list[int], score: list, m: int, k: float, initial: float
) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' ratings after each vote, on model codes; a None score moves neither."""
    ratings = [initial] * m
    after_left, after_right = [0.0] * len(left), [0.0] * len(left)
    exp = math.exp
    for n, (a, b, s) in enumerate(zip(left, right, score, strict=True)):
        rating_a, rating_b = ratings[a], ratings[b]
        if s is None:
            after_left[n], after_right[n] = rating_a, rating_b
            continue
        change = k * (s - 1.0 / (1.0 + exp((rating_b - rating_a) / ELO_PER_LOGIT)))
        ratings[a] = after_left[n] = rating_a + change
        ratings[b] = after_right[n] = rating_b - change
    return np.array(after_left), np.array(after_right)

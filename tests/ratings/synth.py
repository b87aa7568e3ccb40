"""Synthetic votes drawn from a known Bradley–Terry model, for the ratings tests and benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd


def model_names(count: int) -> np.ndarray:
    return np.array([f"model-{k:02d}" for k in range(count)], dtype=object)


def draw_votes(
    strengths: np.ndarray,
    n_votes: int,
    *,
    seed: int,
    tie_rate: float = 0.3,
    names: np.ndarray | None = None,
) -> pd.DataFrame:
    """Canonical vote rows whose mean score (tie = ½) is exactly the Bradley–Terry probability.

    A pair with win probability p ties with probability tie_rate·2·min(p, 1−p) and is otherwise
    decided with the probability that keeps E[score] = p, so ties-as-half-wins is the true model.
    """
    rng = np.random.default_rng(seed)
    m = len(strengths)
    names = model_names(m) if names is None else names
    left = rng.integers(0, m, n_votes)
    right = (left + rng.integers(1, m, n_votes)) % m
    p = 1.0 / (1.0 + np.exp(strengths[right] - strengths[left]))
    tie_probability = tie_rate * 2 * np.minimum(p, 1 - p)
    decisive_left = (p - tie_probability / 2) / (1 - tie_probability)
    tie = rng.random(n_votes) < tie_probability
    left_wins = rng.random(n_votes) < decisive_left
    outcome = np.where(tie, "tie", np.where(left_wins, "left", "right"))
    return pd.DataFrame(
        {
            "battle_id": [f"b{k}" for k in range(n_votes)],
            "challenge": "synthetic",
            "task": "text-to-image",
            "category": "general",
            "model_left": names[left],
            "model_right": names[right],
            "outcome": outcome,
            "voter": "",
            "created_at": pd.Series(pd.NaT, index=range(n_votes), dtype="datetime64[ns, UTC]"),
            "flagged": False,
        }
    )


def votes_frame(rows: list[tuple[str, str, str]], **columns) -> pd.DataFrame:
    """Canonical votes from (left, right, outcome) triples; extra columns as keyword lists or scalars."""
    frame = pd.DataFrame(rows, columns=["model_left", "model_right", "outcome"])
    for name, values in columns.items():
        frame[name] = values
    return frame

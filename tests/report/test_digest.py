"""The vote digest arranges what the ratings define: records per model and the online Elo history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from ratings.oracles import head_to_head, online_elo

from arena.report.digest import HISTORY_MODELS, MATCHUP_ROWS, digest_votes


def _votes(n: int = 3000, seed: int = 5, categorical: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    models = [f"m{k}" for k in range(12)] + ["Zeta", "alpha"]
    left = rng.integers(0, len(models), n)
    right = (left + rng.integers(1, len(models), n)) % len(models)
    challenge = rng.integers(0, 4, n)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "battle_id": [f"b{k}" for k in range(n)],
            "challenge": [f"c{c}" for c in challenge],
            "task": np.where(challenge < 2, "edit", "text-to-image"),
            "category": [f"cat{c % 2}" for c in challenge],
            "model_left": [models[k] for k in left],
            "model_right": [models[k] for k in right],
            "outcome": rng.choice(
                ["left", "right", "tie", "both_bad"], n, p=[0.4, 0.35, 0.15, 0.1]
            ),
            # Coarse times: many votes share a second, so the order of equal times matters too.
            "created_at": pd.to_datetime(
                [start + timedelta(seconds=int(s)) for s in rng.integers(0, 600, n)], utc=True
            ),
            "flagged": rng.random(n) < 0.03,
        }
    )
    if categorical:
        for name in ("challenge", "task", "category", "model_left", "model_right", "outcome"):
            frame[name] = frame[name].astype("category")
    return frame


@pytest.mark.slow
@pytest.mark.parametrize("categorical", [False, True])
def test_records_per_model_are_head_to_heads(categorical):
    votes = _votes(categorical=categorical)
    digest = digest_votes(votes)
    plain = _votes()
    rated = plain[~plain["flagged"]]
    models = sorted(set(rated["model_left"]) | set(rated["model_right"]))
    assert sorted(digest.matchups) == models
    for model in models:
        expected = head_to_head(plain, model, by="challenge")
        pd.testing.assert_frame_equal(
            digest.matchups[model], expected.head(MATCHUP_ROWS), check_dtype=False
        )
        counts = ["votes", "wins", "losses", "ties", "both_bad"]
        per_opponent = expected.groupby("opponent")[counts].sum().reset_index()
        per_opponent = per_opponent.sort_values(
            ["votes", "opponent"], ascending=[False, True], ignore_index=True
        )
        mine = digest.opponents[model]
        pd.testing.assert_frame_equal(
            mine[["opponent", *counts]], per_opponent.head(MATCHUP_ROWS), check_dtype=False
        )
        assert np.allclose(mine["win_pct"], 100 * mine["wins"] / mine["votes"])
        per_challenge = expected.groupby("challenge")[counts].sum()
        for challenge, row in per_challenge.iterrows():
            record = digest.challenge_records[challenge][model]
            assert [record[c] for c in counts] == list(row)
            assert record["tie_pct"] == pytest.approx(
                100 * (row["ties"] + row["both_bad"]) / row["votes"]
            )


@pytest.mark.parametrize("categorical", [False, True])
def test_history_is_online_elo_of_the_top_models(categorical):
    votes = _votes(categorical=categorical)
    digest = digest_votes(votes)
    plain = _votes()
    for task, board in digest.boards.items():
        mine = plain[plain["task"] == task]
        history = online_elo(mine)
        series = digest.history[task]
        assert list(series) == list(board["model"].head(HISTORY_MODELS))
        for model, (times, ratings) in series.items():
            full = history[history["model"] == model]
            keep = np.unique(np.linspace(0, len(full) - 1, min(200, len(full))).round().astype(int))
            assert np.allclose(ratings, full["rating"].to_numpy()[keep], rtol=0, atol=1e-9)
            expected_times = (
                full["created_at"].dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")[keep]
            )
            assert (times == expected_times).all()


def test_the_published_boards_from_pair_counts_are_the_boards_from_the_votes():
    votes = _votes(n=1500, categorical=True)
    keys = ["task", "model_left", "model_right", "outcome", "flagged"]
    counts = votes.groupby(keys, observed=True).size().rename("votes").reset_index()
    from_counts, from_rows = digest_votes(votes, counts).boards, digest_votes(votes).boards
    assert list(from_counts) == list(from_rows) == ["text-to-image", "edit"]
    for task, board in from_rows.items():
        pd.testing.assert_frame_equal(from_counts[task], board)

"""Head-to-head records, win matrices, best-for, online Elo and position bias."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from arena.ratings import (
    RatingOptions,
    battle_matrix,
    best_for,
    head_to_head,
    online_elo,
    position_bias,
    win_matrix,
)
from ratings.synth import draw_votes, votes_frame

CLOSED = RatingOptions(intervals="closed_form")


def matchup_votes() -> pd.DataFrame:
    rows = [
        ("a", "b", "left", "c1"),
        ("b", "a", "left", "c1"),
        ("b", "a", "right", "c2"),
        ("a", "b", "tie", "c2"),
        ("a", "c", "both_bad", "c1"),
        ("c", "a", "right", "c1"),
        ("c", "b", "left", "c1"),
        ("a", "c", "left", "c1"),
    ]
    frame = votes_frame([r[:3] for r in rows], challenge=[r[3] for r in rows])
    frame["flagged"] = False
    return frame


def test_head_to_head_by_challenge():
    table = head_to_head(matchup_votes(), "a")
    assert list(table.columns) == [
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
    ]
    rows = {(r.opponent, r.challenge): r for r in table.itertuples()}
    assert (rows["c", "c1"].wins, rows["c", "c1"].losses, rows["c", "c1"].both_bad) == (2, 0, 1)
    assert (rows["b", "c1"].wins, rows["b", "c1"].losses) == (1, 1)
    assert (rows["b", "c2"].wins, rows["b", "c2"].ties) == (1, 1)
    assert rows["c", "c1"].win_pct == pytest.approx(200 / 3) and rows[
        "c", "c1"
    ].tie_pct == pytest.approx(100 / 3)
    assert table["votes"].iloc[0] == 3  # most-played matchup first
    assert np.allclose(table[["win_pct", "loss_pct", "tie_pct"]].sum(axis=1), 100)


def test_head_to_head_per_opponent_and_for_unknown_model():
    table = head_to_head(matchup_votes(), "b", by=None)
    assert "challenge" not in table.columns
    record = table.set_index("opponent")
    assert record.loc["a", ["wins", "losses", "ties"]].tolist() == [1, 2, 1]
    assert record.loc["c", ["wins", "losses"]].tolist() == [0, 1]
    assert head_to_head(matchup_votes(), "nobody").empty


def test_head_to_head_ignores_flagged_votes():
    votes = matchup_votes()
    votes.loc[votes.index[-1], "flagged"] = True
    assert head_to_head(votes, "a", by=None).set_index("opponent").loc["c", "wins"] == 1


def test_win_matrix_and_battle_counts():
    votes = matchup_votes()
    matrix = win_matrix(votes)
    # a vs b: a won 2 (a-b left, b-a right), b won 1, one tie → (2 + 0.5) / 4.
    assert matrix.loc["a", "b"] == pytest.approx(2.5 / 4) and matrix.loc["b", "a"] == pytest.approx(
        1.5 / 4
    )
    assert math.isnan(matrix.loc["a", "a"])
    decisive = win_matrix(votes, RatingOptions(ties="drop"))
    assert decisive.loc["a", "b"] == pytest.approx(2 / 3)
    counts = battle_matrix(votes)
    assert counts.loc["a", "b"] == counts.loc["b", "a"] == 4 and counts.loc["b", "c"] == 1
    assert (counts.values == counts.values.T).all()


def test_win_matrix_is_nan_where_models_never_met():
    matrix = win_matrix(votes_frame([("a", "b", "left"), ("c", "d", "right")]))
    assert math.isnan(matrix.loc["a", "c"]) and matrix.loc["d", "c"] == 1.0


def test_best_for_ranks_per_category():
    strong_in_art = draw_votes(np.array([1.0, 0.0, -1.0]), 900, seed=1).assign(category="art")
    strong_in_text = draw_votes(np.array([-1.0, 0.0, 1.0]), 900, seed=2).assign(category="text")
    votes = pd.concat([strong_in_art, strong_in_text], ignore_index=True)
    table = best_for(votes, CLOSED, model="model-00")
    assert table[["category", "rank"]].values.tolist() == [["art", 1], ["text", 3]]
    assert (
        table.loc[0, "win_rate"] > table.loc[1, "win_rate"]
        and (table["models_in_board"] == 3).all()
    )
    assert len(best_for(votes, CLOSED)) == 6


def test_online_elo_follows_vote_order_and_k():
    votes = votes_frame(
        [("a", "b", "left"), ("a", "b", "left"), ("b", "a", "tie")],
        created_at=pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02"], utc=True),
        battle_id=["third", "first", "second"],
    )
    history = online_elo(votes, k=32)
    assert history["battle_id"].tolist()[::2] == ["first", "second", "third"]
    first = history[history["vote"] == 0].set_index("model")["rating"]
    assert first["a"] == pytest.approx(1016.0) and first["b"] == pytest.approx(984.0)
    second = history[history["vote"] == 1].set_index("model")["rating"]
    expected_b = 1 / (1 + 10 ** ((1016 - 984) / 400))
    assert second["b"] == pytest.approx(984 + 32 * (0.5 - expected_b))
    ratings_sum = history.groupby("vote")["rating"].sum()
    assert np.allclose(ratings_sum, 2000.0)  # Elo moves points between the two models only
    slower = online_elo(votes, k=4).set_index(["vote", "model"])["rating"]
    assert slower.loc[(0, "a")] == pytest.approx(1002.0)


def test_online_elo_drops_ties_when_asked():
    votes = votes_frame([("a", "b", "tie"), ("a", "b", "both_bad")])
    history = online_elo(votes, k=32, options=RatingOptions(ties="drop"))
    assert np.allclose(history["rating"], 1000.0)


def test_position_bias_with_wilson_interval():
    votes = votes_frame(
        [("a", "b", "left")] * 60 + [("a", "b", "right")] * 40 + [("a", "b", "tie")] * 30
    )
    bias = position_bias(votes)
    assert (bias["left_wins"], bias["right_wins"], bias["decisive_votes"]) == (60, 40, 100)
    assert bias["p_left"] == pytest.approx(0.6)
    assert bias["lower"] == pytest.approx(0.502, abs=1e-3) and bias["upper"] == pytest.approx(
        0.691, abs=1e-3
    )
    none = position_bias(votes_frame([("a", "b", "tie")]))
    assert none["decisive_votes"] == 0 and none["p_left"] is None


def test_position_bias_detects_a_left_bias_in_synthetic_votes():
    votes = draw_votes(np.zeros(4), 20_000, seed=3, tie_rate=0.0)
    biased = votes.copy()
    flip = (biased["outcome"] == "right").to_numpy() & (
        np.random.default_rng(0).random(len(biased)) < 0.2
    )
    biased.loc[flip, "outcome"] = "left"
    fair, skewed = position_bias(votes), position_bias(biased)
    assert fair["lower"] < 0.5 < fair["upper"]
    assert skewed["lower"] > 0.5

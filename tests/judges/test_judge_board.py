"""The board a judge's pairs are chosen on (from pair counts): models apart from their routes."""

from __future__ import annotations

import pandas as pd

from arena.app.judge import judge_ratings


def _vote(left, right, outcome, provider_left="p", provider_right="p", task="edit"):
    return {
        "battle_id": f"{left}{provider_left}{right}{provider_right}{outcome}{len(ROWS)}",
        "challenge": "c",
        "task": task,
        "category": "x",
        "model_left": left,
        "model_right": right,
        "provider_left": provider_left,
        "provider_right": provider_right,
        "outcome": outcome,
        "voter": "judge:j",
        "created_at": pd.Timestamp("2026-01-01", tz="UTC"),
        "flagged": False,
        "votes": 1,  # pair counts: this row is one vote
    }


ROWS: list[dict] = []


def test_route_pairs_are_rated_by_route_and_never_pull_a_model_s_interval_to_nothing():
    ROWS.clear()
    for _ in range(6):
        ROWS.append(_vote("a", "b", "left"))
        ROWS.append(_vote("a", "b", "tie"))
        ROWS.append(_vote("a", "a", "left", provider_left="p", provider_right="q"))
    ratings = judge_ratings(pd.DataFrame(ROWS))
    models = ratings[("model", "edit")]
    assert set(models) == {"a", "b"}
    assert models["a"][0] > models["b"][0]
    assert all(upper - lower > 10 for _, lower, upper in models.values())  # 12 votes: wide
    routes = ratings[("route", "edit")]
    assert set(routes) == {"a@p", "a@q", "b@p"} and routes["a@p"][0] > routes["a@q"][0]


def test_no_votes_no_board():
    assert judge_ratings(pd.DataFrame(columns=["model_left", "model_right"])) == {}

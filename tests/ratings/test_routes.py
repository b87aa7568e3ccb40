"""Routes: boards of model@provider, and the test of whether two routes of one model differ, on
vote sets with a known answer; the intervals against Newcombe's published examples."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.errors import VoteDataError
from arena.ratings import (
    ROUTE_COMPARISON_COLUMNS,
    RatingOptions,
    compare_routes,
    compute_boards,
    route_records,
    route_votes,
)
from arena.ratings.proportions import difference_interval, wilson_interval

OPTIONS = RatingOptions(intervals="closed_form")


def votes(*groups: tuple[str, str, str, str, dict[str, int]]) -> pd.DataFrame:
    """Votes from (model, provider, opponent model, opponent provider, {outcome: count}) groups;
    outcomes are from the first side's view, and every other vote shows the sides swapped."""
    flip = {"left": "right", "right": "left", "tie": "tie", "both_bad": "both_bad"}
    rows = []
    for model, provider, opponent, opponent_provider, counts in groups:
        for outcome, count in counts.items():
            for k in range(count):
                me, them = (model, provider), (opponent, opponent_provider)
                shown = outcome
                if k % 2:
                    me, them, shown = them, me, flip[outcome]
                rows.append(
                    {
                        "battle_id": f"b{len(rows)}",
                        "challenge": "bald-man",
                        "task": "edit",
                        "category": "portrait-edit",
                        "model_left": me[0],
                        "provider_left": me[1],
                        "model_right": them[0],
                        "provider_right": them[1],
                        "outcome": shown,
                        "voter": "",
                        "flagged": False,
                    }
                )
    return pd.DataFrame(rows)


def two_routes(fal_vs_flux, xai_vs_flux, fal_vs_gpt, xai_vs_gpt, head_to_head=None):
    groups = [
        ("grok", "fal", "flux", "bfl", fal_vs_flux),
        ("grok", "xai", "flux", "bfl", xai_vs_flux),
        ("grok", "fal", "gpt", "openai", fal_vs_gpt),
        ("grok", "xai", "gpt", "openai", xai_vs_gpt),
        # An opponent only one route met is no common ground: it must not count.
        ("grok", "fal", "solo", "local", {"left": 40}),
    ]
    if head_to_head:
        groups.append(("grok", "fal", "grok", "xai", head_to_head))
    return votes(*groups)


def test_two_routes_scored_against_the_opponents_both_met():
    frame = two_routes(
        {"left": 6, "tie": 2, "right": 2},  # fal vs flux: 7 of 10 points
        {"left": 12, "tie": 2, "right": 6},  # xai vs flux: 13 of 20
        {"left": 3, "both_bad": 2, "right": 5},  # fal vs gpt: 4 of 10
        {"left": 2, "right": 8},  # xai vs gpt: 2 of 10
        head_to_head={"left": 3, "tie": 1, "right": 1},
    )
    result = compare_routes(frame)
    assert list(result.columns) == list(ROUTE_COMPARISON_COLUMNS)
    (row,) = result.to_dict("records")
    assert (row["task"], row["model"], row["route_a"], row["route_b"]) == (
        "edit",
        "grok",
        "fal",
        "xai",
    )
    assert row["common_opponents"] == 2
    assert (row["n_a"], row["n_b"]) == (20, 30)
    assert row["score_a"] == pytest.approx(11 / 20) and row["score_b"] == pytest.approx(15 / 30)
    assert (row["lower_a"], row["upper_a"]) == pytest.approx(wilson_interval(11, 20))
    difference, lower, upper = difference_interval(11, 20, 15, 30)
    assert row["difference"] == pytest.approx(0.05) == pytest.approx(difference)
    assert (row["difference_lower"], row["difference_upper"]) == pytest.approx((lower, upper))
    assert (row["h2h_votes"], row["h2h_wins"], row["h2h_losses"], row["h2h_ties"]) == (5, 3, 1, 1)
    assert row["h2h_share"] == pytest.approx(0.7)
    assert row["verdict"] == "indistinguishable" and row["basis"] == "common opponents"
    assert row["sentence"] == (
        "fal's grok is indistinguishable from xai's (55% vs 50% against 2 common opponents, "
        "n=20 and 30; head to head 3–1 with 1 tie (70%))"
    )
    (record,) = route_records(result)
    assert record["n_a"] == 20 and isinstance(record["score_a"], float)


def test_routes_that_differ_say_which_is_better():
    frame = two_routes(
        {"left": 45, "right": 5}, {"left": 10, "right": 40}, {"left": 40}, {"left": 30, "right": 20}
    )
    (row,) = compare_routes(frame).to_dict("records")
    assert row["verdict"] == "differ" and row["difference_lower"] > 0
    assert row["sentence"].startswith("fal's grok does better than xai's (94% vs 40%")
    mirrored = frame.replace({"fal": "zeta"})  # now xai is route a
    (row,) = compare_routes(mirrored).to_dict("records")
    assert (row["route_a"], row["route_b"]) == ("xai", "zeta")
    assert row["sentence"].startswith("xai's grok does worse than zeta's (40% vs 94%")
    assert row["difference"] == pytest.approx(0.4 - 85 / 90)


def test_without_common_opponents_the_head_to_head_decides():
    frame = votes(
        ("grok", "fal", "grok", "xai", {"left": 18, "right": 2}),
        ("grok", "fal", "flux", "bfl", {"left": 3}),
    )
    (row,) = compare_routes(frame).to_dict("records")
    assert (
        row["common_opponents"] == 0
        and math.isnan(row["score_a"])
        and math.isnan(row["difference"])
    )
    assert row["basis"] == "head to head" and row["verdict"] == "differ" and row["h2h_lower"] > 0.5
    apart = votes(
        ("grok", "fal", "flux", "bfl", {"left": 3}), ("grok", "xai", "gpt", "openai", {"left": 1})
    )
    (row,) = compare_routes(apart).to_dict("records")
    assert row["verdict"] == "too few votes" and row["basis"] == "none"
    assert "cannot yet be compared" in row["sentence"]
    # Routes that met only each other (a judge comparing two routes of one model): head to head.
    (row,) = compare_routes(votes(("grok", "fal", "grok", "xai", {"left": 9, "tie": 2}))).to_dict(
        "records"
    )
    assert row["basis"] == "head to head" and row["common_opponents"] == 0
    assert (row["h2h_votes"], row["h2h_wins"], row["h2h_ties"]) == (11, 9, 2)


def test_one_route_per_model_is_nothing_to_compare_and_unknown_providers_are_no_route():
    frame = votes(
        ("grok", "xai", "flux", "bfl", {"left": 5}), ("grok", "", "flux", "bfl", {"left": 5})
    )
    assert compare_routes(frame).empty


def test_route_boards_rate_each_model_at_each_provider():
    frame = two_routes(
        {"left": 6, "right": 4},
        {"left": 4, "right": 6},
        {"left": 5},
        {"right": 5},
        head_to_head={"left": 4},
    )
    ((key, board),) = compute_boards(frame, OPTIONS, by="route").items()
    assert key == ("edit", None)
    assert set(board["model"]) == {"grok@fal", "grok@xai", "flux@bfl", "gpt@openai", "solo@local"}
    routes = board.set_index("model")
    assert (
        routes.loc["grok@fal", "votes"] == 10 + 5 + 40 + 4
        and routes.loc["grok@xai", "votes"] == 10 + 5 + 4
    )
    # The model board knows nothing of routes, and two outputs of one model do not rate it.
    (model_board,) = compute_boards(frame, OPTIONS).values()
    assert model_board.set_index("model").loc["grok", "votes"] == 10 + 10 + 5 + 5 + 40
    relabelled = route_votes(frame.assign(provider_left=""))
    assert set(relabelled["model_left"]) <= {"grok", "flux", "gpt", "solo"}


def test_route_boards_need_the_providers():
    frame = two_routes({"left": 1}, {"left": 1}, {"left": 1}, {"left": 1}).drop(
        columns="provider_right"
    )
    with pytest.raises(VoteDataError, match="provider_right missing"):
        compute_boards(frame, OPTIONS, by="route")
    with pytest.raises(VoteDataError, match="released votes file has none"):
        compare_routes(frame)


def test_the_intervals_are_newcombes_published_ones():
    """Newcombe (1998), Statistics in Medicine 17: 857-872, Tables I and II."""
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert difference_interval(56, 70, 48, 80)[1:] == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert difference_interval(9, 10, 3, 10)[1:] == pytest.approx((0.1705, 0.8090), abs=5e-5)
    assert all(math.isnan(v) for v in difference_interval(1, 0, 1, 2))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(1, 60), st.integers(0, 60), st.integers(1, 60))
def test_intervals_hold_the_estimate_and_mirror(a, n_a, b, n_b):
    a, b = min(a, n_a), min(b, n_b)
    low, high = wilson_interval(a, n_a)
    assert 0.0 <= low <= a / n_a <= high <= 1.0
    difference, lower, upper = difference_interval(a, n_a, b, n_b)
    assert -1.0 <= lower <= difference <= upper <= 1.0
    mirrored = difference_interval(b, n_b, a, n_a)
    assert mirrored == pytest.approx((-difference, -upper, -lower))

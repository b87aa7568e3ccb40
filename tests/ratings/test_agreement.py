"""A judge against the humans, on vote sets with a known answer: agreement (exact and fallback
matches, swapped sides, ties), Kendall's tau between boards, the judge's position bias."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.judged import human_vote, judge_call, judge_vote

from arena.ratings import (
    AGREEMENT_COLUMNS,
    POSITION_BIAS_COLUMNS,
    board_correlation,
    boards_correlation,
    judge_agreement,
    judge_position_bias,
)

PROPERTY_SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FLIP = {"left": "right", "right": "left", "tie": "tie", "both_bad": "both_bad"}


def outputs(k: int, models=("identity", "night-grade")):
    return tuple((model, "local", f"{model}-{k}") for model in models)


def frame(rows: list[dict]) -> pd.DataFrame:
    columns = [*human_vote(0, *outputs(0), "left"), "reason"]
    return pd.DataFrame(rows, columns=[*dict.fromkeys([*columns, *(rows[0] if rows else [])])])


def known_answer(swap_every_other: bool = True):
    """10 decisive human votes, night-grade winning 8; the judge agrees on 7, ties 1, disagrees on 2.

    Two human ties and one flagged human vote are there too, and must not count.
    """
    humans, judged = [], []
    for k in range(10):
        identity, night = outputs(k)
        winner, loser = (night, identity) if k < 8 else (identity, night)
        if swap_every_other and k % 2:
            humans.append(human_vote(k, loser, winner, "right"))
        else:
            humans.append(human_vote(k, winner, loser, "left"))
        verdict = "one" if k < 7 else "tie" if k == 7 else "other"
        judged.append(judge_vote("scripty", winner, loser, verdict))
    identity, night = outputs(10)
    humans.append(human_vote(10, identity, night, "tie"))
    humans.append(human_vote(11, identity, night, "both_bad"))
    humans.append(human_vote(12, identity, night, "left", flagged=True))
    judged.append(judge_vote("scripty", identity, night, "other"))
    return frame(humans), frame(judged)


def test_agreement_is_the_share_of_decisive_human_votes_the_judge_matches():
    humans, judged = known_answer()
    (row,) = judge_agreement(humans, judged).to_dict("records")
    assert list(judge_agreement(humans, judged).columns) == list(AGREEMENT_COLUMNS)
    assert row["task"] == "edit" and row["group"] is None
    assert (row["human_decisive"], row["matched"], row["exact"], row["fallback"]) == (10, 10, 10, 0)
    assert (row["agree"], row["disagree"], row["judge_tie"]) == (7, 2, 1)
    assert row["agreement"] == pytest.approx(0.7)
    assert row["decisive_agreement"] == pytest.approx(7 / 9)
    # Wilson's 95% interval for 7 of 10, by hand: centre (0.7 + z²/20) / (1 + z²/10).
    z = 1.959963984540054
    centre = (0.7 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.21 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (row["lower"], row["upper"]) == pytest.approx((centre - half, centre + half))


def test_swapped_sides_do_not_change_the_answer():
    """The judge's a/b is sha order; the battle's left/right is not: both spellings match."""
    swapped = judge_agreement(*known_answer(swap_every_other=True))
    straight = judge_agreement(*known_answer(swap_every_other=False))
    pd.testing.assert_frame_equal(swapped, straight)
    humans, judged = known_answer()
    assert (humans["image_left"] > humans["image_right"]).any()  # some battles are not in a/b order
    assert (judged["image_left"] < judged["image_right"]).all()


def test_unjudged_outputs_fall_back_to_the_judges_verdict_on_the_model_pair():
    humans, judged = [], []
    for k in range(4):  # the judge saw samples 0-3 and prefers night-grade 3 to 1
        identity, night = outputs(k)
        judged.append(judge_vote("scripty", identity, night, "other" if k < 3 else "one"))
    for k in range(4, 9):  # the humans voted on samples 4-8, which the judge never saw
        identity, night = outputs(k)
        humans.append(human_vote(k, identity, night, "right" if k < 8 else "left"))
    identity, night = outputs(9, ("identity", "night-grade"))
    other_challenge = human_vote(9, identity, night, "right", challenge="night-sky")
    (row,) = judge_agreement(frame([*humans, other_challenge]), frame(judged)).to_dict("records")
    assert (row["human_decisive"], row["matched"], row["exact"], row["fallback"]) == (6, 5, 0, 5)
    assert (row["agree"], row["disagree"], row["judge_tie"]) == (4, 1, 0)
    assert row["agreement"] == pytest.approx(0.8)


def test_a_split_judge_is_a_tie_and_nothing_judged_is_no_share():
    identity, night = outputs(0)
    humans = frame([human_vote(0, identity, night, "left")])
    split = frame(
        [
            judge_vote("scripty", identity, night, "one"),
            judge_vote("scripty", identity, night, "other", battle_id="c2"),
        ]
    )
    (row,) = judge_agreement(humans, split).to_dict("records")
    assert (row["matched"], row["judge_tie"], row["agree"]) == (1, 1, 0)
    elsewhere = frame([judge_vote("scripty", *outputs(1, ("flux", "gpt")), "one")])
    (row,) = judge_agreement(humans, elsewhere).to_dict("records")
    assert row["matched"] == 0 and math.isnan(row["agreement"]) and math.isnan(row["lower"])


def test_agreement_by_challenge_and_category():
    humans, judged = known_answer()
    humans.loc[humans.index[:4], "challenge"] = "night-sky"
    judged.loc[judged.index[:4], "challenge"] = "night-sky"
    rows = judge_agreement(humans, judged, by="challenge").set_index("group")
    assert rows.loc["night-sky", "human_decisive"] == 4 and rows.loc["night-sky", "agree"] == 4
    assert rows.loc["bald-man", "human_decisive"] == 6 and rows.loc["bald-man", "agree"] == 3
    (row,) = judge_agreement(humans, judged, by="category").to_dict("records")
    assert row["group"] == "portrait-edit" and row["agree"] == 7
    with pytest.raises(ValueError, match="by must be one of"):
        judge_agreement(humans, judged, by="route")


# --- Kendall's tau -------------------------------------------------------------------------------


def board(ratings: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"model": list(ratings), "rating": list(ratings.values())})


def test_tau_is_one_for_the_same_order_and_minus_one_reversed():
    human = board({"a": 1100, "b": 1000, "c": 900, "d": 800})
    same = board({"a": 1300, "b": 1010, "c": 1000, "d": 0, "judge-only": 5})
    reversed_ = board({"a": 700, "b": 800, "c": 900, "d": 1000})
    assert board_correlation(human, same)["tau"] == pytest.approx(1.0)
    assert board_correlation(human, same)["n_models"] == 4
    assert board_correlation(human, reversed_)["tau"] == pytest.approx(-1.0)
    one_swap = board({"a": 1000, "b": 1100, "c": 900, "d": 800})  # 5 of 6 pairs concordant
    assert board_correlation(human, one_swap)["tau"] == pytest.approx(4 / 6)
    lonely = board_correlation(human, board({"a": 1, "z": 2}))
    assert lonely["n_models"] == 1 and lonely["tau"] is None and lonely["p_value"] is None
    table = boards_correlation(
        {("edit", None): human}, {("edit", None): reversed_, ("x", None): human}
    )
    assert table.to_dict("records")[0]["tau"] == pytest.approx(-1.0) and len(table) == 1


@PROPERTY_SETTINGS
@given(st.lists(st.floats(-2000, 2000, allow_nan=False), min_size=2, max_size=12, unique=True))
def test_tau_of_a_board_with_itself_and_its_mirror(ratings):
    models = {f"m{k}": r for k, r in enumerate(ratings)}
    assert board_correlation(board(models), board(models))["tau"] == pytest.approx(1.0)
    mirror = {name: -r for name, r in models.items()}
    assert board_correlation(board(models), board(mirror))["tau"] == pytest.approx(-1.0)


# --- position bias -------------------------------------------------------------------------------


def calls(verdicts: dict[str, dict[str, str]], judge="scripty") -> pd.DataFrame:
    """Calls from {comparison: {order: verdict}}."""
    rows = [
        judge_call(judge, comparison, order, verdict)
        for comparison, asks in verdicts.items()
        for order, verdict in asks.items()
    ]
    return pd.DataFrame(rows).assign(id=range(1, len(rows) + 1), attempt=1)


def test_a_judge_that_always_picks_the_first_image_is_all_position():
    (row,) = judge_position_bias(
        calls({f"c{k}": {"ab": "a", "ba": "b"} for k in range(12)})
    ).to_dict("records")
    assert (row["judge"], row["task"], row["calls"], row["decisive"]) == ("scripty", "edit", 24, 24)
    assert row["first_share"] == 1.0 and row["first_lower"] > 0.8
    assert (row["comparisons"], row["consistent"], row["consistency"]) == (12, 0, 0.0)


def test_a_consistent_judge_has_no_position_bias():
    asks = {f"c{k}": {"ab": "a", "ba": "a"} if k % 2 else {"ab": "b", "ba": "b"} for k in range(10)}
    asks["tied"] = {"ab": "tie", "ba": "both_bad"}  # no winner either way: the orders agree
    asks["one-sided"] = {"ab": "a"}  # the other order never answered
    result = judge_position_bias(calls(asks))
    assert list(result.columns) == list(POSITION_BIAS_COLUMNS)
    (row,) = result.to_dict("records")
    assert (row["calls"], row["decisive"], row["first_wins"]) == (23, 21, 11)
    assert (row["comparisons"], row["consistent"], row["consistency"]) == (11, 11, 1.0)


def test_only_the_last_answered_attempt_of_an_ask_counts():
    rows = calls({"c0": {"ab": "a", "ba": "a"}})
    retried = pd.DataFrame(
        [
            judge_call("scripty", "c0", "ba", None, ok=False) | {"id": 3, "attempt": 1},
            judge_call("scripty", "c0", "ba", "b") | {"id": 4, "attempt": 2},
            judge_call("other", "c9", "ab", "a") | {"id": 5, "attempt": 1},
        ]
    )
    result = judge_position_bias(pd.concat([rows, retried], ignore_index=True))
    mine = result[result["judge"] == "scripty"].iloc[0]
    assert (mine["calls"], mine["first_wins"], mine["consistent"]) == (2, 2, 0)
    assert set(result["judge"]) == {"scripty", "other"}
    assert judge_position_bias(rows.iloc[:0]).empty


def test_position_bias_lists_the_tasks_in_the_boards_order():
    edit = calls({"c0": {"ab": "a", "ba": "a"}})
    text = calls({"c1": {"ab": "b", "ba": "b"}}).assign(task="text-to-image", id=[3, 4])
    result = judge_position_bias(pd.concat([edit, text], ignore_index=True))
    assert list(result["task"]) == ["text-to-image", "edit"]  # not alphabetical


# --- properties ----------------------------------------------------------------------------------

SAMPLES = 3
MODELS = ("m0", "m1", "m2")


@st.composite
def vote_sets(draw):
    """Human and judge votes over 3 models × 3 samples of one challenge, with random sides."""

    def votes(kind: str):
        picks = st.tuples(
            st.sampled_from(MODELS),
            st.sampled_from(MODELS),
            st.integers(0, SAMPLES - 1),
            st.integers(0, SAMPLES - 1),
            st.sampled_from(list(FLIP)),
        ).filter(lambda v: v[0] != v[1])
        rows = []
        for n, (one, other, k, j, outcome) in enumerate(draw(st.lists(picks, max_size=25))):
            rows.append(
                human_vote(n, (one, "p", f"{one}-{k}"), (other, "p", f"{other}-{j}"), outcome)
                | {"voter_kind": kind, "battle_id": f"{kind}{n}"}
            )
        return frame(rows)

    return votes("human"), votes("judge:x")


def flipped(votes: pd.DataFrame) -> pd.DataFrame:
    if votes.empty:
        return votes
    swap = {"model_left": "model_right", "model_right": "model_left"}
    swap |= {"image_left": "image_right", "image_right": "image_left"}
    swap |= {"provider_left": "provider_right", "provider_right": "provider_left"}
    return votes.rename(columns=swap).assign(outcome=votes["outcome"].map(FLIP))


@PROPERTY_SETTINGS
@given(vote_sets())
def test_agreement_counts_add_up_and_do_not_depend_on_sides(sets):
    humans, judged = sets
    result = judge_agreement(humans, judged)
    for row in result.to_dict("records"):
        assert row["matched"] == row["agree"] + row["disagree"] + row["judge_tie"]
        assert row["matched"] == row["exact"] + row["fallback"] <= row["human_decisive"]
        if row["matched"]:
            assert 0.0 <= row["lower"] <= row["agreement"] <= row["upper"] <= 1.0
    decisive = int(humans["outcome"].isin(["left", "right"]).sum()) if len(humans) else 0
    assert int(result["human_decisive"].sum()) == decisive
    pd.testing.assert_frame_equal(judge_agreement(flipped(humans), flipped(judged)), result)
    shuffled = judge_agreement(humans.iloc[::-1], judged.iloc[::-1])
    pd.testing.assert_frame_equal(shuffled, result)

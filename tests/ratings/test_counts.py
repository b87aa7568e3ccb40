"""Pair counts (vote rows with a `votes` column, what the store counts in SQL) fold into the same
Tally, boards and route comparisons as the votes they count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena.errors import VoteDataError
from arena.ratings import (
    RatingOptions,
    compare_routes,
    compare_routes_from_counts,
    compute_boards,
    compute_boards_from_counts,
    tally_counts,
    tally_votes,
)

KEYS = [
    "task",
    "category",
    "challenge",
    "model_left",
    "model_right",
    "provider_left",
    "provider_right",
    "outcome",
    "flagged",
]
VOTE = st.fixed_dictionaries(
    {
        "task": st.sampled_from(("text-to-image", "edit")),
        "category": st.sampled_from(("animals", "places")),
        "challenge": st.sampled_from(("cat", "dog", "bridge")),
        "model_left": st.sampled_from(("m0", "m1", "m2", "m3")),
        "model_right": st.sampled_from(("m0", "m1", "m2", "m3")),
        "provider_left": st.sampled_from(("p", "q")),
        "provider_right": st.sampled_from(("p", "q")),
        "outcome": st.sampled_from(("left", "right", "tie", "both_bad")),
        "flagged": st.sampled_from((False, False, True)),
    }
)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def count_rows(votes: pd.DataFrame) -> pd.DataFrame:
    """What read_pair_counts hands over: one row per distinct key, its number of votes."""
    return votes.groupby(KEYS, observed=True).size().rename("votes").reset_index()


def assert_same_tally(first, second) -> None:
    assert first.models.tolist() == second.models.tolist()
    assert first.i.tolist() == second.i.tolist() and first.j.tolist() == second.j.tolist()
    assert np.array_equal(first.outcomes, second.outcomes)  # exactly: whole numbers summed
    assert first.flagged == second.flagged


@SETTINGS
@given(rows=st.lists(VOTE, min_size=1, max_size=60), as_categories=st.booleans())
def test_counts_fold_into_the_votes_own_tally(rows, as_categories):
    votes = pd.DataFrame(rows)
    counts = count_rows(votes)
    if as_categories:  # how the store's lean read hands labels over
        labels = ["model_left", "model_right", "outcome"]
        counts = counts.astype(dict.fromkeys(labels, "category"))
    assert_same_tally(tally_counts(counts), tally_votes(votes))


@SETTINGS
@given(
    rows=st.lists(VOTE, min_size=1, max_size=60),
    by=st.sampled_from((None, "category", "challenge", "route")),
    options=st.sampled_from(
        (
            RatingOptions(intervals="closed_form"),
            RatingOptions(bootstrap_rounds=20, seed=1),
            RatingOptions(anchor="m1", intervals="closed_form"),
        )
    ),
)
def test_boards_and_route_tests_from_counts_equal_those_from_votes(rows, by, options):
    votes = pd.DataFrame(rows)
    counts = count_rows(votes)
    try:
        expected = compute_boards(votes, options, by=by)
    except VoteDataError as error:
        with pytest.raises(VoteDataError, match=str(error).replace("(", r"\(").replace(")", r"\)")):
            compute_boards_from_counts(counts, options, by=by)
        return
    boards = compute_boards_from_counts(counts, options, by=by)
    assert list(boards) == list(expected)
    for key, board in boards.items():
        pd.testing.assert_frame_equal(board, expected[key])
        assert board.attrs == expected[key].attrs
    if by == "route":
        pd.testing.assert_frame_equal(compare_routes_from_counts(counts), compare_routes(votes))


def test_duplicate_and_empty_count_rows():
    counts = pd.DataFrame(
        {
            "task": ["edit"] * 4,
            "model_left": ["a", "a", "b", "c"],
            "model_right": ["b", "b", "a", "a"],
            "outcome": ["left", "left", "tie", "right"],
            "flagged": [False, False, False, False],
            "votes": [2, 3, 1, 0],  # c has a row but no votes: it is on no board
        }
    )
    tally = tally_counts(counts)
    assert tally.models.tolist() == ["a", "b"]
    assert tally.outcomes.tolist() == [[5.0, 0.0, 1.0, 0.0]]
    (board,) = compute_boards_from_counts(counts, RatingOptions(intervals="closed_form")).values()
    assert board["model"].tolist() == ["a", "b"] and board["votes"].tolist() == [6, 6]


def test_flagged_counts_are_counted_as_flagged_votes():
    counts = pd.DataFrame(
        {
            "model_left": ["a", "a"],
            "model_right": ["b", "b"],
            "outcome": ["left", "right"],
            "flagged": [False, True],
            "votes": [4, 7],
        }
    )
    tally = tally_counts(counts)
    assert tally.flagged == 7 and tally.outcomes.tolist() == [[4.0, 0.0, 0.0, 0.0]]
    with pytest.raises(VoteDataError, match="all votes are flagged"):
        compute_boards_from_counts(counts.iloc[[1]])


@pytest.mark.parametrize(
    ("votes", "problem"),
    [(-1, "-1"), (1.5, "1.5"), (float("nan"), "nan"), ("x", "'x'")],
)
def test_a_count_that_is_no_whole_number_of_votes_is_refused_with_its_row(votes, problem):
    counts = pd.DataFrame(
        {"model_left": ["a", "a"], "model_right": ["b", "b"], "outcome": ["left", "left"]}
    ).assign(votes=pd.Series([1, votes], dtype=object))
    with pytest.raises(VoteDataError, match=rf"pair counts: row 2: votes must be .*{problem}"):
        tally_counts(counts)


def test_counts_need_their_count_column():
    votes = pd.DataFrame({"model_left": ["a"], "model_right": ["b"], "outcome": ["left"]})
    with pytest.raises(VoteDataError, match="missing column 'votes'"):
        compute_boards_from_counts(votes)

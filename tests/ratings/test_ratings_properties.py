"""Property tests (hypothesis): what a board must not depend on, and monotonicity in wins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from arena.ratings import RatingOptions, compute_board, tally_votes
from arena.ratings import bradley_terry as bt
from ratings.synth import votes_frame

MODELS = ["m0", "m1", "m2", "m3", "m4"]
FLIP = {"left": "right", "right": "left", "tie": "tie", "both_bad": "both_bad"}
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def vote_lists(draw, min_votes=1, max_votes=40):
    count = draw(st.integers(2, len(MODELS)))
    names = MODELS[:count]
    vote = st.tuples(
        st.sampled_from(names), st.sampled_from(names), st.sampled_from(list(FLIP))
    ).filter(lambda v: v[0] != v[1])
    return draw(st.lists(vote, min_size=min_votes, max_size=max_votes))


OPTION_SETS = st.sampled_from(
    [
        RatingOptions(intervals="closed_form"),
        RatingOptions(ties="drop", both_bad="drop", intervals="closed_form"),
        RatingOptions(ties="davidson", intervals="closed_form"),
        RatingOptions(bootstrap_rounds=40),
    ]
)


def assert_same_board(first: pd.DataFrame, second: pd.DataFrame, tolerance: float = 0.0) -> None:
    first, second = (
        board.assign(model=board["model"].astype(str)).set_index("model").sort_index()
        for board in (first, second)
    )
    numeric = ["rating", "lower", "upper"]
    np.testing.assert_allclose(
        first[numeric].to_numpy(float), second[numeric].to_numpy(float), rtol=0, atol=tolerance
    )
    same = ["rank", "votes", "wins", "losses", "ties", "both_bad", "preliminary", "note"]
    pd.testing.assert_frame_equal(first[same], second[same])


@PROPERTY_SETTINGS
@pytest.mark.slow
@given(votes=vote_lists(), options=OPTION_SETS, seed=st.integers(0, 2**32 - 1))
def test_invariant_to_vote_order(votes, options, seed):
    board = compute_board(votes_frame(votes), options)
    shuffled = [votes[k] for k in np.random.default_rng(seed).permutation(len(votes))]
    assert_same_board(board, compute_board(votes_frame(shuffled), options))


@PROPERTY_SETTINGS
@pytest.mark.slow
@given(votes=vote_lists(), options=OPTION_SETS)
def test_swapping_sides_with_flipped_outcomes_changes_nothing(votes, options):
    board = compute_board(votes_frame(votes), options)
    swapped = [(right, left, FLIP[outcome]) for left, right, outcome in votes]
    assert_same_board(board, compute_board(votes_frame(swapped), options))


@PROPERTY_SETTINGS
@pytest.mark.slow
@given(votes=vote_lists(), order=st.permutations(range(len(MODELS))))
def test_invariant_to_renaming_models(votes, order):
    # New names sort in a different order, so the fit sees the models permuted.
    rename = {name: f"x{order[k]}-{name}" for k, name in enumerate(MODELS)}
    options = RatingOptions(intervals="closed_form")
    board = compute_board(votes_frame(votes), options)
    renamed = compute_board(votes_frame([(rename[a], rename[b], o) for a, b, o in votes]), options)
    renamed["model"] = renamed["model"].str.split("-").str[1]
    assert_same_board(board, renamed, tolerance=1e-6)


def mle_exists_for(votes) -> bool:
    tally = tally_votes(votes_frame(votes))
    counts = tally.pair_counts(RatingOptions())
    return bt.group_models(counts)[0] == 1 and bt.mle_exists(counts)


@PROPERTY_SETTINGS
@pytest.mark.slow
@given(votes=vote_lists(min_votes=3), data=st.data())
def test_more_wins_never_lower_a_rating(votes, data):
    """Turning one of a model's losses into a win, or adding a win, never lowers its rating.

    Limited to boards where the maximum-likelihood ratings exist before and after: where they do
    not, the prior that holds them finite is flagged and the property is about the prior instead.
    """
    model = data.draw(st.sampled_from(sorted({v[0] for v in votes} | {v[1] for v in votes})))
    losses = [
        k
        for k, (a, b, o) in enumerate(votes)
        if (a == model and o == "right") or (b == model and o == "left")
    ]
    opponent = data.draw(
        st.sampled_from(sorted({v[0] for v in votes} | {v[1] for v in votes} - {model}))
    )
    changed = [list(votes) + [(model, opponent, "left")]]
    if losses:
        k = data.draw(st.sampled_from(losses))
        changed.append(votes[:k] + [(votes[k][0], votes[k][1], FLIP[votes[k][2]])] + votes[k + 1 :])
    assume(mle_exists_for(votes))
    options = RatingOptions(intervals="closed_form")
    before = compute_board(votes_frame(votes), options).set_index("model")["rating"]
    for after_votes in changed:
        if mle_exists_for(after_votes):
            after = compute_board(votes_frame(after_votes), options).set_index("model")["rating"]
            assert after[model] >= before[model] - 1e-7
            # Against every other model its rating gap widens too.
            assert (
                (after[model] - after).sort_index() >= (before[model] - before).sort_index() - 1e-7
            ).all()


@PROPERTY_SETTINGS
@pytest.mark.slow
@given(votes=vote_lists())
def test_every_rating_is_finite_and_intervals_are_ordered(votes):
    """Closed-form intervals always hold the rating; percentile bootstrap bounds need not on a
    handful of votes (the resamples can sit mostly on one side), but they stay ordered."""
    closed = compute_board(votes_frame(votes), RatingOptions(intervals="closed_form"))
    boot = compute_board(votes_frame(votes), RatingOptions(bootstrap_rounds=30))
    for board in (closed, boot):
        assert np.isfinite(board["rating"]).all()
        bounded = board["lower"].notna()
        assert (board.loc[bounded, "lower"] <= board.loc[bounded, "upper"]).all()
        assert ((board["rank"] >= 1) & (board["rank"] <= len(board))).all()
    bounded = closed["lower"].notna()
    assert (closed.loc[bounded, "lower"] <= closed.loc[bounded, "rating"] + 1e-6).all()
    assert (closed.loc[bounded, "rating"] <= closed.loc[bounded, "upper"] + 1e-6).all()


@pytest.mark.parametrize("ties", ["half", "davidson"])
def test_fit_converges_on_random_boards(ties):
    rng = np.random.default_rng(11)
    for _ in range(20):
        strengths = rng.normal(0, 1.2, 6)
        i, j = np.triu_indices(6, 1)
        n = rng.integers(5, 60, len(i)).astype(float)
        p = 1 / (1 + np.exp(strengths[j] - strengths[i]))
        wins_i = rng.binomial(n.astype(int), 0.7 * p).astype(float)
        ties_ = rng.binomial((n - wins_i).astype(int), 0.3).astype(float)
        counts = bt.PairCounts(6, i, j, wins_i, n - wins_i - ties_, ties_)
        if not bt.mle_exists(counts):
            continue
        fit = bt.fit(counts, davidson=ties == "davidson")
        assert fit.max_abs_gradient <= 1e-6 and fit.iterations < 30

"""Boards from the votes counted in SQL (store.read_pair_counts) equal the boards from the vote
rows (store.read_votes, the DataFrame path) on the same votes, with every filter, on SQLite and
PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.store import add_votes

from arena import store
from arena.errors import VoteDataError
from arena.ratings import (
    RatingOptions,
    compare_routes,
    compare_routes_from_counts,
    compute_boards,
    compute_boards_from_counts,
)
from arena.store.tables import Vote

MODELS = ("m0", "m1", "m2", "m3")
CHALLENGES = {"cat": "animals", "dog": "animals", "bridge": "places"}  # challenge -> category
VOTER_KINDS = ("human", "judge:a", "judge:b")
OPTION_SETS = (
    RatingOptions(intervals="closed_form"),
    RatingOptions(bootstrap_rounds=30, seed=3),
    RatingOptions(anchor="m0", intervals="closed_form"),
    RatingOptions(ties="davidson", both_bad="drop", intervals="closed_form"),
)
BOARD_NUMBERS = ["rating", "lower", "upper", "win_rate"]
BOARD_FACTS = ["rank", "votes", "wins", "losses", "ties", "both_bad", "preliminary", "group"]


def vote_row(k: int, values: tuple) -> dict:
    task, challenge, left, right, left_provider, right_provider, outcome, flagged, kind = values
    return {
        "battle_id": f"b{k}",
        "challenge": challenge,
        "task": task,
        "category": CHALLENGES[challenge],
        "model_left": left,
        "model_right": right,
        "provider_left": left_provider,
        "provider_right": right_provider,
        "outcome": outcome,
        "voter": f"v{k % 3}",
        "flagged": flagged,
        "flag_reason": "too fast" if flagged else None,
        "voter_kind": kind,
    }


VOTE = st.tuples(
    st.sampled_from(("text-to-image", "edit")),
    st.sampled_from(sorted(CHALLENGES)),
    st.sampled_from(MODELS),
    st.sampled_from(MODELS),  # the same model on both sides: a judge comparing two of its routes
    st.sampled_from(("p", "q", "")),
    st.sampled_from(("p", "q")),
    st.sampled_from(("left", "right", "tie", "both_bad")),
    st.sampled_from((False, False, False, True)),  # flagged
    st.sampled_from(VOTER_KINDS),
)


def fill(engine: sa.Engine, rows: list[dict]) -> None:
    with engine.begin() as conn:
        conn.execute(Vote.__table__.delete())
    add_votes(engine, rows)


def boards_or_error(compute, frame, options, by):
    try:
        return compute(frame, options, by=by)
    except VoteDataError as error:
        return str(error)


def assert_same_boards(from_counts, from_rows, tolerance_elo: float = 0.01) -> None:
    if isinstance(from_rows, str):  # nothing to rate: the same error, word for word
        assert from_counts == from_rows
        return
    assert not isinstance(from_counts, str), from_counts
    assert list(from_counts) == list(from_rows)
    for key, rows_board in from_rows.items():
        board = from_counts[key]
        assert board["model"].astype(str).tolist() == rows_board["model"].astype(str).tolist()
        np.testing.assert_allclose(
            board[BOARD_NUMBERS].to_numpy(float),
            rows_board[BOARD_NUMBERS].to_numpy(float),
            rtol=0,
            atol=tolerance_elo,
        )
        pd.testing.assert_frame_equal(
            board[BOARD_FACTS].reset_index(drop=True),
            rows_board[BOARD_FACTS].reset_index(drop=True),
        )
        assert board["note"].tolist() == rows_board["note"].tolist()
        assert board.attrs == rows_board.attrs


@pytest.fixture
def engine(db_url):
    """One engine for all of a property test's examples (each refills the vote table)."""
    engine = store.open_engine(db_url)
    yield engine
    engine.dispose()


def rows_path(engine, voters, task):
    """The DataFrame path, as `arena ratings` read the store before: every row, then the filters."""
    votes = store.read_votes(engine, extra_columns=True, voters=voters)
    return votes[votes["task"] == task] if task else votes


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    votes=st.lists(VOTE, min_size=1, max_size=50),
    voters=st.sampled_from(("humans", "judges", "all", "judge:a")),
    task=st.sampled_from((None, "text-to-image", "edit")),
    by=st.sampled_from((None, "category", "challenge", "route")),
    options=st.sampled_from(OPTION_SETS),
)
def test_boards_from_sql_counts_equal_boards_from_the_vote_rows(
    engine, votes, voters, task, by, options
):
    fill(engine, [vote_row(k, values) for k, values in enumerate(votes)])
    counts = store.read_pair_counts(engine, voters=voters, by=by, task=task)
    rows = rows_path(engine, voters, task)
    assert int(counts["votes"].sum()) == len(rows)
    assert int(counts.loc[counts["flagged"], "votes"].sum()) == int(rows["flagged"].sum())
    assert_same_boards(
        boards_or_error(compute_boards_from_counts, counts, options, by),
        boards_or_error(compute_boards, rows, options, by),
    )
    if by == "route":
        pd.testing.assert_frame_equal(compare_routes_from_counts(counts), compare_routes(rows))


def test_the_counts_say_what_the_sql_counted(engine):
    rows = [
        ("edit", "cat", "m0", "m1", "p", "q", "left", False, "human"),
        ("edit", "dog", "m0", "m1", "p", "p", "left", False, "human"),
        ("edit", "dog", "m0", "m1", "p", "p", "left", True, "human"),
        ("edit", "cat", "m1", "m0", "q", "p", "tie", False, "human"),
        ("text-to-image", "bridge", "m2", "m0", "p", "q", "right", False, "human"),
        ("edit", "cat", "m0", "m1", "p", "q", "left", False, "judge:a"),
    ]
    fill(engine, [vote_row(k, values) for k, values in enumerate(rows)])
    counts = store.read_pair_counts(engine)
    keyed = {
        tuple(r[:5]): r[5]
        for r in counts[
            ["task", "model_left", "model_right", "outcome", "flagged", "votes"]
        ].itertuples(index=False)
    }
    assert keyed == {
        ("edit", "m0", "m1", "left", False): 2,  # two challenges, one count
        ("edit", "m0", "m1", "left", True): 1,  # flagged apart
        ("edit", "m1", "m0", "tie", False): 1,  # sides as voted: the ratings fold them
        ("text-to-image", "m2", "m0", "right", False): 1,
    }  # and the judge's vote is not a human's
    assert counts["votes"].dtype == np.int64 and counts["flagged"].dtype == bool
    by_challenge = store.read_pair_counts(engine, by="challenge", task="edit")
    assert set(by_challenge["task"]) == {"edit"}
    assert sorted(by_challenge.loc[~by_challenge["flagged"], "challenge"]) == ["cat", "cat", "dog"]
    routes = store.read_pair_counts(engine, voters="judge:a", by="route")
    assert routes[["provider_left", "provider_right", "votes"]].values.tolist() == [["p", "q", 1]]
    assert store.read_pair_counts(engine, voters="judge:b").empty
    assert list(store.read_pair_counts(engine, voters="judge:b").columns) == list(counts.columns)
    assert store.count_votes(engine, "challenge") == {"cat": 2, "dog": 1, "bridge": 1}
    assert store.count_votes(engine, "challenge", voters="all") == {"cat": 3, "dog": 1, "bridge": 1}
    with pytest.raises(ValueError, match="by must be one of"):
        store.read_pair_counts(engine, by="voter")


@pytest.mark.slow
def test_published_boards_from_sql_equal_the_rows_on_a_larger_store(engine):
    """The default options (1,000 bootstrap rounds) on a few thousand votes of eight models."""
    rng = np.random.default_rng(7)
    strengths = rng.normal(0, 0.8, 8)
    n = 3000
    left = rng.integers(0, 8, n)
    right = (left + rng.integers(1, 8, n)) % 8
    win = rng.random(n) < 1 / (1 + np.exp(strengths[right] - strengths[left]))
    draw = rng.random(n)
    outcome = np.where(
        draw < 0.15, "tie", np.where(draw < 0.2, "both_bad", np.where(win, "left", "right"))
    )
    rows = [
        vote_row(
            k,
            (
                "edit" if k % 3 == 0 else "text-to-image",
                sorted(CHALLENGES)[k % 3],
                f"model-{left[k]}",
                f"model-{right[k]}",
                "p",
                "q",
                str(outcome[k]),
                bool(rng.random() < 0.02),
                "human" if k % 10 else "judge:a",
            ),
        )
        for k in range(n)
    ]
    add_votes(engine, rows)
    from_counts = compute_boards_from_counts(store.read_pair_counts(engine))
    from_rows = compute_boards(store.read_votes(engine))
    assert_same_boards(from_counts, from_rows)
    for board in from_counts.values():  # and the bootstrap really ran: intervals of some width
        assert (board["upper"] - board["lower"]).min() > 5

"""Property tests (hypothesis): the fast head-to-head and online Elo equal the slow oracles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena.ratings import RatingOptions, count_records, elo_series, head_to_head, online_elo

from . import oracles

# Names that sort differently as text than by their number, and one with a space.
MODELS = ["m10", "m9", "Zeta", "alpha", "b b", "m1"]
OUTCOMES = ["left", "right", "tie", "both_bad"]
CHALLENGES = ["c2", "c10", "c1"]
PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
START = datetime(2025, 3, 1, tzinfo=UTC)


@st.composite
def vote_frames(draw, max_votes: int = 60) -> pd.DataFrame:
    """Canonical votes among 2 to 6 models: any outcome, some flagged, coarse or missing times."""
    names = MODELS[: draw(st.integers(2, len(MODELS)))]
    pair = st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True)
    vote = st.tuples(
        pair,
        st.sampled_from(OUTCOMES),
        st.sampled_from(CHALLENGES),
        st.booleans() if draw(st.booleans()) else st.just(False),  # flagged in some frames
        st.one_of(st.none(), st.integers(0, 5)),  # seconds; few values, so times often tie
    )
    rows = draw(st.lists(vote, min_size=1, max_size=max_votes))
    frame = pd.DataFrame(
        {
            "battle_id": [f"b{k}" for k in range(len(rows))],
            "challenge": [challenge for _, _, challenge, _, _ in rows],
            "category": [f"cat-{challenge[-1]}" for _, _, challenge, _, _ in rows],
            "model_left": [models[0] for models, *_ in rows],
            "model_right": [models[1] for models, *_ in rows],
            "outcome": [outcome for _, outcome, *_ in rows],
            "created_at": pd.to_datetime(
                [None if s is None else START + timedelta(seconds=s) for *_, s in rows], utc=True
            ),
            "flagged": [flagged for _, _, _, flagged, _ in rows],
        }
    )
    if draw(st.booleans()):  # labels as the store hands them over
        for name in ("challenge", "category", "model_left", "model_right", "outcome"):
            frame[name] = frame[name].astype("category")
    return frame


def _models(votes: pd.DataFrame) -> list[str]:
    return sorted({*map(str, votes["model_left"]), *map(str, votes["model_right"])}) + ["nobody"]


@PROPERTY_SETTINGS
@given(votes=vote_frames(), by=st.sampled_from(["challenge", "category", None]))
def test_head_to_head_is_the_oracles(votes, by):
    for model in _models(votes):
        fast, slow = head_to_head(votes, model, by=by), oracles.head_to_head(votes, model, by=by)
        assert list(fast.columns) == list(slow.columns)
        if slow.empty:
            assert fast.empty
            continue
        pd.testing.assert_frame_equal(fast, slow, check_dtype=False)


@PROPERTY_SETTINGS
@given(votes=vote_frames())
def test_records_per_opponent_and_per_challenge_sum_the_oracles(votes):
    records = count_records(votes, by="challenge")
    per_opponent = dict(records.per_model(["opponent"]))
    per_challenge = dict(records.per_model(["challenge"]))
    counts = ["votes", "wins", "losses", "ties", "both_bad"]
    rated = votes[~votes["flagged"]]
    assert sorted(per_opponent) == sorted(
        {*map(str, rated["model_left"]), *map(str, rated["model_right"])}
    )
    for model, table in per_opponent.items():
        slow = oracles.head_to_head(votes, model, by=None)
        pd.testing.assert_frame_equal(table, slow, check_dtype=False)
        by_challenge = oracles.head_to_head(votes, model).groupby("challenge")[counts].sum()
        mine = per_challenge[model].set_index("challenge")
        assert list(mine.index) == sorted(
            by_challenge.index, key=lambda c: (-by_challenge.loc[c, "votes"], c)
        )
        pd.testing.assert_frame_equal(
            mine[counts], by_challenge.loc[mine.index], check_dtype=False, check_names=False
        )


@PROPERTY_SETTINGS
@given(
    votes=vote_frames(),
    options=st.sampled_from(
        [
            RatingOptions(),
            RatingOptions(ties="drop"),
            RatingOptions(both_bad="drop"),
            RatingOptions(ties="davidson"),
        ]
    ),
    k=st.sampled_from([4.0, 32.0]),
)
def test_online_elo_is_the_oracles(votes, options, k):
    fast = online_elo(votes, k=k, initial_rating=1500.0, options=options)
    slow = oracles.online_elo(votes, k=k, initial_rating=1500.0, options=options)
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    series = elo_series(votes, _models(votes), k=k, initial_rating=1500.0, options=options)
    assert sorted(series) == sorted(set(slow["model"]))
    for model, rows in series.items():
        expected = slow[slow["model"] == model].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, expected[["created_at", "rating"]], check_exact=True)


def test_one_model_without_opponents_and_all_flagged_votes_give_empty_results():
    votes = pd.DataFrame(
        {
            "model_left": ["a", "a"],
            "model_right": ["b", "c"],
            "outcome": ["left", "tie"],
            "challenge": ["c1", "c1"],
            "flagged": [True, True],
        }
    )
    assert head_to_head(votes, "a").empty and oracles.head_to_head(votes, "a").empty
    assert list(head_to_head(votes, "a").columns) == list(oracles.head_to_head(votes, "a").columns)
    assert list(count_records(votes).per_model(["opponent"])) == []
    assert online_elo(votes).empty and elo_series(votes, ["a"]) == {}


@pytest.mark.parametrize("models", [2, 40])
def test_many_votes_among_many_models_agree(models):
    rng = np.random.default_rng(models)
    n = 5000
    names = np.array([f"model-{k:02d}" for k in range(models)], dtype=object)
    left = rng.integers(0, models, n)
    right = (left + rng.integers(1, models, n)) % models
    votes = pd.DataFrame(
        {
            "battle_id": [f"b{k}" for k in range(n)],
            "challenge": rng.choice(CHALLENGES, n),
            "model_left": names[left],
            "model_right": names[right],
            "outcome": rng.choice(OUTCOMES, n),
            "created_at": START + pd.to_timedelta(rng.integers(0, 300, n), unit="s"),
            "flagged": rng.random(n) < 0.05,
        }
    )
    for model in names[:5]:
        pd.testing.assert_frame_equal(
            head_to_head(votes, model), oracles.head_to_head(votes, model), check_dtype=False
        )
    for options in (RatingOptions(), RatingOptions(ties="drop"), RatingOptions(both_bad="drop")):
        pd.testing.assert_frame_equal(
            online_elo(votes, options=options),
            oracles.online_elo(votes, options=options),
            check_exact=True,
        )

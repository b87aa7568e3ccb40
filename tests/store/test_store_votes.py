"""Votes in the store: written once per battle, read back as the canonical vote frame, on both databases."""

from __future__ import annotations

import pytest
from support.store import add_votes

from arena import store
from arena.errors import StoreError
from arena.ratings.frames import CANONICAL_COLUMNS, check_vote_frame


def _vote(i, outcome="left", flagged=False):
    return {
        "battle_id": f"b{i}",
        "challenge": "bald-man",
        "task": "edit",
        "category": "portrait-edit",
        "model_left": "a",
        "model_right": "b",
        "provider_left": "p",
        "provider_right": "q",
        "outcome": outcome,
        "voter": "v1",
        "flagged": flagged,
    }


def test_votes_round_trip_as_the_canonical_frame(db_url):
    engine = store.open_engine(db_url)
    assert store.read_votes(engine).empty
    add_votes(engine, [_vote(1), _vote(2, "tie"), _vote(3, "both_bad", flagged=True)])
    frame = store.read_votes(engine)
    assert list(frame.columns) == list(CANONICAL_COLUMNS)
    assert frame["outcome"].tolist() == ["left", "tie", "both_bad"]
    assert frame["flagged"].tolist() == [False, False, True]
    assert str(frame["created_at"].dt.tz) == "UTC"
    check_vote_frame(frame)  # what the ratings engine accepts
    assert store.read_votes(engine, include_flagged=False)["battle_id"].tolist() == ["b1", "b2"]


def test_a_battle_takes_one_vote(db_url):
    engine = store.open_engine(db_url)
    add_votes(engine, [_vote(1)])
    with pytest.raises(StoreError, match="vote rejected"):
        add_votes(engine, [_vote(1, "right")])
    assert store.read_votes(engine)["outcome"].tolist() == ["left"]


def test_the_lean_read_holds_the_default_reads_values(db_url):
    import pandas as pd

    engine = store.open_engine(db_url)
    assert store.read_votes(engine, labels_as_categories=True).empty
    add_votes(engine, [_vote(1), _vote(2, "tie"), _vote(3, "both_bad", flagged=True)])
    for kwargs in (
        {},
        {"include_flagged": False},
        {"extra_columns": True},
        {"columns": ["created_at", "outcome"]},
    ):
        lean, default = (
            store.read_votes(engine, labels_as_categories=True, **kwargs),
            store.read_votes(engine, **kwargs),
        )
        assert list(lean.columns) == list(default.columns)
        assert isinstance(lean["outcome"].dtype, pd.CategoricalDtype)
        labels = [c for c in lean.columns if isinstance(lean[c].dtype, pd.CategoricalDtype)]
        plain = lean.assign(
            **{c: lean[c].astype(object).where(lean[c].notna(), None) for c in labels}
        )
        if "dwell_ms" in plain:
            default["dwell_ms"] = default["dwell_ms"].astype(
                float
            )  # all NULL: None in the default read
        pd.testing.assert_frame_equal(plain, default, check_dtype=False)
    with pytest.raises(ValueError, match="no column"):
        store.read_votes(engine, columns=["nope"])


def test_the_lean_read_of_labels_holding_its_join_character(db_url):
    engine = store.open_engine(db_url)
    odd = {**_vote(1), "challenge": "a\x1fb", "model_left": "x\x1f"}
    add_votes(engine, [odd, _vote(2)])
    lean = store.read_votes(engine, labels_as_categories=True)
    assert lean["challenge"].astype(str).tolist() == ["a\x1fb", "bald-man"]
    assert lean["model_left"].astype(str).tolist() == ["x\x1f", "a"]
    assert lean["model_right"].astype(str).tolist() == ["b", "b"]

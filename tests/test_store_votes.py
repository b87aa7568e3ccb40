"""Votes in the store: written once per battle, read back as the canonical vote frame, on both databases."""

from __future__ import annotations

import pytest

from arena import store
from arena.errors import StoreError
from arena.votes import CANONICAL_COLUMNS, check_vote_frame


def _vote(i, outcome="left", flagged=False):
    return {"battle_id": f"b{i}", "challenge": "bald-man", "task": "edit", "category": "portrait-edit",
            "model_left": "a", "model_right": "b", "provider_left": "p", "provider_right": "q",
            "outcome": outcome, "voter": "v1", "flagged": flagged}


def test_votes_round_trip_as_the_canonical_frame(db_url):
    engine = store.open_engine(db_url)
    assert store.read_votes(engine).empty
    store.add_votes(engine, [_vote(1), _vote(2, "tie"), _vote(3, "both_bad", flagged=True)])
    frame = store.read_votes(engine)
    assert list(frame.columns) == list(CANONICAL_COLUMNS)
    assert frame["outcome"].tolist() == ["left", "tie", "both_bad"]
    assert frame["flagged"].tolist() == [False, False, True]
    assert str(frame["created_at"].dt.tz) == "UTC"
    check_vote_frame(frame)  # what the ratings engine accepts
    assert store.read_votes(engine, include_flagged=False)["battle_id"].tolist() == ["b1", "b2"]


def test_a_battle_takes_one_vote(db_url):
    engine = store.open_engine(db_url)
    store.add_votes(engine, [_vote(1)])
    with pytest.raises(StoreError, match="vote rejected"):
        store.add_votes(engine, [_vote(1, "right")])
    assert store.read_votes(engine)["outcome"].tolist() == ["left"]

"""Judge calls and voter kinds read back from the store, on both databases."""

from __future__ import annotations

import pandas as pd
from support.judged import add_judge_calls, human_vote, judge_call, judge_vote
from support.store import add_votes

from arena import store
from arena.store.frames import JUDGE_CALL_COLUMNS


def test_judge_calls_round_trip_in_id_order_and_by_judge(db_url):
    engine = store.open_engine(db_url)
    empty = store.read_judge_calls(engine)
    assert empty.empty and list(empty.columns) == JUDGE_CALL_COLUMNS
    add_judge_calls(
        engine,
        [
            judge_call("gpt4o", "c1", "ab", "a", attempt=1),
            judge_call("gpt4o", "c1", "ba", None, ok=False, attempt=1),
            judge_call("gemini", "c1", "ab", "tie"),
            judge_call("gpt4o", "c1", "ba", "b", attempt=2, cost_usd=None),
        ],
    )
    calls = store.read_judge_calls(engine)
    assert list(calls.columns) == JUDGE_CALL_COLUMNS
    assert calls["id"].is_monotonic_increasing and len(calls) == 4
    assert calls["ok"].dtype == bool and calls["ok"].tolist() == [True, False, True, True]
    assert str(calls["started_at"].dt.tz) == "UTC"
    assert calls["verdict"].tolist()[0] == "a" and pd.isna(calls["verdict"].tolist()[1])
    assert calls.loc[1, "failure_class"] == "timeout" and calls.loc[0, "duration_ms"] == 850.0
    mine = store.read_judge_calls(engine, "gpt4o")
    assert mine["attempt"].tolist() == [1, 1, 2] and set(mine["judge"]) == {"gpt4o"}
    assert store.read_judge_calls(engine, "judge:gpt4o")["id"].tolist() == mine["id"].tolist()
    assert store.read_judge_calls(engine, "nobody").empty


def test_voter_kinds_name_who_voted(db_url):
    engine = store.open_engine(db_url)
    assert store.voter_kinds(engine) == []
    one = ("identity", "local", "identity-0")
    other = ("night-grade", "local", "night-0")
    add_votes(
        engine,
        [
            human_vote(1, one, other, "left"),
            human_vote(2, other, one, "right"),
            judge_vote("gpt4o", one, other, "one"),
            judge_vote("gemini", one, other, "tie"),
        ],
    )
    assert store.voter_kinds(engine) == ["human", "judge:gemini", "judge:gpt4o"]
    judged = store.read_votes(engine, extra_columns=True, voters="judge:gpt4o")
    (row,) = judged.to_dict("records")
    assert row["image_left"] < row["image_right"] and row["provider_left"] == "local"

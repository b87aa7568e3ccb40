"""store.judging on SQLite and PostgreSQL: calls kept, votes idempotent, progress read back, and
judges' votes out of the human board."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from arena import store
from arena.store.judging import combined_outcome
from arena.store.tables import JudgeCall, Vote

A, B = "a" * 64, "b" * 64
COMPARISON = {
    "challenge": "bald-man",
    "task": "edit",
    "category": "portrait-edit",
    "model_a": "cartoon-filter",
    "provider_a": "local",
    "image_a": A,
    "model_b": "night-grade",
    "provider_b": "local",
    "image_b": B,
}


def _call(order: str, ok: bool, verdict: str | None = None, **extra) -> dict:
    return {
        "judge": "j",
        "model_id": "m",
        "comparison": store.comparison_id("j", "bald-man", A, B),
        "order": order,
        **COMPARISON,
        "ok": ok,
        "verdict": verdict,
        **extra,
    }


def test_the_comparison_id_is_the_brief_s_hash_in_either_order():
    import hashlib

    expected = hashlib.sha256(f"j\nbald-man\n{A}\n{B}".encode()).hexdigest()
    assert store.comparison_id("j", "bald-man", A, B) == expected
    assert store.comparison_id("j", "bald-man", B, A) == expected
    assert store.comparison_id("k", "bald-man", A, B) != expected


@pytest.mark.parametrize(
    ("ab", "ba", "outcome"),
    [
        ("a", "a", "left"),
        ("b", "b", "right"),
        ("a", "b", "tie"),  # a position-biased judge: the first shown won both times
        ("b", "a", "tie"),
        ("tie", "a", "tie"),
        ("both_bad", "both_bad", "both_bad"),
        ("both_bad", "b", "tie"),
    ],
)
def test_the_swap_rule(ab, ba, outcome):
    assert combined_outcome(ab, ba) == outcome


def test_calls_are_kept_and_progress_reads_paid_verdicts_and_finished_comparisons(db_url):
    engine = store.open_engine(db_url)
    key = store.comparison_id("j", "bald-man", A, B)
    store.record_judge_call(
        engine, _call("ab", False, failure_class="rate_limited", status_code=429)
    )
    store.record_judge_call(engine, _call("ab", True, "a", reason="sharper", cost_usd=0.01))
    progress = store.judge_progress(engine, "j")
    assert progress.verdicts == {(key, "ab"): ("a", "sharper")}
    assert progress.calls == {(key, "ab"): 2} and progress.finished == set()
    assert store.judge_progress(engine, "other").verdicts == {}
    store.record_judge_call(engine, _call("ba", True, "a", reason="more hair"))
    assert store.record_judge_vote(
        engine, judge="j", comparison=COMPARISON, ab=("a", "sharper"), ba=("a", "more hair")
    )
    assert store.judge_progress(engine, "j").finished == {key}
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(JudgeCall.__table__)).scalar() == 3
        )
        vote = conn.execute(sa.select(Vote.__table__)).one()
    assert vote.battle_id == key and vote.outcome == "left"
    assert (vote.model_left, vote.image_left, vote.model_right) == (
        "cartoon-filter",
        A,
        "night-grade",
    )
    assert vote.voter == vote.voter_kind == "judge:j" and vote.flagged is False
    assert vote.reason == "ab: sharper | ba: more hair" and vote.category == "portrait-edit"
    calls = store.read_judge_calls(engine, "j")
    assert calls["order"].tolist() == ["ab", "ab", "ba"] and calls["ok"].tolist() == [
        False,
        True,
        True,
    ]
    assert calls["verdict"].tolist()[1:] == ["a", "a"] and str(calls["started_at"].dt.tz) == "UTC"
    assert calls["failure_class"].tolist()[0] == "rate_limited"
    assert store.read_judge_calls(engine, "other").empty
    assert "comparison" in store.read_judge_calls(engine, "other").columns


def test_a_vote_is_stored_once_however_often_or_concurrently_it_is_written(db_url):
    engine = store.open_engine(db_url)
    args = {"judge": "j", "comparison": COMPARISON, "ab": ("b", ""), "ba": ("b", "")}
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def write():
        barrier.wait()
        results.append(store.record_judge_vote(engine, **args))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert store.record_judge_vote(engine, **args) is False
    judged = store.read_votes(engine, voters="judge:j")
    assert len(judged) == 1 and judged["outcome"].tolist() == ["right"]
    assert store.read_votes(engine).empty  # the human board never sees it
    assert len(store.read_votes(engine, voters="judges")) == 1


def test_bad_rows_are_refused_before_the_database(db_url):
    engine = store.open_engine(db_url)
    with pytest.raises(ValueError, match="ab or ba"):
        store.record_judge_call(engine, _call("ac", True, "a"))
    with pytest.raises(ValueError, match="verdict"):
        store.record_judge_call(engine, _call("ab", True, "first"))
    swapped = {**COMPARISON, "image_a": B, "image_b": A}
    with pytest.raises(ValueError, match="sorts before"):
        store.record_judge_vote(engine, judge="j", comparison=swapped, ab=("a", ""), ba=("a", ""))

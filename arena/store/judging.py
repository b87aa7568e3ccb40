"""Judges' records: every call to a judge (judge_calls) and the vote each finished comparison becomes.

A comparison is two outputs of one challenge, `a` and `b` in sha256 order; its id (comparison_id)
is the vote's battle_id, so the database's unique battle_id makes the vote idempotent: a rerun, or
a second `arena judge` running at the same time, never stores it twice. The judge's two calls
("ab": a shown first, "ba": b first) are kept whatever became of them; judge_progress reads back
which comparisons are finished and which orders already have a verdict, so a resume pays for
neither again. The calls are read back for the figures that need them (a judge's position bias,
its cost and timings) by frames.read_judge_calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa

from arena.store.tables import JudgeCall, Vote, utcnow
from arena.store.writer import insert_ignoring_duplicates

ORDERS = ("ab", "ba")
CALL_VERDICTS = ("a", "b", "tie", "both_bad")  # a judge_calls row's verdict, in comparison terms


def comparison_id(judge: str, challenge: str, image_a: str, image_b: str) -> str:
    """The comparison's id (sha256 hex) for judge NAME; the images in either order give the same."""
    low, high = sorted((image_a, image_b))
    return hashlib.sha256(f"{judge}\n{challenge}\n{low}\n{high}".encode()).hexdigest()


def combined_outcome(ab: str, ba: str) -> str:
    """The vote of a comparison from its two calls' verdicts (a/b/tie/both_bad): the same winner
    both times wins ("left" is a, "right" is b), both_bad twice is both_bad, anything else a tie."""
    if ab == ba == "a":
        return "left"
    if ab == ba == "b":
        return "right"
    if ab == ba == "both_bad":
        return "both_bad"
    return "tie"


@dataclass
class JudgeProgress:
    """What one judge has done: comparisons with a stored vote, and paid verdicts by order."""

    finished: set[str] = field(default_factory=set)
    verdicts: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    # (comparison, order) -> (verdict, reason) of its latest successful call
    calls: dict[tuple[str, str], int] = field(default_factory=dict)  # attempts recorded so far


def judge_progress(engine: sa.Engine, judge: str) -> JudgeProgress:
    """`judge` is the judge's name; its votes are those of voter kind judge:NAME."""
    votes, calls = Vote.__table__, JudgeCall.__table__
    progress = JudgeProgress()
    with engine.connect() as conn:
        progress.finished = set(
            conn.execute(
                sa.select(votes.c.battle_id).where(votes.c.voter_kind == f"judge:{judge}")
            ).scalars()
        )
        rows = conn.execute(
            sa.select(
                calls.c.comparison, calls.c.order, calls.c.ok, calls.c.verdict, calls.c.reason
            )
            .where(calls.c.judge == judge)
            .order_by(calls.c.id)
        )
        for row in rows:
            key = (row.comparison, row.order)
            progress.calls[key] = progress.calls.get(key, 0) + 1
            if row.ok:
                progress.verdicts[key] = (row.verdict, row.reason or "")
    return progress


def record_judge_call(engine: sa.Engine, call: dict) -> None:
    """Store one call attempt (a judge_calls row's columns; see tables.JudgeCall)."""
    if call.get("order") not in ORDERS:
        raise ValueError(f"a judge call's order is ab or ba, not {call.get('order')!r}")
    if call.get("verdict") not in (None, *CALL_VERDICTS):
        raise ValueError(
            f"a judge call's verdict is one of {CALL_VERDICTS}, not {call['verdict']!r}"
        )
    row = {"started_at": utcnow(), **call}
    with engine.begin() as conn:
        conn.execute(sa.insert(JudgeCall.__table__), [row])


def record_judge_vote(
    engine: sa.Engine,
    *,
    judge: str,
    comparison: dict,
    ab: tuple[str, str],
    ba: tuple[str, str],
) -> bool:
    """Store a finished comparison as judge:NAME's vote; False when it was already stored.

    `comparison` has challenge, task, category, model_a, provider_a, image_a, model_b, provider_b,
    image_b (a's image sorting first); `ab` and `ba` are the two calls' (verdict, reason).
    """
    if comparison["image_a"] >= comparison["image_b"]:
        raise ValueError("a comparison's image_a sorts before its image_b")
    voter = f"judge:{judge}"
    row = {
        "battle_id": comparison_id(
            judge, comparison["challenge"], comparison["image_a"], comparison["image_b"]
        ),
        "created_at": utcnow(),
        "challenge": comparison["challenge"],
        "task": comparison["task"],
        "category": comparison.get("category") or "",
        "model_left": comparison["model_a"],
        "model_right": comparison["model_b"],
        "provider_left": comparison["provider_a"],
        "provider_right": comparison["provider_b"],
        "image_left": comparison["image_a"],
        "image_right": comparison["image_b"],
        "outcome": combined_outcome(ab[0], ba[0]),
        "voter": voter,
        "voter_kind": voter,
        "flagged": False,
        "reason": f"ab: {ab[1] or '-'} | ba: {ba[1] or '-'}",
    }
    with engine.begin() as conn:
        # RETURNING says whether the row went in; rowcount is not reliable across drivers.
        statement = insert_ignoring_duplicates(engine, Vote.__table__).returning(
            Vote.__table__.c.id
        )
        return conn.execute(statement, row).first() is not None

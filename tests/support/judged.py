"""Votes and judge calls as `arena judge` stores them, built row by row for the ratings tests: a
comparison of two outputs a < b (by sha256), its two asks ("ab", "ba"), and the vote they became."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from arena.store.tables import JudgeCall

OUTCOME_OF = {"a": "left", "b": "right", "tie": "tie", "both_bad": "both_bad"}


def sha(text: str) -> str:
    """A stand-in sha256 for an output named `text`."""
    return hashlib.sha256(text.encode()).hexdigest()


def human_vote(
    number: int, left: tuple[str, str, str], right: tuple[str, str, str], outcome: str, **fields
) -> dict:
    """A human vote row: left and right as (model, provider, output name) as the battle showed them."""
    row = {
        "battle_id": f"h{number}",
        "challenge": "bald-man",
        "task": "edit",
        "category": "portrait-edit",
        "model_left": left[0],
        "provider_left": left[1],
        "image_left": sha(left[2]),
        "model_right": right[0],
        "provider_right": right[1],
        "image_right": sha(right[2]),
        "outcome": outcome,
        "voter": f"session-{number}",
        "voter_kind": "human",
        "flagged": False,
    }
    row.update(fields)
    return row


def judge_vote(
    judge: str, one: tuple[str, str, str], other: tuple[str, str, str], winner: str, **fields
) -> dict:
    """A judge's vote on two outputs, given in any order: `winner` is "one", "other", "tie" or "both_bad".

    As the judge stores it: left is output a (the smaller sha256), the battle id the comparison's.
    """
    a, b = sorted([one, other], key=lambda side: sha(side[2]))
    outcome = {"one": "left" if a is one else "right", "other": "left" if a is other else "right"}
    row = {
        "battle_id": comparison_id(judge, a, b),
        "challenge": "bald-man",
        "task": "edit",
        "category": "portrait-edit",
        "model_left": a[0],
        "provider_left": a[1],
        "image_left": sha(a[2]),
        "model_right": b[0],
        "provider_right": b[1],
        "image_right": sha(b[2]),
        "outcome": outcome.get(winner, winner),
        "voter": f"judge:{judge}",
        "voter_kind": f"judge:{judge}",
        "reason": "scripted",
        "flagged": False,
    }
    row.update(fields)
    return row


def comparison_id(judge: str, a, b) -> str:
    return hashlib.sha256(f"{judge}|{sha(a[2])}|{sha(b[2])}".encode()).hexdigest()


def judge_call(
    judge: str, comparison: str, order: str, verdict: str | None, ok: bool = True, **fields
) -> dict:
    """One ask of a comparison: `order` "ab" (a shown first) or "ba"; verdict a, b, tie or both_bad."""
    row = {
        "judge": judge,
        "model_id": "scripted-vlm",
        "comparison": comparison,
        "order": order,
        "attempt": 1,
        "challenge": "bald-man",
        "task": "edit",
        "category": "portrait-edit",
        "model_a": "identity",
        "provider_a": "local",
        "image_a": "a" * 64,
        "model_b": "night-grade",
        "provider_b": "local",
        "image_b": "b" * 64,
        "ok": ok,
        "failure_class": None if ok else "timeout",
        "duration_ms": 850.0,
        "cost_usd": 0.002,
        "verdict": verdict,
    }
    row.update(fields)
    return row


def add_judge_calls(engine: sa.Engine, calls: list[dict]) -> int:
    """Insert judge_calls rows in one transaction; returns how many."""
    with engine.begin() as conn:
        conn.execute(JudgeCall.__table__.insert(), calls)
    return len(calls)

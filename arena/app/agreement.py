"""A judge beside the voters: each judge's agreement with the human votes, Kendall's tau between
the human and the judge boards, and the judge's position bias, read from the store."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from arena import store
from arena.errors import ArenaError
from arena.ratings.agreement import JudgeFigures, judge_figures


@dataclass(frozen=True)
class Agreement:
    human_votes: int  # unflagged human votes
    voter_kinds: list[str]  # every voter kind with votes in the store
    judges: list[JudgeFigures]


def judge_kinds(kinds: list[str]) -> list[str]:
    return [kind for kind in kinds if kind.startswith("judge:")]


def judge_agreement_figures(
    engine: sa.Engine,
    judge: str | None = None,
    by: str | None = None,
    confidence: float = 0.95,
    tasks: tuple[str, ...] | None = None,
) -> Agreement:
    """The figures for one judge (`judge`: NAME or judge:NAME) or for every judge with votes.

    An unknown judge raises ArenaError naming the voter kinds present; no human votes, or no judge
    votes, gives an Agreement with no judges (nothing to compare is not an error).
    """
    kinds = store.voter_kinds(engine)
    if judge is not None:
        wanted = judge if judge.startswith("judge:") else f"judge:{judge}"
        if wanted not in kinds:
            raise ArenaError(
                f"--judge {judge}: no votes from {wanted}; voter kinds with votes: "
                f"{', '.join(kinds) or 'none'}"
            )
        chosen = [wanted]
    else:
        chosen = judge_kinds(kinds)
    humans = _task_votes(store.read_votes(engine, include_flagged=False, extra_columns=True), tasks)
    figures = []
    if humans.empty:
        return Agreement(0, kinds, [])
    for kind in chosen:
        votes = _task_votes(
            store.read_votes(engine, include_flagged=False, extra_columns=True, voters=kind),
            tasks,
        )
        if votes.empty:
            continue
        calls = store.read_judge_calls(engine, kind)
        if tasks is not None and not calls.empty:
            calls = calls[calls["task"].isin(tasks)]
        figures.append(judge_figures(kind, humans, votes, calls, by, confidence))
    return Agreement(len(humans), kinds, figures)


def _task_votes(votes: pd.DataFrame, tasks: tuple[str, ...] | None) -> pd.DataFrame:
    return votes if tasks is None or votes.empty else votes[votes["task"].isin(tasks)]

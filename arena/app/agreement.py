"""A judge beside the voters: each judge's agreement with the human votes, Kendall's tau between
the human and the judge boards, and the judge's position bias, read from the store."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from arena import store
from arena.errors import ArenaError, VoteDataError
from arena.ratings import (
    RatingOptions,
    boards_correlation,
    compute_boards,
    judge_agreement,
    judge_position_bias,
)

# Kendall's tau needs only the ratings' order: the instant closed-form fit gives the same ratings.
_TAU_OPTIONS = RatingOptions(intervals="closed_form", bootstrap_rounds=1)


@dataclass(frozen=True)
class JudgeFigures:
    """One judge against the humans: frames of arena.ratings.agreement."""

    judge: str  # the voter kind, "judge:NAME"
    judge_votes: int
    agreement: pd.DataFrame  # AGREEMENT_COLUMNS, one row per task
    grouped: pd.DataFrame | None  # the same per category or challenge (with `by`)
    correlation: pd.DataFrame  # CORRELATION_COLUMNS, per task (and group with `by`)
    position_bias: pd.DataFrame  # POSITION_BIAS_COLUMNS, from the judge's calls


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
    human_boards = _boards(humans, by)
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
        figures.append(
            JudgeFigures(
                judge=kind,
                judge_votes=len(votes),
                agreement=judge_agreement(humans, votes, confidence=confidence),
                grouped=judge_agreement(humans, votes, by=by, confidence=confidence)
                if by
                else None,
                correlation=boards_correlation(human_boards, _boards(votes, by)),
                position_bias=judge_position_bias(calls, confidence),
            )
        )
    return Agreement(len(humans), kinds, figures)


def _task_votes(votes: pd.DataFrame, tasks: tuple[str, ...] | None) -> pd.DataFrame:
    return votes if tasks is None or votes.empty else votes[votes["task"].isin(tasks)]


def _boards(votes: pd.DataFrame, by: str | None) -> dict:
    """Boards per task, and per group with `by`; none where the votes rate nothing."""
    boards = {}
    for grouping in (None, by) if by else (None,):
        # Only votes between two outputs of one model rate nothing: no board.
        with contextlib.suppress(VoteDataError):
            boards.update(compute_boards(votes, _TAU_OPTIONS, by=grouping))
    return boards

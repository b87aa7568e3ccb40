"""The site's second opinions, arranged for the quality page: route boards and the route test (from
the human votes), each judge's board beside its agreement with the humans, and the checks that need
no model. Like digest.py it picks, groups and sorts what arena.ratings returns; nothing here rates.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pandas as pd

from arena import stats
from arena.errors import VoteDataError
from arena.ratings import RatingOptions, compare_routes, compute_boards
from arena.ratings.agreement import JudgeFigures, judge_agreement, judge_figures

# A route board has a row per model and provider: closed-form intervals keep its fit instant on a
# large store (hundreds of routes), as the per-category boards do.
ROUTE_OPTIONS = RatingOptions(intervals="closed_form")
ROUTE_COLUMNS = ("provider_left", "provider_right")
# What each check of arena.checks flags, as the page says it (a test keeps the names the same;
# importing arena.checks would load OpenCV into every report build for four words).
CHECK_KINDS = {
    "unchanged": "an edit that returned its source: the perceptual hash within "
    "{unchanged_max_distance} bits of the source's",
    "aspect": "an output whose aspect ratio is more than {aspect_tolerance:.0%} off the one the "
    "challenge asked for",
    "faces": "a portrait edit that lost the face: faces found in the source, none in the output",
    "blank": "a near-uniform image: its grey levels spread by at most {blank_max_stddev:g} "
    "(standard deviation, 0-255)",
}


@dataclass
class JudgeDigest:
    """One judge on the quality page: its boards, its calls and its figures against the humans."""

    kind: str  # "judge:NAME"
    votes: int
    boards: dict[str, pd.DataFrame]  # task -> this judge's board
    calls: dict  # calls, ok, failures by class, cost_usd, p50 duration_ms, model ids
    figures: JudgeFigures | None  # None without human votes to compare with
    grouped: dict[str, pd.DataFrame]  # "category" / "challenge" -> agreement per group

    @property
    def name(self) -> str:
        return self.kind.removeprefix("judge:")


def routes_from_votes(rated: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], pd.DataFrame | None]:
    """Route boards per task and the route comparisons, when some model was voted on through two or
    more providers; nothing otherwise (a board of routes then repeats the model board)."""
    if rated.empty or any(c not in rated for c in ROUTE_COLUMNS):
        return {}, None
    routes: dict[str, set[str]] = {}
    for side in ("left", "right"):  # the distinct routes, counted per side (no string per vote)
        seen = rated.groupby([f"model_{side}", f"provider_{side}"], observed=True).size().index
        for model, provider in seen:
            if str(provider):
                routes.setdefault(str(model), set()).add(str(provider))
    if not any(len(providers) > 1 for providers in routes.values()):
        return {}, None
    boards = {}
    with contextlib.suppress(VoteDataError):
        boards = {
            task: board
            for (task, _), board in compute_boards(rated, ROUTE_OPTIONS, by="route").items()
        }
    comparisons = compare_routes(rated)
    return boards, comparisons if len(comparisons) else None


def digest_judge(
    kind: str, votes: pd.DataFrame, calls: pd.DataFrame, humans: pd.DataFrame | None
) -> JudgeDigest:
    """One judge's boards (the published options, its votes only), calls and agreement figures."""
    rated = votes[~votes["flagged"].to_numpy(dtype=bool)] if len(votes) else votes
    boards = {}
    with contextlib.suppress(VoteDataError):  # only same-model comparisons rate nothing
        boards = {task: board for (task, _), board in compute_boards(rated).items()}
    figures, grouped = None, {}
    if humans is not None and len(humans) and len(rated):
        figures = judge_figures(kind, humans, rated, calls)
        grouped = {by: judge_agreement(humans, rated, by=by) for by in ("category", "challenge")}
    return JudgeDigest(kind, len(votes), boards, stats.judge_call_figures(calls), figures, grouped)


def check_summary(checks: pd.DataFrame) -> pd.DataFrame | None:
    """Per check, task, model and provider: outputs checked and flagged, and the flagged share."""
    if checks is None or checks.empty:
        return None
    counted = stats.count_flagged(checks, by=("task", "model", "provider"))
    return counted.assign(share=counted["flagged"] / counted["outputs"])

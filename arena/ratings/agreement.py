"""How far a judge agrees with the human voters: the share of decisive human votes it agrees
with, Kendall's τ between the two boards, and the judge's own position bias from its swapped asks."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from arena.errors import VoteDataError
from arena.ratings.boards import RatingOptions, compute_boards
from arena.ratings.frames import TASKS, unflagged
from arena.ratings.proportions import wilson_interval

AGREEMENT_BY = (None, "category", "challenge")
AGREEMENT_COLUMNS = (
    "task",
    "group",
    "human_decisive",
    "matched",
    "exact",
    "fallback",
    "agree",
    "disagree",
    "judge_tie",
    "agreement",
    "lower",
    "upper",
    "decisive_agreement",
)
CORRELATION_COLUMNS = ("task", "group", "n_models", "tau", "p_value")
POSITION_BIAS_COLUMNS = (
    "judge",
    "task",
    "calls",
    "decisive",
    "first_wins",
    "first_share",
    "first_lower",
    "first_upper",
    "comparisons",
    "consistent",
    "consistency",
    "consistency_lower",
    "consistency_upper",
)
_NO_WINNER = "\x00tie"  # a verdict with no winner (tie or both_bad), never an image or model name


def judge_agreement(
    human_votes: pd.DataFrame,
    judge_votes: pd.DataFrame,
    by: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per task (and category or challenge with `by`): the share of decisive human votes the judge agrees with.

    Only unflagged human votes with a winner (left or right) count. Each is matched to the judge's
    verdict on the same two outputs (image_left/image_right, in either order: the judge's a/b need
    not be the battle's left/right); when the judge never saw that exact pair, to its verdict over
    the same challenge and the same two models (`fallback`). Several judge votes on one key give
    its plurality verdict (a tied plurality is a tie). A judge tie or both_bad is not agreement
    (`judge_tie`). agreement = agree / matched with a Wilson interval (lower, upper);
    decisive_agreement = agree / (agree + disagree). Columns: AGREEMENT_COLUMNS; group is None
    without `by`.
    """
    if by not in AGREEMENT_BY:
        raise ValueError(f"by must be one of {AGREEMENT_BY}, not {by!r}")
    humans = unflagged(human_votes)
    humans = humans[humans["outcome"].astype(str).isin(("left", "right"))]
    judged = unflagged(judge_votes)
    left_won = (humans["outcome"].astype(str) == "left").to_numpy()
    winner_model = np.where(left_won, _text(humans, "model_left"), _text(humans, "model_right"))
    winner_image = np.where(left_won, _text(humans, "image_left"), _text(humans, "image_right"))
    exact = _lookup(
        _verdicts(judged, ("image_left", "image_right"), ()),
        _keys(humans, ("image_left", "image_right"), ()),
    )
    fallback = _lookup(
        _verdicts(judged, ("model_left", "model_right"), ("challenge",)),
        _keys(humans, ("model_left", "model_right"), ("challenge",)),
    )
    has_exact = exact.notna().to_numpy()
    has_fallback = ~has_exact & fallback.notna().to_numpy()
    verdict = np.where(has_exact, exact.to_numpy(), fallback.to_numpy())
    winner = np.where(has_exact, winner_image, winner_model)
    matched = has_exact | has_fallback
    tie = matched & (verdict == _NO_WINNER)
    agree = matched & ~tie & (verdict == winner)
    scored = pd.DataFrame(
        {
            "task": humans["task"].astype(str).to_numpy(),
            "group": humans[by].astype(str).to_numpy() if by else None,
            "human_decisive": 1,
            "matched": matched,
            "exact": has_exact,
            "fallback": has_fallback,
            "agree": agree,
            "disagree": matched & ~tie & ~agree,
            "judge_tie": tie,
        }
    )
    rows = []
    keys = ["task", "group"] if by else ["task"]
    for key, counts in scored.groupby(keys, sort=True):
        task = key[0]
        row = {"task": task, "group": key[1] if by else None}
        for name in ("human_decisive", "matched", "exact", "fallback", "agree", "disagree"):
            row[name] = int(counts[name].sum())
        row["judge_tie"] = int(counts["judge_tie"].sum())
        row["agreement"] = row["agree"] / row["matched"] if row["matched"] else math.nan
        row["lower"], row["upper"] = wilson_interval(row["agree"], row["matched"], confidence)
        decided = row["agree"] + row["disagree"]
        row["decisive_agreement"] = row["agree"] / decided if decided else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    return _in_task_order(frame)


def _text(votes: pd.DataFrame, column: str) -> np.ndarray:
    """A label column as object strings, missing values (no image recorded) as None."""
    if column not in votes.columns:
        return np.full(len(votes), None, dtype=object)
    return votes[column].astype("string").to_numpy(dtype=object, na_value=None)


def _keys(votes: pd.DataFrame, pair: tuple[str, str], context: tuple[str, ...]) -> pd.DataFrame:
    """Order-free keys of each vote: the context columns and the pair's two labels sorted (both
    None where either label is missing). Whole columns at a time: a public arena's human votes
    are millions of rows."""
    first, second = _text(votes, pair[0]), _text(votes, pair[1])
    known = pd.notna(first).astype(bool) & pd.notna(second).astype(bool)
    a = np.where(known, first, "").astype(str)
    b = np.where(known, second, "").astype(str)
    swap = a > b
    low = np.where(known, np.where(swap, b, a).astype(object), None)
    high = np.where(known, np.where(swap, a, b).astype(object), None)
    keys = {name: _text(votes, name) for name in context}
    keys.update(low=low, high=high)
    return pd.DataFrame(keys)


def _verdicts(votes: pd.DataFrame, pair: tuple[str, str], context: tuple[str, ...]) -> pd.DataFrame:
    """The judge's plurality verdict per order-free key: the winning label, or _NO_WINNER."""
    keys = _keys(votes, pair, context)
    outcome = votes["outcome"].astype(str).to_numpy()
    keys["winner"] = np.where(
        outcome == "left",
        _text(votes, pair[0]),
        np.where(outcome == "right", _text(votes, pair[1]), _NO_WINNER),
    )
    keys = keys[keys["low"].notna() & keys["high"].notna()]
    columns = [*context, "low", "high"]
    if keys.empty:
        return pd.DataFrame(columns=[*columns, "verdict"])
    counts = keys.groupby([*columns, "winner"], sort=False).size().rename("n").reset_index()
    top = counts.groupby(columns, sort=False)["n"].transform("max")
    leaders = counts[counts["n"] == top]
    # A tied plurality (say one vote each way) is no verdict for either side.
    shared = leaders.groupby(columns, sort=False)["winner"].transform("size") > 1
    leaders = leaders.assign(verdict=np.where(shared, _NO_WINNER, leaders["winner"]))
    return leaders.drop_duplicates(columns)[[*columns, "verdict"]]


def _lookup(verdicts: pd.DataFrame, keys: pd.DataFrame) -> pd.Series:
    """Each key's verdict (NaN where the judge has none), in the keys' order."""
    columns = [name for name in keys.columns]
    if verdicts.empty or keys.empty:
        return pd.Series([None] * len(keys), dtype=object)
    merged = keys.reset_index(drop=True).merge(verdicts, on=columns, how="left", sort=False)
    return merged["verdict"]


def _in_task_order(frame: pd.DataFrame) -> pd.DataFrame:
    order = frame["task"].map(lambda t: TASKS.index(t) if t in TASKS else len(TASKS))
    return (
        frame.assign(_order=order)
        .sort_values(["_order", "task", "group"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def board_correlation(human_board: pd.DataFrame, judge_board: pd.DataFrame) -> dict:
    """Kendall's τ (τ-b) between two boards' ratings over the models rated on both.

    Returns n_models, tau, p_value and models; tau and p_value are None with fewer than two common
    models, or when one board rates them all alike.
    """
    both = human_board[["model", "rating"]].merge(
        judge_board[["model", "rating"]], on="model", suffixes=("_human", "_judge")
    )
    result = {"n_models": len(both), "tau": None, "p_value": None, "models": sorted(both["model"])}
    if len(both) >= 2:
        tau, p_value = kendalltau(both["rating_human"], both["rating_judge"])
        if not math.isnan(tau):
            result["tau"], result["p_value"] = float(tau), float(p_value)
    return result


def boards_correlation(human_boards: dict, judge_boards: dict) -> pd.DataFrame:
    """board_correlation for each board key (task, group) the two sets of boards share."""
    rows = []
    for key in human_boards:
        if key in judge_boards:
            found = board_correlation(human_boards[key], judge_boards[key])
            rows.append(
                {"task": key[0], "group": key[1], **{c: found[c] for c in CORRELATION_COLUMNS[2:]}}
            )
    frame = pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))
    frame["group"] = frame["group"].astype(object).where(frame["group"].notna(), None)
    return frame


def judge_position_bias(calls: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per judge and task, from its calls: how often the image shown first wins, and how often
    the two orders of one comparison agree.

    Of each (comparison, order) only the last answered attempt counts (a retried call is one ask).
    first_share = first_wins / decisive over answered calls with a winner ("ab" and "a", or "ba"
    and "b"); 0.5 means the position does not matter. consistency = comparisons whose two orders
    gave the same verdict (the same winner, or no winner both times) / comparisons answered in
    both orders. Both with Wilson intervals. Columns: POSITION_BIAS_COLUMNS.
    """
    answered = calls[
        calls["ok"].astype(bool) & calls["verdict"].isin(("a", "b", "tie", "both_bad"))
    ]
    order = [name for name in ("attempt", "id") if name in answered.columns]
    if order:
        answered = answered.sort_values(order, kind="stable")
    answered = answered.drop_duplicates(["judge", "comparison", "order"], keep="last")
    rows = []
    for (judge, task), asked in answered.groupby(["judge", "task"], sort=True):
        verdict, shown = asked["verdict"].astype(str), asked["order"].astype(str)
        decisive = verdict.isin(("a", "b"))
        first = ((shown == "ab") & (verdict == "a")) | ((shown == "ba") & (verdict == "b"))
        row = {
            "judge": judge,
            "task": task,
            "calls": len(asked),
            "decisive": int(decisive.sum()),
            "first_wins": int(first.sum()),
        }
        row["first_share"] = row["first_wins"] / row["decisive"] if row["decisive"] else math.nan
        row["first_lower"], row["first_upper"] = wilson_interval(
            row["first_wins"], row["decisive"], confidence
        )
        winner = verdict.where(decisive, "none")
        pairs = pd.DataFrame(
            {"comparison": asked["comparison"], "order": shown, "winner": winner}
        ).pivot(index="comparison", columns="order", values="winner")
        if {"ab", "ba"} <= set(pairs.columns):
            both = pairs.dropna(subset=["ab", "ba"])
            consistent = int((both["ab"] == both["ba"]).sum())
            compared = len(both)
        else:
            consistent = compared = 0
        row["comparisons"], row["consistent"] = compared, consistent
        row["consistency"] = consistent / compared if compared else math.nan
        row["consistency_lower"], row["consistency_upper"] = wilson_interval(
            consistent, compared, confidence
        )
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(POSITION_BIAS_COLUMNS))
    order = frame["task"].map(lambda t: TASKS.index(t) if t in TASKS else len(TASKS))
    return (  # tasks in the boards' order, as the agreement table has them
        frame.assign(_order=order)
        .sort_values(["judge", "_order", "task"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


# Kendall's tau needs only the ratings' order: the instant closed-form fit gives the same ratings.
_TAU_OPTIONS = RatingOptions(intervals="closed_form", bootstrap_rounds=1)


@dataclass(frozen=True)
class JudgeFigures:
    """One judge against the humans: the frames above, as the CLI and the report show them."""

    judge: str  # the voter kind, "judge:NAME"
    judge_votes: int
    agreement: pd.DataFrame  # AGREEMENT_COLUMNS, one row per task
    grouped: pd.DataFrame | None  # the same per category or challenge (with `by`)
    correlation: pd.DataFrame  # CORRELATION_COLUMNS, per task (and group with `by`)
    position_bias: pd.DataFrame  # POSITION_BIAS_COLUMNS, from the judge's calls


def judge_figures(
    judge: str,
    human_votes: pd.DataFrame,
    judge_votes: pd.DataFrame,
    calls: pd.DataFrame,
    by: str | None = None,
    confidence: float = 0.95,
) -> JudgeFigures:
    """Every figure of one judge (`judge`: its voter kind) against unflagged human votes."""
    return JudgeFigures(
        judge=judge,
        judge_votes=len(judge_votes),
        agreement=judge_agreement(human_votes, judge_votes, confidence=confidence),
        grouped=judge_agreement(human_votes, judge_votes, by=by, confidence=confidence)
        if by
        else None,
        correlation=boards_correlation(
            correlation_boards(human_votes, by), correlation_boards(judge_votes, by)
        ),
        position_bias=judge_position_bias(calls, confidence),
    )


def correlation_boards(votes: pd.DataFrame, by: str | None) -> dict:
    """Boards per task, and per group with `by`, for Kendall's tau; none where the votes rate nothing."""
    boards = {}
    for grouping in (None, by) if by else (None,):
        # Only votes between two outputs of one model rate nothing: no board.
        with contextlib.suppress(VoteDataError):
            boards.update(compute_boards(votes, _TAU_OPTIONS, by=grouping))
    return boards

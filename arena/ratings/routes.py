"""Routes (one model served by one provider): route labels for route boards, and the test of
whether two routes of one model differ, head to head and against the opponents both met."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from arena.errors import VoteDataError, plural
from arena.ratings.frames import TASKS, count_weights, frame_records, unflagged
from arena.ratings.proportions import difference_interval, wilson_interval

PROVIDER_COLUMNS = ("provider_left", "provider_right")
ROUTE_COMPARISON_COLUMNS = (
    "task",
    "model",
    "route_a",
    "route_b",
    "h2h_votes",
    "h2h_wins",
    "h2h_losses",
    "h2h_ties",
    "h2h_share",
    "h2h_lower",
    "h2h_upper",
    "common_opponents",
    "n_a",
    "score_a",
    "lower_a",
    "upper_a",
    "n_b",
    "score_b",
    "lower_b",
    "upper_b",
    "difference",
    "difference_lower",
    "difference_upper",
    "verdict",
    "basis",
    "sentence",
)
# A side's score in one vote: a win 1, a tie (both_bad included, as on the default board) ½.
_LEFT_SCORE = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}


def route_label(model: str, provider: str) -> str:
    """ "model@provider"; a vote that does not say its provider keeps the bare model name."""
    return f"{model}@{provider}" if provider else model


def route_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The votes with each side's model relabelled "model@provider", for boards of routes.

    Labels are made once per distinct (model, provider) and handed back as categoricals: a store
    of a million votes has a few hundred routes, and a string per vote would cost a second and
    hundreds of MB.
    """
    _require_providers(votes)
    relabelled = {}
    for side in ("left", "right"):
        model_codes, models = pd.factorize(votes[f"model_{side}"], sort=False)
        provider_codes, providers = pd.factorize(votes[f"provider_{side}"].fillna(""), sort=False)
        keys = model_codes.astype(np.int64) * max(len(providers), 1) + provider_codes
        distinct, codes = np.unique(keys, return_inverse=True)
        labels = [
            route_label(
                str(models[k // max(len(providers), 1)]), str(providers[k % max(len(providers), 1)])
            )
            for k in distinct
        ]
        relabelled[f"model_{side}"] = pd.Categorical.from_codes(codes, categories=labels)
    return votes.assign(**relabelled)


def _require_providers(votes: pd.DataFrame) -> None:
    missing = [name for name in PROVIDER_COLUMNS if name not in votes.columns]
    if missing:
        raise VoteDataError(
            f"route boards need each vote's providers ({', '.join(missing)} missing); "
            "a released votes file has none: read the votes from the store"
        )


def _sides(votes: pd.DataFrame, counted_votes: bool = False) -> pd.DataFrame:
    """The unflagged votes counted per (task, model, provider, opponent, opponent's provider), from
    each side: votes `n`, `score` (wins, ties as halves), `win` and `loss`. With `counted_votes`
    the rows are pair counts, each standing for its `votes` identical votes.

    Counting first keeps the test's cost in the number of distinct matchups (thousands), not of
    votes (millions); every figure the test takes is a sum of these counts.
    """
    votes = unflagged(votes)
    outcome = votes["outcome"]
    weight = count_weights(votes) if counted_votes else np.ones(len(votes))
    counted = pd.DataFrame(
        {
            "task": votes["task"],
            "model_left": votes["model_left"],
            "provider_left": votes["provider_left"].fillna(""),
            "model_right": votes["model_right"],
            "provider_right": votes["provider_right"].fillna(""),
            "weight": weight,
            "left_points": np.asarray(outcome.map(_LEFT_SCORE), dtype=float) * weight,
            "left_wins": np.asarray(outcome == "left") * weight,
            "right_wins": np.asarray(outcome == "right") * weight,
        }
    )
    keys = ["task", "model_left", "provider_left", "model_right", "provider_right"]
    counted = (
        counted.groupby(keys, observed=True, sort=False)
        .agg(
            n=("weight", "sum"),
            left_points=("left_points", "sum"),
            left_wins=("left_wins", "sum"),
            right_wins=("right_wins", "sum"),
        )
        .reset_index()
    )
    frames = []
    for side, other in (("left", "right"), ("right", "left")):
        points = counted["left_points"] if side == "left" else counted["n"] - counted["left_points"]
        frames.append(
            pd.DataFrame(
                {
                    "task": counted["task"].astype(str).to_numpy(),
                    "model": counted[f"model_{side}"].astype(str).to_numpy(),
                    "provider": counted[f"provider_{side}"].astype(str).to_numpy(),
                    "opponent": counted[f"model_{other}"].astype(str).to_numpy(),
                    "opponent_provider": counted[f"provider_{other}"].astype(str).to_numpy(),
                    "n": counted["n"].to_numpy(dtype=np.int64),
                    "score": points.to_numpy(dtype=float),
                    "win": counted[f"{side}_wins"].to_numpy(dtype=np.int64),
                    "loss": counted[f"{other}_wins"].to_numpy(dtype=np.int64),
                }
            )
        )
    sides = pd.concat(frames, ignore_index=True)
    return sides[sides["provider"] != ""]  # a vote that does not say its route tests no route


def compare_routes(votes: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """For each model with votes on two or more routes, each pair of its routes compared (per task).

    Head to head: route a's votes against route b (wins, losses, ties; share with ties as halves
    and a Wilson interval). Against common opponents: each route's score (ties half) against the
    other models that BOTH routes met, with Wilson intervals, and the difference a − b with
    Newcombe's interval. The verdict is "indistinguishable" when that interval holds 0, else
    "differ"; without common opponents it comes from the head-to-head share (its interval holding
    ½ or not); with neither, "too few votes". Columns: ROUTE_COMPARISON_COLUMNS.
    """
    _require_providers(votes)
    return _compare(_sides(votes), confidence)


def compare_routes_from_counts(counts: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """compare_routes on pair counts with the providers (`store.read_pair_counts(engine,
    by="route")`): the same comparisons as from the votes they count."""
    _require_providers(counts)
    return _compare(_sides(counts, counted_votes=True), confidence)


def _compare(sides: pd.DataFrame, confidence: float) -> pd.DataFrame:
    rows = []
    tasks = sorted(sides["task"].unique(), key=lambda t: (TASKS.index(t) if t in TASKS else 9, t))
    for task in tasks:
        task_sides = sides[sides["task"] == task]
        for model, mine in task_sides.groupby("model", sort=True):
            providers = sorted(mine["provider"].unique())
            if len(providers) < 2:
                continue
            counts = _RouteCounts(model, providers, mine)
            for k, route_a in enumerate(providers):
                for route_b in providers[k + 1 :]:
                    rows.append(_compare_pair(task, model, route_a, route_b, counts, confidence))
    return pd.DataFrame(rows, columns=list(ROUTE_COMPARISON_COLUMNS))


class _RouteCounts:
    """One model's matchup counts as small arrays: per route and opponent model (other models),
    and per route and route of its own (head to head), so each pair of routes is a few sums."""

    def __init__(self, model: str, providers: list[str], mine: pd.DataFrame) -> None:
        self.index = {provider: k for k, provider in enumerate(providers)}
        others = mine[mine["opponent"] != model]
        opponents = sorted(others["opponent"].unique())
        where = {name: k for k, name in enumerate(opponents)}
        shape = (len(providers), len(opponents))
        self.n, self.score = np.zeros(shape), np.zeros(shape)
        rows = (
            self.index_of(others["provider"]),
            others["opponent"]
            .map(where)
            .to_numpy(dtype=np.int64),  # empty: its routes met only each other
        )
        np.add.at(self.n, rows, others["n"].to_numpy(dtype=float))
        np.add.at(self.score, rows, others["score"].to_numpy(dtype=float))
        own = mine[(mine["opponent"] == model) & mine["opponent_provider"].isin(providers)]
        square = (len(providers), len(providers))
        self.h2h = {name: np.zeros(square) for name in ("n", "win", "loss", "score")}
        pairs = self.index_of(own["provider"]), self.index_of(own["opponent_provider"])
        for name, values in self.h2h.items():
            np.add.at(values, pairs, own[name].to_numpy(dtype=float))

    def index_of(self, providers: pd.Series) -> np.ndarray:
        return providers.map(self.index).to_numpy(dtype=np.int64)


def _compare_pair(
    task: str, model: str, route_a: str, route_b: str, counts: _RouteCounts, confidence: float
) -> dict:
    a, b = counts.index[route_a], counts.index[route_b]
    h2h = {name: float(values[a, b]) for name, values in counts.h2h.items()}
    h2h_n, h2h_points = int(h2h["n"]), h2h["score"]
    h2h_wins, h2h_losses = int(h2h["win"]), int(h2h["loss"])
    h2h_lower, h2h_upper = wilson_interval(h2h_points, h2h_n, confidence)
    common_mask = (counts.n[a] > 0) & (counts.n[b] > 0)  # opponents both routes met
    common = int(common_mask.sum())
    n_a, n_b = int(counts.n[a][common_mask].sum()), int(counts.n[b][common_mask].sum())
    points_a = float(counts.score[a][common_mask].sum())
    points_b = float(counts.score[b][common_mask].sum())
    lower_a, upper_a = wilson_interval(points_a, n_a, confidence)
    lower_b, upper_b = wilson_interval(points_b, n_b, confidence)
    difference, difference_lower, difference_upper = difference_interval(
        points_a, n_a, points_b, n_b, confidence
    )
    row = {
        "task": task,
        "model": model,
        "route_a": route_a,
        "route_b": route_b,
        "h2h_votes": h2h_n,
        "h2h_wins": h2h_wins,
        "h2h_losses": h2h_losses,
        "h2h_ties": h2h_n - h2h_wins - h2h_losses,
        "h2h_share": h2h_points / h2h_n if h2h_n else math.nan,
        "h2h_lower": h2h_lower,
        "h2h_upper": h2h_upper,
        "common_opponents": common,
        "n_a": n_a,
        "score_a": points_a / n_a if n_a else math.nan,
        "lower_a": lower_a,
        "upper_a": upper_a,
        "n_b": n_b,
        "score_b": points_b / n_b if n_b else math.nan,
        "lower_b": lower_b,
        "upper_b": upper_b,
        "difference": difference,
        "difference_lower": difference_lower,
        "difference_upper": difference_upper,
    }
    if n_a and n_b:
        row["basis"] = "common opponents"
        same = difference_lower <= 0.0 <= difference_upper
        better = difference > 0
    elif h2h_n:
        row["basis"] = "head to head"
        same = h2h_lower <= 0.5 <= h2h_upper
        better = row["h2h_share"] > 0.5
    else:
        row["basis"] = "none"
        same, better = None, False
    row["verdict"] = "too few votes" if same is None else "indistinguishable" if same else "differ"
    row["sentence"] = route_sentence(row, better)
    return row


def route_sentence(row: dict, better: bool = False) -> str:
    """The comparison in words: "fal's m is indistinguishable from xai's (48% vs 52% against ...)"."""
    model, a, b = row["model"], row["route_a"], row["route_b"]
    verb = {
        "indistinguishable": "is indistinguishable from",
        "differ": "does better than" if better else "does worse than",
        "too few votes": "cannot yet be compared with",
    }[row["verdict"]]
    parts = []
    if row["n_a"] and row["n_b"]:
        parts.append(
            f"{_percent(row['score_a'])} vs {_percent(row['score_b'])} against "
            f"{plural(row['common_opponents'], 'common opponent')}, "
            f"n={row['n_a']} and {row['n_b']}"
        )
    if row["h2h_votes"]:
        parts.append(
            f"head to head {row['h2h_wins']}–{row['h2h_losses']}"
            + (f" with {plural(row['h2h_ties'], 'tie')}" if row["h2h_ties"] else "")
            + f" ({_percent(row['h2h_share'])})"
        )
    detail = "; ".join(parts) or "no votes against each other or against a common opponent"
    return f"{a}'s {model} {verb} {b}'s ({detail})"


def route_records(comparisons: pd.DataFrame) -> list[dict]:
    """JSON-ready comparisons: plain numbers, shares rounded to 4 places, missing values as None."""
    return frame_records(comparisons)


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"

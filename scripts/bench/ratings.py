#!/usr/bin/env python3
"""Benchmark the rating engine against the way public arenas compute boards today; prints one JSON line.

Data: synthetic, 40 models, 1,000,000 votes, ~30% ties (a third of them both_bad), drawn from a
Bradley–Terry model. Ours: arena.ratings.compute_board with 1,000 bootstrap rounds, and with the
closed-form (sandwich) intervals. Reference: the likelihood on aggregated (left, right, outcome)
counts minimized by scipy's L-BFGS-B (maxiter 100, gtol 1e-6), then 100 bootstrap rounds that
resample those counts multinomially and refit, spread over all cores with multiprocessing.

Usage: scripts/bench/ratings.py [--votes N] [--models M] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from arena.ratings import RatingOptions, compute_board, tally_votes  # noqa: E402
from arena.ratings import bradley_terry as bt  # noqa: E402

REFERENCE_ROUNDS = 100


def synthetic_votes(n_models: int, n_votes: int, seed: int = 0) -> pd.DataFrame:
    """Canonical vote rows as the store hands large tables over: labels as categoricals."""
    rng = np.random.default_rng(seed)
    strengths = rng.normal(0.0, 0.6, n_models)
    names = np.array(
        [f"provider-{k % 7}/image-model-{k:02d}" for k in range(n_models)], dtype=object
    )
    left = rng.integers(0, n_models, n_votes)
    right = (left + rng.integers(1, n_models, n_votes)) % n_models
    left_wins = rng.random(n_votes) < expit(strengths[left] - strengths[right])
    draw = rng.random(n_votes)
    outcome = np.where(
        draw < 0.2, "tie", np.where(draw < 0.3, "both_bad", np.where(left_wins, "left", "right"))
    )
    return pd.DataFrame(
        {
            "model_left": pd.Categorical.from_codes(left, names),
            "model_right": pd.Categorical.from_codes(right, names),
            "outcome": pd.Categorical(outcome),
            "flagged": np.zeros(n_votes, dtype=bool),
        }
    )


# --- the reference: aggregated counts, L-BFGS-B, multiprocessing bootstrap ---------------------------
# Parameterized as FastChat's current rating_systems.py does: strengths in base-10 log-odds
# (logit = ln 10 · gap, Elo = 400 · strength), the point fit on raw counts, the bootstrap refits
# on resampled counts divided by the number of votes.

LN10 = float(np.log(10.0))


def _reference_loss(strength, left, right, score, weight):
    d = LN10 * (strength[left] - strength[right])
    loss = -(weight * (score * log_expit(d) + (1 - score) * log_expit(-d))).sum()
    slope = LN10 * weight * (expit(d) - score)
    gradient = np.bincount(left, slope, len(strength)) - np.bincount(right, slope, len(strength))
    return loss, gradient


def _reference_fit(args) -> np.ndarray:
    left, right, score, weight, n_models = args
    result = minimize(
        _reference_loss,
        np.zeros(n_models),
        args=(left, right, score, weight),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": 1e-6},
    )
    return 1000 + 400 * (result.x - result.x.mean())


def reference_aggregate(votes: pd.DataFrame):
    """Counts per (left, right, outcome): an integer schedule reduced with np.unique, as public
    arenas prepare battles for the fit."""
    n = len(votes)
    codes, models = pd.factorize(pd.concat([votes["model_left"], votes["model_right"]]), sort=True)
    schedule = np.empty((n, 3), dtype=np.int32)
    schedule[:, 0], schedule[:, 1] = codes[:n], codes[n:]
    outcome = votes["outcome"].to_numpy()
    schedule[:, 2] = np.select([outcome == "left", outcome == "right"], [2, 0], default=1)
    rows, counts = np.unique(schedule, axis=0, return_counts=True)
    score = rows[:, 2] / 2.0  # left win 1, tie or both_bad 0.5, right win 0
    return list(models), rows[:, 0], rows[:, 1], score, counts.astype(float)


def reference_fit_and_bootstrap(aggregated, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Point ratings and 95% percentile bounds: L-BFGS-B, then 100 multinomial rounds on all cores."""
    models, left, right, score, counts = aggregated
    n, m = int(counts.sum()), len(models)
    point = _reference_fit((left, right, score, counts, m))
    resampled = np.random.default_rng(seed).multinomial(n, counts / n, size=REFERENCE_ROUNDS)
    jobs = [(left, right, score, row / n, m) for row in resampled]
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        rounds = np.array(pool.map(_reference_fit, jobs))
    return point, np.quantile(rounds, [0.025, 0.975], axis=0)


def ours_from_counts(counts: bt.PairCounts) -> tuple[np.ndarray, np.ndarray]:
    """Our fit and 1,000 bootstrap rounds from aggregated counts (the step after tallying votes)."""
    point = bt.fit(counts)
    rounds = bt.bootstrap_thetas(counts, point, 1000, 0, prior_precision=0.0)
    return point.theta, np.quantile(rounds, [0.025, 0.975], axis=0)


def timed(function, repeat: int) -> tuple[float, object]:
    """Median wall time over `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of ours; the median is reported"
    )
    args = parser.parse_args()

    votes = synthetic_votes(args.models, args.votes)
    compute_board(votes.head(1000), RatingOptions(bootstrap_rounds=50))  # warm caches and imports
    ours_s, board = timed(
        lambda: compute_board(votes, RatingOptions(bootstrap_rounds=1000)), args.repeat
    )
    ours_closed_form_s, _ = timed(
        lambda: compute_board(votes, RatingOptions(intervals="closed_form")), args.repeat
    )
    tally_s, tally = timed(lambda: tally_votes(votes), args.repeat)
    counts = tally.pair_counts(RatingOptions())
    ours_counts_s, _ = timed(lambda: ours_from_counts(counts), args.repeat)
    # Peak memory so far: the data and our boards, before the reference runs.
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    start = time.perf_counter()
    aggregated = reference_aggregate(votes)
    middle = time.perf_counter()
    reference_rating, _ = reference_fit_and_bootstrap(aggregated)
    reference_s = time.perf_counter() - start
    reference_counts_s = time.perf_counter() - middle

    ours = board.set_index("model").loc[aggregated[0], "rating"].to_numpy()
    print(
        json.dumps(
            {
                "ours_s": round(ours_s, 3),
                "ours_closed_form_s": round(ours_closed_form_s, 3),
                "reference_s": round(reference_s, 3),
                "speedup": round(reference_s / ours_s, 1),
                "max_abs_diff_elo": round(float(np.abs(ours - reference_rating).max()), 4),
                "peak_rss_mb": round(peak_rss_mb, 1),
                # The same comparison from aggregated counts on: tallying 1M string-labelled votes
                # is work both sides do, and it dominates ours.
                "ours_tally_s": round(tally_s, 3),
                "ours_from_counts_s": round(ours_counts_s, 3),
                "reference_from_counts_s": round(reference_counts_s, 3),
                "speedup_from_counts": round(reference_counts_s / ours_counts_s, 1),
                "votes": args.votes,
                "models": args.models,
                "bootstrap_rounds": 1000,
                "reference_bootstrap_rounds": REFERENCE_ROUNDS,
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark the rating engine: a board in memory against public arenas' way, and every board of a
10M-vote PostgreSQL store from SQL counts; prints one JSON line per case.

memory: synthetic, 40 models, 1,000,000 votes, ~30% ties (a third of them both_bad), drawn from a
Bradley–Terry model. Ours: arena.ratings.compute_board with 1,000 bootstrap rounds, and with the
closed-form (sandwich) intervals. Reference: the likelihood on aggregated (left, right, outcome)
counts minimized by scipy's L-BFGS-B (maxiter 100, gtol 1e-6), then 100 bootstrap rounds that
resample those counts multinomially and refit, spread over all cores with multiprocessing.

postgresql: a database of its own (arena_bench, created and dropped) whose votes table holds 10M
votes of 60 models (votestore.py). Ours: every board by task with 1,000 bootstrap rounds from the
store's pair counts (store.read_pair_counts + ratings.compute_boards_from_counts), in a fresh
process whose peak memory is its VmHWM; the median of --repeat runs. Reference, the same run:
the DataFrame path on the same votes (the lean read of store.read_votes, then compute_boards),
and the same count without ix_votes_pair_counts (a pass over the table). Target: <= 8 s and
<= 500 MB.

Usage: scripts/bench/ratings.py [--only memory|postgresql] [--votes N] [--models M] [--repeat R]
                                [--postgres URL] [--pg-votes N] [--pg-models M] [--keep]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # httpload, votestore

from arena.ratings import RatingOptions, compute_board, tally_votes  # noqa: E402
from arena.ratings import bradley_terry as bt  # noqa: E402

REFERENCE_ROUNDS = 100
BENCH_DATABASE = "arena_bench"
TARGET_S = 8.0
TARGET_RSS_MB = 500.0


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


def memory_case(args) -> dict:
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
    return {
        "case": "memory",
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


# --- the PostgreSQL case: every board of a 10M-vote store ------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM): its own, where ru_maxrss can carry a parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, url: str) -> None:
    """One measured computation of every board in this fresh process; prints its JSON.

    sql: pair counts from the database, then the boards. rows: the lean read of every vote, then
    the boards from the DataFrame. seqscan: the pair counts only, with index scans turned off.
    """
    from arena import store
    from arena.ratings import compute_boards, compute_boards_from_counts

    if mode == "seqscan":  # the planner's other way: one pass over the table's rows
        off = "-c enable_indexonlyscan=off -c enable_indexscan=off -c enable_bitmapscan=off"
        url += "?options=" + off.replace(" ", "%20").replace("=", "%3D")
    engine = store.open_engine(url, create=False)
    start = time.perf_counter()
    if mode == "rows":
        votes = store.read_votes(
            engine,
            columns=["task", "model_left", "model_right", "outcome", "flagged"],
            labels_as_categories=True,
        )
        n_votes = len(votes)
    else:
        votes = store.read_pair_counts(engine)
        n_votes = int(votes["votes"].sum())
    read = time.perf_counter()
    boards = {}
    if mode != "seqscan":
        fitted = (compute_boards if mode == "rows" else compute_boards_from_counts)(votes)
        boards = {
            task: {
                row.model: [row.rating, row.lower, row.upper]
                for row in board.itertuples(index=False)
            }
            for (task, _), board in fitted.items()
        }
    done = time.perf_counter()
    engine.dispose()
    print(
        json.dumps(
            {
                "read_s": read - start,
                "fit_s": done - read,
                "total_s": done - start,
                "peak_rss_mb": peak_rss_mb(),
                "votes": n_votes,
                "boards": boards,
            }
        )
    )


def run_child(mode: str, url: str) -> dict:
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--url", url],
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        sys.exit(f"ratings bench: the {mode} process failed:\n{finished.stderr[-2000:]}")
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    result["startup_s"] = time.perf_counter() - started - result["total_s"]
    return result


def largest_gap(ours: dict, theirs: dict) -> float:
    """The largest difference in rating or bound between two sets of boards (NaN bounds equal)."""
    if ours.keys() != theirs.keys():
        return float("inf")
    gap = 0.0
    for task, board in ours.items():
        if board.keys() != theirs[task].keys():
            return float("inf")
        for model, values in board.items():
            a, b = np.array(values, dtype=float), np.array(theirs[task][model], dtype=float)
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                return float("inf")
            gap = max(gap, float(np.nanmax(np.abs(a - b), initial=0.0)))
    return gap


def postgresql_case(args) -> dict:
    import votestore
    from httpload import cpu_steal_s

    from arena import store

    url = votestore.database_url(args.postgres, BENCH_DATABASE)
    loaded = {"load_s": None}
    if not (args.keep and votestore.holds_votes(args.postgres, BENCH_DATABASE, args.pg_votes)):
        votestore.create_database(args.postgres, BENCH_DATABASE)
        store.open_engine(url).dispose()  # the schema, by the migrations
        loaded = votestore.load_votes(url, args.pg_votes, args.pg_models)
    try:
        steal_before, wall_before = cpu_steal_s(), time.perf_counter()
        sql = [run_child("sql", url) for _ in range(args.repeat)]
        rows = run_child("rows", url)
        seqscan = run_child("seqscan", url)
        wall_s = time.perf_counter() - wall_before
        steal_s = cpu_steal_s() - steal_before
    finally:
        if not args.keep:
            votestore.drop_database(args.postgres, BENCH_DATABASE)
    ours = sorted(sql, key=lambda run: run["total_s"])[len(sql) // 2]  # the median run
    peak = max(run["peak_rss_mb"] for run in sql)
    return {
        "case": "postgresql",
        "votes": args.pg_votes,
        "human_votes_rated": ours["votes"],
        "models": args.pg_models,
        "boards": len(ours["boards"]),
        "bootstrap_rounds": 1000,
        "sql_s": round(ours["total_s"], 3),
        "sql_query_s": round(ours["read_s"], 3),
        "sql_fit_s": round(ours["fit_s"], 3),
        "sql_runs_s": [round(run["total_s"], 3) for run in sql],
        "sql_peak_rss_mb": round(peak, 1),
        "process_startup_s": round(ours["startup_s"], 3),
        "target_s": TARGET_S,
        "target_rss_mb": TARGET_RSS_MB,
        "target_met": ours["total_s"] <= TARGET_S and peak <= TARGET_RSS_MB,
        "reference_rows_s": round(rows["total_s"], 3),
        "reference_rows_read_s": round(rows["read_s"], 3),
        "reference_rows_peak_rss_mb": round(rows["peak_rss_mb"], 1),
        "ratio_to_reference": round(rows["total_s"] / ours["total_s"], 1),
        "max_abs_diff_elo": round(largest_gap(ours["boards"], rows["boards"]), 6),
        "seqscan_query_s": round(seqscan["read_s"], 3),
        **loaded,
        "steal_pct": round(100 * steal_s / wall_s, 1),
        "cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--only", choices=("memory", "postgresql"))
    parser.add_argument("--votes", type=int, default=1_000_000, help="the memory case's votes")
    parser.add_argument("--models", type=int, default=40, help="the memory case's models")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of ours; the median is reported"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help=f"a PostgreSQL server (any database on it) where {BENCH_DATABASE} may be created",
    )
    parser.add_argument("--pg-votes", type=int, default=10_000_000)
    parser.add_argument("--pg-models", type=int, default=60)
    parser.add_argument(
        "--keep",
        action="store_true",
        help=f"leave {BENCH_DATABASE} in place, and reuse one a --keep run left with --pg-votes votes",
    )
    parser.add_argument("--child", choices=("sql", "rows", "seqscan"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url)
        return
    if args.only in (None, "memory"):
        print(json.dumps(memory_case(args)), flush=True)
    if args.only in (None, "postgresql"):
        print(json.dumps(postgresql_case(args)), flush=True)


if __name__ == "__main__":
    main()

"""The report's two halves of the data: attempts read in the build's process, votes (human and
judges') read and digested in a worker process of the report's own when the machine allows one."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from arena import store, tuning
from arena.report import downloads
from arena.report.digest import VoteDigest, digest_votes
from arena.report.quality import ROUTE_COLUMNS, JudgeDigest, check_summary, digest_judge


def vote_half(url: str, out_dir: str) -> VoteDigest:
    """Read the votes, write votes.csv and digest them; runs in a worker process on large builds."""
    engine = store.open_engine(url, create=False)
    try:
        votes = store.read_votes(
            engine, columns=[*downloads.VOTE_FIELDS, *ROUTE_COLUMNS], labels_as_categories=True
        )
        # The published boards are fitted on the votes counted in SQL, as `arena ratings` fits them.
        counts = store.read_pair_counts(engine)
        judges = read_judges(engine)
    finally:
        engine.dispose()
    downloads.write_votes_csv(votes, Path(out_dir) / "downloads" / "votes.csv")
    del votes["battle_id"]  # a million unique strings no page shows
    digest = digest_votes(votes, counts)
    digest.judges = judges
    return digest


def read_judges(engine: sa.Engine) -> list[JudgeDigest]:
    """Each judge with votes: its votes, its calls, and its figures against the human votes (read
    with the outputs shown, which the agreement matches on, only when some judge has voted)."""
    kinds = [kind for kind in store.voter_kinds(engine) if kind.startswith("judge:")]
    if not kinds:
        return []
    humans = store.read_votes(engine, include_flagged=False, extra_columns=True)
    return [
        digest_judge(
            kind,
            store.read_votes(engine, extra_columns=True, voters=kind),
            store.read_judge_calls(engine, kind),
            humans,
        )
        for kind in kinds
    ]


def read_checks(engine: sa.Engine) -> pd.DataFrame | None:
    """The checks that need no model, summed per check, model and provider (None: none stored)."""
    return check_summary(store.read_checks(engine))


def read_attempts(engine: sa.Engine) -> pd.DataFrame:
    """Every benchmark attempt but warm-ups with the columns pages and generations.csv use, oldest
    first. The gateway's attempts (source traffic) are read_traffic's: no challenge, no battle,
    no download and no benchmark figure ever takes one."""
    columns = dict.fromkeys(downloads.GENERATION_SOURCE_COLUMNS)  # ordered, no repeats
    attempts = store.read_attempts(
        engine, columns=list(columns), labels_as_categories=True, source="benchmark"
    )
    return _oldest_first(attempts)


TRAFFIC_COLUMNS = (
    "started_at",
    "model",
    "provider",
    "ok",
    "failure_class",
    "generation_ms",
    "ttfb_ms",
    "download_ms",
    "cost_usd",
    "gateway_request_id",
)


def read_traffic(engine: sa.Engine) -> pd.DataFrame:
    """The gateway's upstream attempts (source traffic) with the columns the provider tables use."""
    traffic = store.read_attempts(
        engine, columns=list(TRAFFIC_COLUMNS), labels_as_categories=True, source="traffic"
    )
    return _oldest_first(traffic)


def _oldest_first(attempts: pd.DataFrame) -> pd.DataFrame:
    if attempts["started_at"].is_monotonic_increasing:  # ids follow time, as a harness writes them
        return attempts
    order = np.argsort(attempts["started_at"].to_numpy(), kind="stable")  # ties stay in id order
    return attempts.take(order).reset_index(drop=True)


def vote_worker(url: str, out_dir: str) -> VoteDigest:
    """vote_half in the forked worker: a process of the report's own, so it may tune itself.

    One malloc arena keeps the ratings' bootstrap threads from leaving ~90 MB behind, and the
    lean read's millions of short-lived rows go uncollected (they form no cycles).
    """
    with tuning.one_malloc_arena(), tuning.paused_gc():
        return vote_half(url, out_dir)


def engine_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def can_fork(url: str) -> bool:
    in_memory = url.startswith("sqlite") and (
        url.endswith(":memory:") or url.rstrip("/") in ("sqlite:", "sqlite+pysqlite:")
    )
    return (
        not in_memory
        and (os.cpu_count() or 1) > 1
        and "fork" in multiprocessing.get_all_start_methods()
    )

"""The store: SQL tables (SQLite or PostgreSQL) and content-addressed image files.

Its modules, each one concern:

    engine      a database URL -> an engine (drivers, SQLite pragmas, migrations on open)
    migrations  the schema's Alembic revisions, the upgrade (under a lock) and its state
    tables      the SQLModel tables
    runs        runs and their jobs
    leases      named leases kept by a heartbeat: one live executor per run or nightly
    writer      the harness's results writer (attempts, images, finished jobs); held and retried
                while the store fails, then spilled; replay_spill saves a spill on resume
    spill       the spill file: results the store could not take, as JSON lines under the data dir
    frames      reads into DataFrames (attempts of either source, votes, judge calls, image paths)
                and the votes counted in SQL per pair of models, which the boards are fitted on
    judging     judges' calls and the votes their comparisons become (idempotent)
    checks      the checks that need no model: stored per output image, read beside its model
    votepath    the voting server's battles and votes (hand-written SQL on its own connections)

The names below are the store's public face; callers write ``store.read_votes(engine)``.
"""

from arena.store.checks import read_checks, save_checks
from arena.store.engine import engine_url, open_engine
from arena.store.frames import (
    ATTEMPT_SOURCES,
    count_votes,
    read_attempts,
    read_image_paths,
    read_judge_calls,
    read_pair_counts,
    read_votes,
    voter_kinds,
)
from arena.store.judging import (
    JudgeProgress,
    comparison_id,
    judge_progress,
    record_judge_call,
    record_judge_vote,
)
from arena.store.leases import (
    DEFAULT_TTL_S,
    Heartbeat,
    HeldLease,
    LeaseHeld,
    LeaseHolder,
    acquire_lease,
    holding,
    read_holder,
    release_lease,
    renew_lease,
)
from arena.store.runs import (
    create_run,
    get_run,
    list_runs,
    next_attempt_number,
    pending_jobs,
    run_cost_usd,
    run_summary,
    set_run_budget,
    set_run_status,
    settings_snapshot,
)
from arena.store.tables import Attempt, Job, JudgeCall, OutputCheck, Run, StoredImage, Vote
from arena.store.writer import StoreWriter, record_results, replay_spill

__all__ = [
    "ATTEMPT_SOURCES",
    "DEFAULT_TTL_S",
    "Attempt",
    "Heartbeat",
    "HeldLease",
    "Job",
    "JudgeCall",
    "JudgeProgress",
    "LeaseHeld",
    "LeaseHolder",
    "OutputCheck",
    "Run",
    "StoreWriter",
    "StoredImage",
    "Vote",
    "acquire_lease",
    "comparison_id",
    "count_votes",
    "create_run",
    "engine_url",
    "get_run",
    "holding",
    "judge_progress",
    "list_runs",
    "next_attempt_number",
    "open_engine",
    "pending_jobs",
    "read_attempts",
    "read_checks",
    "read_holder",
    "read_image_paths",
    "read_judge_calls",
    "read_pair_counts",
    "read_votes",
    "record_judge_call",
    "record_judge_vote",
    "record_results",
    "replay_spill",
    "release_lease",
    "renew_lease",
    "run_cost_usd",
    "run_summary",
    "save_checks",
    "set_run_budget",
    "set_run_status",
    "settings_snapshot",
    "voter_kinds",
]

"""The nightly job: run the configured challenges, check the night's outputs (the checks that need
no model, arena.app.check), then rebuild the report from the store.

A night holds the lease "nightly:<config>" (the config file, or the data dir for a config-less
setup) in the store for its whole duration, so a second `arena nightly` on the same config and
store, on this host or any other sharing the database, is refused with one line and makes no run.
The run inside holds its own lease on the same store, and that one stops the sending when the store
cannot be reached; the night's lease only keeps a second night from starting.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arena import store
from arena.config import Settings
from arena.errors import ArenaError


class NightlyError(ArenaError):
    """The night could not run (or its report could not be built); the message says why."""


@dataclass
class NightlyReport:
    run: object  # arena.app.runs.RunReport
    site: object  # arena.report.BuildResult
    checks: object = None  # arena.app.check.CheckReport; None when the checks could not run
    checks_error: str | None = None  # why not: the night goes on without them


def nightly_lease_name(settings: Settings) -> str:
    """'nightly:<config file>' (resolved), or 'nightly:<data dir>' when there is no config file."""
    source = Path(settings.source)
    where = str(source.resolve()) if source.is_file() else str(settings.data_dir)
    name = f"nightly:{where}"
    if len(name) > 200:  # the column's width: keep the path's end, made unique by its hash
        name = f"nightly:{hashlib.sha256(where.encode()).hexdigest()[:16]}:…{where[-150:]}"
    return name


def run_nightly(
    settings: Settings,
    out_dir: Path,
    *,
    max_cost_usd: float | None = None,
    on_planned: Callable | None = None,
    on_result: Callable | None = None,
    tuning: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> NightlyReport:
    """One night: a new run of every configured challenge, then the site rebuilt in out_dir.

    Provider failures are results (the run completed); a run that cannot start, or a report that
    cannot be built, raises NightlyError naming the step. While another night on the same config
    holds the lease, NightlyError names its owner and no run is made.
    """
    try:
        engine = store.open_engine(settings.database_url)
    except ArenaError as exc:
        raise NightlyError(f"nightly: the run could not start: {exc}") from None
    try:
        with store.holding(engine, nightly_lease_name(settings)):
            return _night(settings, out_dir, max_cost_usd, on_planned, on_result, tuning)
    except store.LeaseHeld as exc:
        raise NightlyError(
            f"nightly: another night on {exc.name.removeprefix('nightly:')} is being run by "
            f"{exc.holder.describe()}; {exc.holder.advice()}"
        ) from None
    finally:
        engine.dispose()


def _night(settings, out_dir, max_cost_usd, on_planned, on_result, tuning) -> NightlyReport:
    from arena.app.runs import RunFailed, run_benchmark
    from arena.report import build_site

    try:
        run = run_benchmark(
            settings,
            max_cost_usd=max_cost_usd,
            on_planned=on_planned,
            on_result=on_result,
            tuning=tuning,
        )
    except RunFailed as exc:  # it started, and stopped part-way: the message says how to finish it
        raise NightlyError(f"nightly: {exc}") from None
    except ArenaError as exc:
        raise NightlyError(f"nightly: the run could not start: {exc}") from None
    checks, checks_error = check_night(settings, run.run_id)
    try:
        site = build_site(settings, out_dir)
    except (ArenaError, OSError) as exc:
        raise NightlyError(
            f"nightly: run {run.run_id} finished but the report could not be built: {exc}"
        ) from None
    return NightlyReport(run=run, site=site, checks=checks, checks_error=checks_error)


def check_night(settings: Settings, run_id: str):
    """The checks on one run's outputs, before the report shows them: (CheckReport, None), or
    (None, why) when they cannot run; a check is a second opinion, so it never stops a night."""
    from arena.app.check import check_outputs

    try:
        return check_outputs(settings, run_id), None
    except ArenaError as exc:
        return None, str(exc)

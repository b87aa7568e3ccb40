"""The nightly job: run the configured challenges, then rebuild the report from the store."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arena.config import Settings
from arena.errors import ArenaError


class NightlyError(ArenaError):
    """The night could not run (or its report could not be built); the message says why."""


@dataclass
class NightlyReport:
    run: object  # arena.app.runs.RunReport
    site: object  # arena.report.BuildResult


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
    cannot be built, raises NightlyError naming the step.
    """
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
    try:
        site = build_site(settings, out_dir)
    except (ArenaError, OSError) as exc:
        raise NightlyError(
            f"nightly: run {run.run_id} finished but the report could not be built: {exc}"
        ) from None
    return NightlyReport(run=run, site=site)

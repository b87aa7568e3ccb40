"""`arena check`: run the checks that need no model on a run's (or every) stored output, and store
the results per output image (docs/checks.md)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from arena import checks, stats, store
from arena.challenges import Challenge, load_challenges
from arena.checks import CheckError, CheckResult, CheckSetupError, SourceFacts
from arena.config import Settings
from arena.errors import RunError
from arena.store import votepath

MAX_WORKERS = 4  # decoding, hashing and the cascade release the GIL for most of their time


@dataclass(frozen=True)
class CheckReport:
    """What `arena check` did: outputs looked at, checked, the ones that could not be, the counts."""

    run_id: str | None  # None: every run's outputs
    outputs: int  # outputs found (challenge x model@provider x image)
    checked: int  # of them, checked
    problems: tuple[str, ...]  # one line per image that could not be checked
    counts: pd.DataFrame = field(repr=False)  # stats.count_flagged: model, provider, check, ...

    def flagged(self) -> dict[str, tuple[int, int]]:
        """Per check that ran: (outputs flagged, outputs checked)."""
        totals = self.counts.groupby("check")[["flagged", "outputs"]].sum()
        return {
            name: (int(totals.at[name, "flagged"]), int(totals.at[name, "outputs"]))
            for name in checks.CHECKS
            if name in totals.index
        }


def check_outputs(settings: Settings, run: str | None = None) -> CheckReport:
    """Check every successful benchmark output of `run` (an id or "last"; None: every run), store
    one row per image and check (replacing earlier ones), and count per model and provider.

    An image that cannot be read or decoded is reported in `problems`; the others are still
    checked and stored."""
    engine = store.open_engine(settings.database_url)
    run_id = _run_id(engine, run)
    outputs = votepath.successful_outputs(engine, run_id)
    challenges = {c.slug: c for c in load_challenges(settings.challenges_dir)}
    # One image may answer several challenges (an unchanged source, for one): it is read once,
    # checked for each, and stored once per check (the table's key is image and check), a flagged
    # result before a passing one.
    paths: dict[str, str] = {}
    slugs: dict[str, set[str]] = {}
    for o in outputs:
        paths.setdefault(o["image_sha256"], o["path"])
        slugs.setdefault(o["image_sha256"], set()).add(o["challenge"])
    todo = [(sha, paths[sha], sorted(slugs[sha])) for sha in sorted(paths)]
    used = sorted({slug for names in slugs.values() for slug in names if slug in challenges})
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, os.cpu_count() or 1)) as pool:
        facts = dict(
            zip(
                used,
                pool.map(lambda slug: _source_facts(challenges[slug], settings), used),
                strict=True,
            )
        )
        results = list(pool.map(lambda item: _check_one(item, challenges, facts, settings), todo))
    problems = tuple(found for found in results if isinstance(found, str))
    failed = {item[0] for item, found in zip(todo, results, strict=True) if isinstance(found, str)}
    rows = _one_row_per_check(
        (item[0], slug, result)
        for item, found in zip(todo, results, strict=True)
        if not isinstance(found, str)
        for slug, answers in found
        for result in answers
    )
    store.save_checks(engine, rows)
    checked = [o for o in outputs if o["image_sha256"] not in failed]
    frame = store.read_checks(engine, run_id)
    frame = frame[frame["image_sha256"].isin({o["image_sha256"] for o in checked})]
    return CheckReport(
        run_id=run_id,
        outputs=len(outputs),
        checked=len(checked),
        problems=problems,
        counts=stats.count_flagged(frame),
    )


def _run_id(engine, run: str | None) -> str | None:
    if run is None:
        return None
    try:
        return store.get_run(engine, run).id
    except RunError as exc:
        if run == "last":  # get_run's own words speak of resuming
            raise RunError("--run last: the store has no runs yet; `arena run` makes one") from None
        raise RunError(f"--run {run}: {exc}") from None


def _source_facts(challenge: Challenge, settings: Settings) -> SourceFacts:
    if not challenge.source_images:
        return SourceFacts()
    try:
        data = [path.read_bytes() for path in challenge.source_images]
    except OSError as exc:
        raise CheckError(f"challenge {challenge.slug}: a source image: {exc.strerror}") from None
    try:
        return checks.describe_sources(data, settings.checks)
    except CheckError as exc:
        raise CheckError(f"challenge {challenge.slug}: {exc}") from None


def _check_one(item, challenges: dict[str, Challenge], facts, settings: Settings):
    """[(challenge, its results)] for one image, or one line saying why it was not checked."""
    sha, path, slugs = item
    where = f"image {sha[:12]} ({', '.join(slugs)}) at {settings.data_dir / path}"
    try:
        data = (settings.data_dir / path).read_bytes()
    except OSError as exc:
        return f"{where}: cannot be read: {exc.strerror}"
    found = []
    for slug in slugs:
        challenge = challenges.get(slug)
        if challenge is None:  # no longer in challenges/: only what needs no challenge
            requested, sources = None, None
        else:
            requested = checks.requested_ratio(challenge.size, challenge.aspect_ratio)
            sources = facts.get(slug)
        try:
            answers = checks.check_output(
                data, settings.checks, sources=sources, requested=requested
            )
        except CheckSetupError:
            raise  # not this image's fault: no image can be checked
        except CheckError as exc:
            return f"{where}: {exc}"
        found.append((slug, answers))
    return found


def _one_row_per_check(found: Iterable[tuple[str, str, CheckResult]]) -> list[dict]:
    """The store's rows: per (image, check), a flagged result before a passing one."""
    best: dict[tuple[str, str], dict] = {}
    for sha, challenge, result in found:
        key = (sha, result.check)
        if key in best and (best[key]["flagged"] or not result.flagged):
            continue
        best[key] = {
            "image_sha256": sha,
            "check": result.check,
            "challenge": challenge,
            "flagged": result.flagged,
            "value": result.value,
            "threshold": result.threshold,
            "detail": result.detail,
        }
    return list(best.values())

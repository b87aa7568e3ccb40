"""The `arena` command: thin subcommands that parse arguments, call one library function, and print."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from arena import __version__, tuning
from arena.errors import ArenaError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _settings(args):
    from arena.config import load_settings
    from arena.providers import protocol_facts

    return load_settings(args.config, protocols=protocol_facts())


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


# --- challenges / validate -------------------------------------------------------------------


def cmd_challenges(args) -> int:
    from arena.challenges import load_challenges

    settings = _settings(args)
    challenges = load_challenges(settings.challenges_dir)
    if args.json:
        _print_json(
            [
                {
                    "slug": c.slug,
                    "title": c.title,
                    "kind": c.kind,
                    "category": c.category,
                    "prompt": c.prompt,
                    "prompt_format": c.prompt_format,
                    "source_images": [p.name for p in c.source_images],
                    "size": c.size,
                    "aspect_ratio": c.aspect_ratio,
                    "resolution": c.resolution,
                }
                for c in challenges
            ]
        )
        return 0
    for c in challenges:
        sources = (
            f"  sources: {', '.join(p.name for p in c.source_images)}" if c.source_images else ""
        )
        print(f"{c.slug:<24} {c.kind:<14} {c.category:<16} {c.title}{sources}")
    return 0


def cmd_validate(args) -> int:
    from arena.challenges import load_challenges

    settings = _settings(args)
    challenges = load_challenges(settings.challenges_dir, list(settings.challenges) or None)
    missing_keys = sorted(
        {
            p.api_key_env
            for p in settings.providers.values()
            if p.api_key_env and not os.environ.get(p.api_key_env)
        }
    )
    print(
        f"config OK: {settings.source}: {len(settings.providers)} provider(s), {len(settings.models)} model(s), "
        f"{len(settings.routes)} route(s)"
    )
    print(f"challenges OK: {len(challenges)} in {settings.challenges_dir}")
    print(f"database: {_safe_url(settings.database_url)}; data dir: {settings.data_dir}")
    for env in missing_keys:
        print(f"warning: {env} is not set; providers that need it will fail to start")
    return 0


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


# --- run / demo --------------------------------------------------------------------------------


class _Progress:
    """A live progress bar with success and failure counts (plain lines when not a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True)
        self.ok = self.failed = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task = None

    def planned(self, run_id: str, jobs: int) -> None:
        self.console.print(f"run {run_id}: {jobs} job(s) to do")
        self.progress.start()
        self.task = self.progress.add_task("generating", total=jobs, ok=0, failed=0)

    def result(self, attempt) -> None:
        if attempt.warmup:
            return
        if attempt.ok:
            self.ok += 1
        else:
            self.failed += 1
        retried = attempt.failure_class == "rate_limited"
        self.progress.update(self.task, advance=0 if retried else 1, ok=self.ok, failed=self.failed)

    def stop(self) -> None:
        self.progress.stop()


def _run(settings, args, challenges=None):
    from arena.app.runs import run_benchmark

    progress = _Progress()
    try:
        return run_benchmark(
            settings,
            resume=getattr(args, "resume", None),
            max_cost_usd=getattr(args, "max_cost", None),
            on_planned=progress.planned,
            on_result=progress.result,
            challenges=challenges,
            tuning=tuning.timed_run,
        )
    finally:
        progress.stop()


def _print_run(report) -> None:
    o = report.outcome
    print(
        f"run {report.run_id}: {report.status}; {o.attempted} attempt(s), {o.succeeded} succeeded, {o.failed} failed"
        + (
            f" ({', '.join(f'{k} {v}' for k, v in sorted(o.failures.items()))})"
            if o.failures
            else ""
        )
        + f"; cost ${o.spent_usd:.4f}"
    )
    if o.budget_stopped:
        print(
            f"budget reached: stopped scheduling with {report.summary['pending']} job(s) not run; "
            f"raise --max-cost and run `arena run --resume {report.run_id}` to finish"
        )


def cmd_run(args) -> int:
    from dataclasses import replace

    settings = _settings(args)
    if args.samples:
        settings = replace(settings, samples=args.samples)
    if args.challenge:
        settings = replace(settings, challenges=tuple(args.challenge))
    report = _run(settings, args)
    _print_run(report)
    return 0


def cmd_demo(args) -> int:
    from arena.config import demo_settings
    from arena.providers import protocol_facts

    settings = demo_settings(protocol_facts())
    if os.environ.get("ARENA_DEMO_CHALLENGES"):  # a smaller demo for quick checks
        from dataclasses import replace

        settings = replace(
            settings, challenges=tuple(os.environ["ARENA_DEMO_CHALLENGES"].split(","))
        )
    print(
        "arena demo: every shipped challenge against the built-in `local` baseline provider (no keys, no internet)"
    )
    report = _run(settings, args)
    _print_run(report)
    print()
    args.window, args.model, args.json = "all", None, False
    _print_stats(settings, args, run_id=report.run_id)
    print()
    print(f"results: {_safe_url(settings.database_url)}")
    print(f"images:  {settings.images_dir}")
    _print_site(_build_report(settings, args.out))
    print(
        "next:    `arena stats` for the provider table, `arena run --resume last` after an interruption"
    )
    return 0


# --- report / nightly --------------------------------------------------------------------------


def _build_report(settings, out: Path):
    from arena.report import build_site

    return build_site(settings, out)


def _print_site(site) -> None:
    print(f"report:  {site.index.resolve()} ({site.pages} pages)")
    print(
        "vote:    run `arena serve` and open the page it prints; `arena report` rebuilds the site"
    )


def cmd_report(args) -> int:
    _print_site(_build_report(_settings(args), args.out))
    return 0


def cmd_nightly(args) -> int:
    from arena.app.nightly import run_nightly

    progress = _Progress()
    try:
        night = run_nightly(
            _settings(args),
            args.out,
            max_cost_usd=args.max_cost,
            on_planned=progress.planned,
            on_result=progress.result,
            tuning=tuning.timed_run,
        )
    finally:
        progress.stop()
    _print_run(night.run)
    _print_site(night.site)
    return 0


# --- stats -----------------------------------------------------------------------------------


def _print_stats(settings, args, run_id=None) -> None:
    from arena import stats, store

    window = stats.parse_window(args.window)
    engine = store.open_engine(settings.database_url)
    since = stats.window_start(window, datetime.now(UTC))
    attempts = store.read_attempts(engine, since=since, model=args.model, run_id=run_id)
    table = stats.provider_table(attempts)
    if args.json:
        _print_json(stats.records(table))
    else:
        scope = (
            f"run {run_id}"
            if run_id
            else ("all time" if window is None else f"the last {args.window}")
        )
        print(f"provider performance over {scope}:")
        print(stats.format_table(table))


def cmd_stats(args) -> int:
    _print_stats(_settings(args), args)
    return 0


# --- providers / probe -------------------------------------------------------------------------


def cmd_providers(args) -> int:
    from arena.app.catalog import format_catalog, provider_catalog

    catalog = provider_catalog(_settings(args))
    if args.json:
        _print_json(catalog)
    else:
        print(format_catalog(catalog), end="")
    return 0


def cmd_probe(args) -> int:
    from arena.app.probe import format_probe, probe

    result = probe(_settings(args), args.target, args.challenge, save_to=args.out)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_probe(result), end="")
    return 0 if result.ok else 1


# --- ratings ---------------------------------------------------------------------------------


def cmd_ratings(args) -> int:
    from arena.ratings import RatingOptions, boards_records, compute_boards, format_boards_text

    if args.votes:
        from arena.ratings.frames import read_votes_file

        votes = read_votes_file(args.votes)
    else:
        from arena import store

        votes = store.read_votes(store.open_engine(_settings(args).database_url))
    if args.task:
        votes = votes[votes["task"] == args.task]
    options = RatingOptions(
        ties=args.ties,
        both_bad=args.both_bad,
        anchor=args.anchor,
        bootstrap_rounds=args.rounds,
        seed=args.seed,
        intervals=args.intervals,
        min_votes=args.min_votes,
    )
    boards = compute_boards(votes, options, by=args.by)
    if args.json:
        records = boards_records(boards, by=args.by)
        _print_json(records)
    else:
        print(format_boards_text(boards, by=args.by))
    return 0


# --- db ----------------------------------------------------------------------------------------


def _schema_line(state) -> str:
    note = {
        "behind": "; `arena db upgrade` (or any command that opens it) upgrades it",
        "newer": "; a newer arena upgraded it",
    }.get(state.status, "")
    return f"revision: {state.label}, {state.status} (this arena's newest is {state.head}){note}"


def cmd_db_current(args) -> int:
    from arena.app.database import database_state

    settings = _settings(args)
    state = database_state(settings)
    print(f"database: {_safe_url(settings.database_url)}")
    print(_schema_line(state))
    return 0


def cmd_db_upgrade(args) -> int:
    from arena.app.database import upgrade_database

    settings = _settings(args)
    before, after = upgrade_database(settings)
    where = _safe_url(settings.database_url)
    if before.revision == after.revision:
        print(f"database: {where}: already at {after.label} (up to date)")
    else:
        print(f"database: {where}: upgraded from {before.label} to {after.label}")
    return 0


def cmd_db_history(args) -> int:
    from arena.app.database import schema_history

    revisions = schema_history()
    for revision in revisions:
        head = "  (head)" if revision is revisions[-1] else ""
        print(f"{revision.id}  {revision.message}{head}")
    return 0


# --- local provider ----------------------------------------------------------------------------


def cmd_local_provider(args) -> int:
    import uvicorn

    from arena.providers.local import LocalProvider

    provider = LocalProvider(delay_s=args.delay)
    provider.base_url = f"http://{args.host}:{args.port}"
    print(
        f"local baseline provider on {provider.base_url}/v1 (OpenAI images API); Ctrl-C to stop",
        flush=True,
    )
    uvicorn.run(provider.app, host=args.host, port=args.port, log_level="warning")
    return 0


# --- serve ---------------------------------------------------------------------------------------


def cmd_serve(args) -> int:
    import uvicorn

    from arena.web import create_app
    from arena.web.options import options_from_env

    settings = _settings(args)
    if args.workers > 1 and settings.database_url.startswith("sqlite"):
        raise ArenaError(
            "--workers above 1 needs a PostgreSQL database_url: SQLite takes one writing process"
        )
    app = create_app(
        settings, options_from_env()
    )  # makes every missing blind derivative once, here
    pool = app.state.voting.pool
    print(
        f"voting page on http://{args.host}:{args.port}/ ({len(pool.outputs)} output(s) over "
        f"{len(pool.challenges)} challenge(s); store {_safe_url(settings.database_url)}); Ctrl-C to stop",
        flush=True,
    )
    common = {
        "log_level": "warning",
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
    }  # uvicorn[standard]: several times the asyncio/h11 rate
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, **common)
    else:
        from arena.web.workers import serve_workers

        config_path = str(Path(args.config).resolve()) if args.config else None
        serve_workers(args.host, args.port, args.workers, common, config_path)
    return 0


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arena",
        description="Benchmark image generation and editing models "
        "across providers, and rank them by blind votes.",
    )
    parser.add_argument("--version", action="version", version=f"arena {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        help="path to arena.toml (default: $ARENA_CONFIG, ./arena.toml, or the built-in demo config)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo", parents=[common], help="run every challenge against the local baseline provider"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="where the report is built (default reports/)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "report", parents=[common], help="rebuild the static HTML report site from the store"
    )
    p.add_argument(
        "--out", type=Path, default=Path("reports"), help="output folder (default reports/)"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "nightly", parents=[common], help="run the configured challenges, then rebuild the report"
    )
    p.add_argument(
        "--out", type=Path, default=Path("reports"), help="output folder (default reports/)"
    )
    p.add_argument(
        "--max-cost",
        type=_non_negative,
        metavar="USD",
        help="stop scheduling once the next job would pass this budget",
    )
    p.set_defaults(func=cmd_nightly)

    p = sub.add_parser(
        "run", parents=[common], help="run the configured challenges against every configured model"
    )
    p.add_argument(
        "--resume", metavar="RUN_ID", help="finish an interrupted run (an id, or 'last')"
    )
    p.add_argument(
        "--max-cost",
        type=_non_negative,
        metavar="USD",
        help="stop scheduling once the next job would pass this budget",
    )
    p.add_argument(
        "--samples",
        type=_positive_int,
        help="images per challenge and model@provider (default: config)",
    )
    p.add_argument(
        "--challenge", action="append", metavar="SLUG", help="only this challenge (repeatable)"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "stats",
        parents=[common],
        help="provider performance: p50/p95 generation time, TTFB, success rate",
    )
    p.add_argument(
        "--window", default="30d", help="time window: 30d, 12h, 90m or all (default 30d)"
    )
    p.add_argument("--model", help="only this model")
    p.add_argument("--json", action="store_true", help="one JSON object per model and provider")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser(
        "ratings",
        parents=[common],
        help="Bradley-Terry ratings (Elo scale) with 95%% intervals from the votes",
    )
    p.add_argument(
        "--votes",
        metavar="FILE",
        help="a CSV or JSONL file of votes (model_a, model_b, winner, ...); default: the store",
    )
    p.add_argument("--task", choices=["text-to-image", "edit"], help="only this task's board")
    p.add_argument(
        "--by", choices=["category", "challenge"], help="one board per category or challenge"
    )
    p.add_argument(
        "--ties",
        choices=["half", "drop", "davidson"],
        default="half",
        help="how ties count (default: half a win)",
    )
    p.add_argument(
        "--both-bad",
        choices=["tie", "drop"],
        default="tie",
        help="how 'both bad' counts (default: a tie)",
    )
    p.add_argument(
        "--anchor", metavar="MODEL", help="pin this model at 1000 instead of centring the board"
    )
    p.add_argument("--intervals", choices=["bootstrap", "closed_form"], default="bootstrap")
    p.add_argument(
        "--rounds", type=_positive_int, default=1000, help="bootstrap rounds (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0: reproducible)")
    p.add_argument(
        "--min-votes", type=int, default=30, help="below this a model is marked preliminary"
    )
    p.add_argument("--json", action="store_true", help="one object per board, with one per model")
    p.set_defaults(func=cmd_ratings)

    p = sub.add_parser("challenges", parents=[common], help="list the challenges")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_challenges)

    p = sub.add_parser(
        "validate", parents=[common], help="check the config and every challenge file"
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "providers",
        parents=[common],
        help="providers, models, capabilities, prices, parameter handling",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_providers)

    p = sub.add_parser(
        "probe",
        parents=[common],
        help="send one request to MODEL@PROVIDER and show its timing breakdown",
    )
    p.add_argument("target", metavar="MODEL@PROVIDER")
    p.add_argument(
        "--challenge", required=True, metavar="SLUG", help="the challenge whose request is sent"
    )
    p.add_argument("--out", type=Path, metavar="PATH", help="save the returned image here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser(
        "serve", parents=[common], help="serve the blind voting page and its JSON API"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_positive_int, default=8000)
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="server processes (use PostgreSQL for more than 1)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("db", help="the database's schema: its revision, its upgrade, the revisions")
    db = p.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    q = db.add_parser(
        "current", parents=[common], help="the database's schema revision, and whether it is behind"
    )
    q.set_defaults(func=cmd_db_current)
    q = db.add_parser(
        "upgrade",
        parents=[common],
        help="upgrade the database to this arena's newest revision (opening it does so too)",
    )
    q.set_defaults(func=cmd_db_upgrade)
    q = db.add_parser("history", help="every schema revision, oldest first, with what it does")
    q.set_defaults(func=cmd_db_history)

    p = sub.add_parser("local-provider", help="serve the local baseline provider alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_positive_int, default=8100)
    p.add_argument(
        "--delay",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="answer no sooner than this",
    )
    p.set_defaults(func=cmd_local_provider)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ArenaError as exc:
        print(f"arena: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\narena: interrupted; finish with `arena run --resume last`", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

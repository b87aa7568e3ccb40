"""The `arena` command line: every subcommand, its options and its help."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from arena import __version__
from arena.cli import commands


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one `arena: error:` line (naming the command), exit 2."""

    def error(self, message: str):
        command = self.prog.removeprefix("arena").strip()
        where = f" (see `arena {command} --help`)" if command else " (see `arena --help`)"
        self.exit(2, f"arena: error: {' '.join(message.split())}{where}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p.set_defaults(func=commands.cmd_demo)

    p = sub.add_parser(
        "report", parents=[common], help="rebuild the static HTML report site from the store"
    )
    p.add_argument(
        "--out", type=Path, default=Path("reports"), help="output folder (default reports/)"
    )
    p.set_defaults(func=commands.cmd_report)

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
    p.set_defaults(func=commands.cmd_nightly)

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
    p.set_defaults(func=commands.cmd_run)

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
    p.set_defaults(func=commands.cmd_stats)

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
    p.set_defaults(func=commands.cmd_ratings)

    p = sub.add_parser("challenges", parents=[common], help="list the challenges")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=commands.cmd_challenges)

    p = sub.add_parser(
        "validate", parents=[common], help="check the config and every challenge file"
    )
    p.set_defaults(func=commands.cmd_validate)

    p = sub.add_parser(
        "providers",
        parents=[common],
        help="providers, models, capabilities, prices, parameter handling",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=commands.cmd_providers)

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
    p.set_defaults(func=commands.cmd_probe)

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
    p.set_defaults(func=commands.cmd_serve)

    p = sub.add_parser("db", help="the database's schema: its revision, its upgrade, the revisions")
    db = p.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    q = db.add_parser(
        "current", parents=[common], help="the database's schema revision, and whether it is behind"
    )
    q.set_defaults(func=commands.cmd_db_current)
    q = db.add_parser(
        "upgrade",
        parents=[common],
        help="upgrade the database to this arena's newest revision (opening it does so too)",
    )
    q.set_defaults(func=commands.cmd_db_upgrade)
    q = db.add_parser("history", help="every schema revision, oldest first, with what it does")
    q.set_defaults(func=commands.cmd_db_history)

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
    p.set_defaults(func=commands.cmd_local_provider)
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
    if not 0 <= value < math.inf:  # nan compares false with everything: a budget never reached
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number, 0 or more")
    return value

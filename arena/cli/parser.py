"""The `arena` command line: every subcommand, its options and its help."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from arena import __version__
from arena.cli import checking, commands, judging


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one `arena: error:` line (naming the command), exit 2."""

    def error(self, message: str):
        command = self.prog.removeprefix("arena").strip()
        where = f" (see `arena {command} --help`)" if command else " (see `arena --help`)"
        self.exit(2, f"arena: error: {' '.join(message.split())}{where}\n")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help with each option's default shown, and the examples kept line by line.

    argparse.ArgumentDefaultsHelpFormatter would also print "(default: None)" and "(default:
    False)"; an option without a value of its own says in its help what happens instead.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):  # one command a line, as a user would type it
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or action.default in (None, False, argparse.SUPPRESS)
            or "default" in text
        ):
            return text
        return f"{text} (default: %(default)s)"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _command(sub, name: str, help: str, description: str, examples: tuple[str, ...], **kwargs):
    """A subcommand whose --help has a description, every default and examples."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=_examples(*examples),
        formatter_class=HelpFormatter,
        **kwargs,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="arena",
        description="Benchmark image generation and editing models "
        "across providers, and rank them by blind votes.",
        epilog=_examples(
            "arena demo                    # every challenge against the local baseline provider",
            "arena run --max-cost 2        # every challenge x model@provider, within a budget",
            "arena COMMAND --help          # what one command does, its options and examples",
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"arena {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        help="path to arena.toml (default: $ARENA_CONFIG, ./arena.toml, or the built-in demo config)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(
        sub,
        "demo",
        "run every challenge against the local baseline provider",
        "Run every shipped challenge against the built-in local baseline provider (no keys, no "
        "internet), print the provider table and build the report.",
        ("arena demo", "arena demo --out /tmp/arena-site"),
        parents=[common],
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="where the report is built")
    p.set_defaults(func=commands.cmd_demo)

    p = _command(
        sub,
        "report",
        "rebuild the static HTML report site from the store",
        "Rebuild the static HTML site from the store: the leaderboards, a page per model, "
        "challenge and provider, the charts and the downloads.",
        ("arena report", "arena report --out public/"),
        parents=[common],
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="output folder")
    p.set_defaults(func=commands.cmd_report)

    p = _command(
        sub,
        "nightly",
        "run the configured challenges, then rebuild the report",
        "Run the configured challenges, then rebuild the report: the job cron or a systemd "
        "timer starts every night.",
        (
            "arena nightly --max-cost 5",
            "arena nightly --config /etc/arena/arena.toml --out /srv/www",
        ),
        parents=[common],
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="output folder")
    p.add_argument(
        "--max-cost",
        type=_non_negative,
        metavar="USD",
        help="stop scheduling once the next job would pass this budget (default: no budget)",
    )
    p.set_defaults(func=commands.cmd_nightly)

    p = _command(
        sub,
        "run",
        "run the configured challenges against every configured model",
        "Plan a run (challenge x model@provider x sample) into the store and execute it; an "
        "interrupted run picks up where it stopped with --resume.",
        (
            "arena run --max-cost 2",
            "arena run --challenge bald-man --samples 3",
            "arena run --resume last",
        ),
        parents=[common],
    )
    p.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="finish an interrupted run (an id, or 'last') (default: plan a new run)",
    )
    p.add_argument(
        "--max-cost",
        type=_non_negative,
        metavar="USD",
        help="stop scheduling once the next job would pass this budget (default: no budget)",
    )
    p.add_argument(
        "--samples",
        type=_positive_int,
        help="images per challenge and model@provider (default: the config's samples)",
    )
    p.add_argument(
        "--challenge",
        action="append",
        metavar="SLUG",
        help="only this challenge, repeatable (default: the config's challenges)",
    )
    p.add_argument(
        "--plan-only",
        action="store_true",
        help="store the new run's jobs and print its id; `arena worker` on any host executes them",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="execute the run with N local worker processes, one progress bar for all "
        "(PostgreSQL for N above 1) (default: this process alone)",
    )
    p.set_defaults(func=commands.cmd_run)

    p = _command(
        sub,
        "worker",
        "execute a stored run's jobs beside other workers (any host, one PostgreSQL)",
        "Join a stored run and execute its pending jobs beside any number of other workers, on "
        "any host sharing the database: jobs are claimed in batches under a lease, and the "
        "providers' limits and the run's budget hold across all of them. Exits when no job is left.",
        (
            "arena worker --run last   # on each host, after `arena run --plan-only` on one",
            "arena worker --run 20261201-020000-ab12 --concurrency 64",
        ),
        parents=[common],
    )
    p.add_argument(
        "--run",
        default="last",
        metavar="RUN_ID",
        help="the run to work on: an id, or 'last' (default: last)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="jobs this worker holds at once (default: twice the sum of its providers' "
        "max_concurrency)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar: only the final line and errors"
    )
    p.set_defaults(func=commands.cmd_worker)

    p = _command(
        sub,
        "stats",
        "provider performance: p50/p95 generation time, TTFB, success rate",
        "Per model, the provider table: p50/p95 generation time, success rate, TTFB, failure "
        "classes and the providers' commonest failure messages; from the benchmark's attempts, "
        "or with --source from the gateway's real API requests (or both).",
        (
            "arena stats",
            "arena stats --window 12h --model gpt-image-1",
            "arena stats --source traffic",
            "arena stats --json",
        ),
        parents=[common],
    )
    p.add_argument("--window", default="30d", help="time window: 30d, 12h, 90m or all")
    p.add_argument(
        "--source",
        choices=["benchmark", "traffic", "all"],
        default="benchmark",
        help="whose attempts: the benchmark's runs, the gateway's real API requests, or both "
        "(default: benchmark)",
    )
    p.add_argument("--model", help="only this model (default: every model)")
    p.add_argument("--json", action="store_true", help="one JSON object per model and provider")
    p.set_defaults(func=commands.cmd_stats)

    p = _command(
        sub,
        "ratings",
        "Bradley-Terry ratings (Elo scale) with 95%% intervals from the votes",
        "The text-to-image and edit boards: Bradley-Terry ratings on the Elo scale with 95% "
        "intervals, ranks and vote counts, from the store or a released votes file.",
        (
            "arena ratings",
            "arena ratings --by category",
            "arena ratings --votes votes.csv --json",
            "arena ratings --voters judge:gpt4o",
            "arena ratings --by route",
            "arena ratings --agreement --by category",
        ),
        parents=[common],
    )
    p.add_argument(
        "--votes",
        metavar="FILE",
        help="a CSV or JSONL file of votes (model_a, model_b, winner, ...) (default: the store)",
    )
    p.add_argument(
        "--task",
        choices=["text-to-image", "edit"],
        help="only this task's board (default: both tasks)",
    )
    p.add_argument(
        "--by",
        choices=["category", "challenge", "route"],
        help="one board per category or challenge, or boards of routes (model@provider) with the "
        "test of whether two routes of one model differ (default: one board per task)",
    )
    p.add_argument(
        "--ties",
        choices=["half", "drop", "davidson"],
        default="half",
        help="how ties count (default: half, half a win each)",
    )
    p.add_argument(
        "--both-bad",
        choices=["tie", "drop"],
        default="tie",
        help="how 'both bad' counts (default: tie)",
    )
    p.add_argument(
        "--anchor",
        metavar="MODEL",
        help="pin this model at 1000 (default: the average model sits at 1000)",
    )
    p.add_argument(
        "--intervals",
        choices=["bootstrap", "closed_form"],
        default="bootstrap",
        help="how the 95%% intervals are computed",
    )
    p.add_argument("--rounds", type=_positive_int, default=1000, help="bootstrap rounds")
    p.add_argument(
        "--seed", type=int, default=0, help="bootstrap seed (default: 0, so reruns agree)"
    )
    p.add_argument(
        "--min-votes", type=int, default=30, help="below this a model is marked preliminary"
    )
    p.add_argument(
        "--voters",
        default="humans",
        metavar="WHO",
        help="whose votes: humans, judge:NAME (one judge's), judges (every judge's) or all "
        "(default: humans)",
    )
    p.add_argument(
        "--agreement",
        action="store_true",
        help="how far each judge agrees with the human votes (per task, and --by category or "
        "challenge), Kendall's tau between the boards, and the judge's position bias",
    )
    p.add_argument(
        "--judge", metavar="NAME", help="with --agreement: only this judge (default: every judge)"
    )
    p.add_argument("--json", action="store_true", help="one object per board, with one per model")
    p.set_defaults(func=commands.cmd_ratings)

    p = _command(
        sub,
        "judge",
        "ask a vision-language judge to vote on pairs of outputs (votes of voter judge:NAME)",
        "Ask a configured judge ([judges.NAME] in arena.toml) about pairs of outputs of the same "
        "challenge, twice with the sides swapped (the same winner both times wins, otherwise a "
        "tie), where its board is least certain. Its votes stay out of the human board; see them "
        "with `arena ratings --voters judge:NAME`. A rerun continues where the last one stopped.",
        (
            "arena judge --pairs 50",
            "arena judge --judge gpt4o --run last --max-cost 1",
            "arena judge --json",
        ),
        parents=[common],
    )
    p.add_argument(
        "--judge", metavar="NAME", help="the judge to ask (default: the only one configured)"
    )
    p.add_argument(
        "--run",
        metavar="RUN_ID",
        help="only this run's outputs, or `last` (default: every run's)",
    )
    p.add_argument(
        "--max-cost",
        type=_non_negative,
        metavar="USD",
        help="start no call that would take the cost past this (default: no limit)",
    )
    p.add_argument(
        "--pairs",
        type=_positive_int,
        metavar="N",
        help="judge at most N comparisons this time (default: until every pair is settled)",
    )
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
    p.set_defaults(func=judging.cmd_judge)

    p = _command(
        sub,
        "challenges",
        "list the challenges",
        "List the challenges: slug, kind, category, title and source images.",
        ("arena challenges", "arena challenges --json"),
        parents=[common],
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=commands.cmd_challenges)

    p = _command(
        sub,
        "validate",
        "check the config and every challenge file",
        "Check the config and every challenge file, and each challenge's params against the "
        "routes that would run it, without sending a request; warn about unset key variables.",
        ("arena validate", "arena validate --config arena.toml"),
        parents=[common],
    )
    p.set_defaults(func=commands.cmd_validate)

    p = _command(
        sub,
        "providers",
        "providers, models, capabilities, prices, parameter handling",
        "List every configured provider: its endpoint, whether its key variable is set (never "
        "the key), its limits, its models with their capability tables, prices and params, and "
        "how each request parameter is handled on its protocol.",
        ("arena providers", "arena providers --config arena.toml --json"),
        parents=[common],
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=commands.cmd_providers)

    p = _command(
        sub,
        "probe",
        "send one request to MODEL@PROVIDER and show its timing breakdown",
        "Send one challenge's request, normalized for the model, to MODEL@PROVIDER and show how "
        "it went and where the time went; nothing is stored. Exit 1 when the provider failed.",
        (
            "arena probe identity@local --challenge bald-man",
            "arena probe gpt-image-1@openai --challenge bald-man --out hair.png",
        ),
        parents=[common],
    )
    p.add_argument(
        "target", metavar="MODEL@PROVIDER", help="the route to call, e.g. identity@local"
    )
    p.add_argument(
        "--challenge", required=True, metavar="SLUG", help="the challenge whose request is sent"
    )
    p.add_argument(
        "--out", type=Path, metavar="PATH", help="save the returned image here (default: not saved)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=commands.cmd_probe)

    p = _command(
        sub,
        "serve",
        "serve the blind voting page and its JSON API",
        "Serve the blind voting page, its JSON API and the live leaderboard.",
        ("arena serve", "arena serve --host 0.0.0.0 --port 8080 --workers 4   # on PostgreSQL"),
        parents=[common],
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_positive_int, default=8000, help="port to listen on")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="server processes (use PostgreSQL for more than 1)",
    )
    p.set_defaults(func=commands.cmd_serve)

    p = _command(
        sub,
        "gateway",
        "serve the OpenAI-compatible images API in front of every provider",
        "Serve the OpenAI-compatible images API (/v1/images/generations, /v1/images/edits, "
        "/v1/models) in front of every configured provider, routed by what arena measured; every "
        "request needs a gateway key (`arena keys create NAME`).",
        (
            "arena gateway",
            "arena gateway --host 0.0.0.0 --port 8800 --workers 4   # on PostgreSQL",
        ),
        parents=[common],
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_positive_int, default=8800, help="port to listen on")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="server processes (use PostgreSQL for more than 1)",
    )
    p.set_defaults(func=commands.cmd_gateway)

    p = _command(
        sub,
        "check",
        "checks that need no model: unchanged edits, wrong shapes, lost faces, blank images",
        "Run the checks that need no model on the stored outputs (every run's, or one run's): "
        "an edit returned unchanged, an aspect ratio off the request, a portrait edit that lost "
        "its face, a blank image. Each result is stored per output, never mixed into a board; "
        "docs/checks.md has each check's threshold and how it was chosen.",
        ("arena check", "arena check --run last", "arena check --json"),
        parents=[common],
    )
    p.add_argument(
        "--run",
        metavar="RUN_ID",
        help="only this run's outputs (an id, or 'last') (default: every run's)",
    )
    p.add_argument("--json", action="store_true", help="the counts as one JSON object")
    p.set_defaults(func=checking.cmd_check)

    p = _command(
        sub,
        "db",
        "the database's schema: its revision, its upgrade, the revisions",
        "The database's schema: its current revision, an upgrade to this arena's newest, and the "
        "list of revisions.",
        ("arena db current", "arena db upgrade --config arena.toml", "arena db history"),
    )
    db = p.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    q = _command(
        db,
        "current",
        "the database's schema revision, and whether it is behind",
        "Print the database (without its password) and its schema revision, and whether it is "
        "behind this arena's newest.",
        ("arena db current", "arena db current --config arena.toml"),
        parents=[common],
    )
    q.set_defaults(func=commands.cmd_db_current)
    q = _command(
        db,
        "upgrade",
        "upgrade the database to this arena's newest revision (opening it does so too)",
        "Upgrade the database's schema to this arena's newest revision; any command that opens "
        "the database does so too.",
        ("arena db upgrade", "ARENA_DATABASE_URL=postgresql://arena@db/arena arena db upgrade"),
        parents=[common],
    )
    q.set_defaults(func=commands.cmd_db_upgrade)
    q = _command(
        db,
        "history",
        "every schema revision, oldest first, with what it does",
        "List every schema revision this arena knows, oldest first, with what each one does.",
        ("arena db history",),
    )
    q.set_defaults(func=commands.cmd_db_history)

    _add_keys_commands(sub, common)

    p = _command(
        sub,
        "local-provider",
        "serve the local baseline provider alone",
        "Serve the local baseline provider alone: the OpenAI images API on loopback with honest "
        "baseline models, for pointing another tool at it.",
        ("arena local-provider", "arena local-provider --port 8101 --delay 2"),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_positive_int, default=8100, help="port to listen on")
    p.add_argument(
        "--delay",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="answer no sooner than this",
    )
    p.set_defaults(func=commands.cmd_local_provider)
    return parser


def _add_keys_commands(sub, common) -> None:
    """`arena keys create|list|revoke`: the gateway's API keys."""
    p = _command(
        sub,
        "keys",
        "the gateway's API keys: create (shown once), list, revoke",
        "The gateway's API keys: create one (the key is shown once; only its hash is stored), "
        "list them with their budget, spend, requests and rate, revoke one.",
        (
            "arena keys create my-app --budget-usd 20 --rate-per-min 60",
            "arena keys list",
            "arena keys revoke my-app",
        ),
    )
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    q = _command(
        keys,
        "create",
        "make a gateway key NAME and print it once",
        "Make a gateway key and print it once: it is stored only as a sha256 hash, so it cannot "
        "be shown again. Applications send it as `Authorization: Bearer KEY` (OPENAI_API_KEY for "
        "the OpenAI SDKs).",
        (
            "arena keys create my-app",
            "arena keys create ci --budget-usd 5 --rate-per-min 30 --config arena.toml",
        ),
        parents=[common],
    )
    q.add_argument("name", metavar="NAME", help="the key's name: letters, digits, '.', '_', '-'")
    q.add_argument(
        "--budget-usd",
        type=_non_negative,
        metavar="USD",
        help="refuse requests (402) once the key has spent this (default: no budget)",
    )
    q.add_argument(
        "--rate-per-min",
        type=_positive_int,
        metavar="N",
        help="refuse requests (429) over N a minute (default: no rate limit)",
    )
    q.set_defaults(func=commands.cmd_keys_create)
    q = _command(
        keys,
        "list",
        "every gateway key: prefix, budget, spend, requests, rate, last use",
        "List every gateway key: its name, the key's first characters, when it was made, its "
        "budget, spend, requests and rate, when it was last used and whether it is revoked. "
        "Never the key or its hash.",
        ("arena keys list", "arena keys list --json"),
        parents=[common],
    )
    q.add_argument("--json", action="store_true", help="one JSON object per key")
    q.set_defaults(func=commands.cmd_keys_list)
    q = _command(
        keys,
        "revoke",
        "revoke the gateway key NAME (refused within seconds)",
        "Revoke a gateway key: every gateway process refuses it (401) within its key cache time "
        "(2 s). The row stays, so its spend and traffic still read.",
        ("arena keys revoke my-app",),
        parents=[common],
    )
    q.add_argument("name", metavar="NAME", help="the key to revoke")
    q.set_defaults(func=commands.cmd_keys_revoke)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < math.inf:  # nan compares false with everything: a budget never reached
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number, 0 or more")
    return value

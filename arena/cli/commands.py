"""The subcommands: each turns its parsed arguments into plain values, calls one app or library
function, and prints what came back."""

from __future__ import annotations

import errno
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from arena import tuning
from arena.cli import signals
from arena.errors import ArenaError


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
    from arena.cli.tables import challenges_table, emit

    emit([challenges_table(challenges)])
    return 0


def cmd_validate(args) -> int:
    from arena.app.database import check_database
    from arena.app.runs import plan_run
    from arena.challenges import load_challenges

    settings = _settings(args)
    challenges = load_challenges(settings.challenges_dir, list(settings.challenges) or None)
    planned = plan_run(settings, challenges)  # what `arena run` checks before storing a plan
    state = check_database(settings)
    used = {job.provider for job in planned}
    missing_keys = sorted(
        {
            p.api_key_env
            for p in settings.providers.values()
            if p.name not in used and p.api_key_env and not os.environ.get(p.api_key_env)
        }
    )
    from arena.cli.tables import plural

    print(
        f"config OK: {settings.source}: {plural(len(settings.providers), 'provider')}, "
        f"{plural(len(settings.models), 'model')}, {plural(len(settings.routes), 'route')}"
    )
    print(
        f"challenges OK: {len(challenges)} in {settings.challenges_dir}; {plural(len(planned), 'job')} a run would plan"
    )
    schema = f" ({state.label}, {state.status})" if state else " (not created yet)"
    print(f"database: {_safe_url(settings.database_url)}{schema}; data dir: {settings.data_dir}")
    for env in missing_keys:
        print(
            f"warning: {env} is not set; no planned job needs it, but a run that does will not start"
        )
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
        self.pending_at_join: int | None = None  # a worker's bar counts from its joining

    def planned(self, run_id: str, jobs: int) -> None:
        from arena.cli.tables import plural

        self.console.print(f"run {run_id}: {plural(jobs, 'job')} to do")
        self.progress.start()
        self.task = self.progress.add_task("generating", total=jobs, ok=0, failed=0)

    def joined(self, run_id: str, jobs: int) -> None:
        """A worker joined a run with `jobs` pending: the bar counts every worker's."""
        self.console.print(f"run {run_id}: {jobs} jobs pending, shared with any other worker")
        self.progress.start()
        self.task = self.progress.add_task("all workers", total=jobs, ok=0, failed=0)
        self.pending_at_join = jobs

    def summary(self, summary: dict) -> None:
        """Every worker's progress, from the run's counts in the store; a worker's bar counts
        the jobs done since it joined."""
        if self.task is None:
            return
        joined = self.pending_at_join
        done = summary["done"] if joined is None else joined - summary["pending"]
        self.progress.update(
            self.task, completed=done, ok=summary["success"], failed=summary["failed"]
        )

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
        # A bar never started has nothing to end: stopping it would print a blank line before the
        # error that kept the run from starting.
        if self.task is not None:
            self.progress.stop()


def _run(settings, args, challenges=None):
    from arena.app.runs import run_benchmark

    progress = _Progress()
    try:
        with signals.sigterm_as_ctrl_c():
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
    from arena.cli.tables import plural

    o = report.outcome
    print(
        f"run {report.run_id}: {report.status}; {plural(o.attempted, 'attempt')}, "
        f"{o.succeeded} succeeded, {o.failed} failed"
        + (
            f" ({', '.join(f'{k} {v}' for k, v in sorted(o.failures.items()))})"
            if o.failures
            else ""
        )
        + f"; cost ${o.spent_usd:.4f}"
    )
    if o.budget_stopped:
        print(
            f"budget reached: stopped scheduling with {plural(report.summary['pending'], 'job')} not run; "
            f"raise --max-cost and run `arena run --resume {report.run_id}` to finish"
        )


def cmd_run(args) -> int:
    from dataclasses import replace

    settings = _settings(args)
    if args.samples:
        settings = replace(settings, samples=args.samples)
    if args.challenge:
        settings = replace(settings, challenges=tuple(args.challenge))
    if args.plan_only:
        if args.resume or args.workers:
            raise ArenaError(
                "--plan-only stores a new run: it takes neither --resume nor --workers"
            )
        from arena.app.runs import plan_only
        from arena.cli.tables import plural

        run_id, jobs = plan_only(settings, max_cost_usd=args.max_cost)
        print(f"run {run_id}: planned {plural(jobs, 'job')}; nothing sent")
        print(f"next:    `arena worker --run {run_id}` on each host that shares the database")
        return 0
    if args.workers:
        return _run_fleet(settings, args)
    report = _run(settings, args)
    _print_run(report)
    return 0


def _worker_args(args) -> list[str]:
    """The options each local worker process is started with: the same config as ours."""
    return ["--config", str(args.config)] if args.config else []


def _run_fleet(settings, args) -> int:
    from arena import store
    from arena.app.runs import plan_only, refuse_while_workers
    from arena.app.worker import check_workers, describe_fleet, run_fleet

    check_workers(settings, args.workers)
    if args.resume:
        engine = store.open_engine(settings.database_url)
        try:
            run = store.get_run(engine, args.resume)
            refuse_while_workers(engine, run.id)
            if args.max_cost is not None:
                store.set_run_budget(engine, run.id, args.max_cost)
        finally:
            engine.dispose()
        run_id, jobs = run.id, run.jobs_total
    else:
        run_id, jobs = plan_only(settings, max_cost_usd=args.max_cost)
    progress = _Progress()
    progress.planned(run_id, jobs)
    try:
        with signals.sigterm_as_ctrl_c():
            report = run_fleet(
                settings,
                run_id,
                args.workers,
                worker_args=_worker_args(args),
                on_progress=progress.summary,
            )
    except KeyboardInterrupt:
        progress.stop()
        raise _WorkersStopped(run_id) from None
    progress.stop()
    print(describe_fleet(report))
    if report.status == "budget_stopped":
        print(
            f"budget reached: raise --max-cost and run `arena run --resume {run_id} --workers "
            f"{args.workers}` to finish"
        )
    return 0 if all(code == 0 for code in report.exit_codes) else 2


class _WorkersStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run's workers: each gave its jobs back to the run's pool."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.note = (
            f"the workers of run {run_id} gave their jobs back; `arena worker --run {run_id}` "
            "or `arena run --resume` finishes it"
        )


def cmd_worker(args) -> int:
    from arena.app.worker import run_worker
    from arena.cli.tables import plural

    settings = _settings(args)
    progress = None if args.quiet else _Progress()
    try:
        with signals.sigterm_as_ctrl_c():
            report = run_worker(
                settings,
                args.run,
                concurrency=args.concurrency,
                on_joined=progress.joined if progress else None,
                on_progress=progress.summary if progress else None,
                tuning=tuning.timed_run,
            )
    except KeyboardInterrupt:
        raise _WorkersStopped(args.run) from None
    finally:
        if progress:
            progress.stop()
    o = report.outcome
    print(
        f"run {report.run_id}: {report.status}; this worker made {plural(o.attempted, 'attempt')}, "
        f"{o.succeeded} succeeded, {o.failed} failed; cost ${o.spent_usd:.4f}; "
        f"{plural(report.summary['pending'], 'job')} pending"
    )
    if o.budget_stopped:
        print(
            f"budget reached: {plural(report.summary['pending'], 'job')} not run; to finish, "
            f"`arena run --resume {report.run_id} --max-cost USD` (add --workers N to share it)"
        )
    return 0


def cmd_demo(args) -> int:
    from arena.config import demo_settings
    from arena.providers import protocol_facts

    if args.config:
        raise ArenaError(
            f"--config {args.config}: arena demo always runs the built-in demo config (the local "
            "baseline provider, no keys); run your own config with `arena run --config FILE`"
        )
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
    args.window, args.model, args.json, args.source = "all", None, False, "benchmark"
    _print_stats(settings, args, run_id=report.run_id)
    print()
    print(f"results: {_safe_url(settings.database_url)}")
    print(f"images:  {settings.images_dir}")
    from arena.app.nightly import check_night

    _print_checks(*check_night(settings, report.run_id))
    _print_site(_build_report(settings, args.out), settings)
    print(
        "next:    `arena stats` for the provider table, `arena run --resume last` after an interruption"
    )
    return 0


# --- report / nightly --------------------------------------------------------------------------


def _build_report(settings, out: Path):
    from arena.report import build_site

    return build_site(settings, out)


def _print_site(site, settings) -> None:
    print(f"report:  {site.index.resolve()} ({site.pages} pages)")
    print(
        "vote:    run `arena serve` and open the page it prints; `arena report` rebuilds the site"
    )
    print(
        f"api:     run `arena gateway`, make a key with `arena keys create NAME`, then call "
        f"{settings.gateway.public_url}/v1 with any OpenAI SDK (or try {settings.gateway.public_url}/playground)"
    )


def cmd_report(args) -> int:
    settings = _settings(args)
    _print_site(_build_report(settings, args.out), settings)
    return 0


def cmd_nightly(args) -> int:
    from arena.app.nightly import run_nightly

    settings = _settings(args)
    progress = _Progress()
    try:
        with signals.sigterm_as_ctrl_c():
            night = run_nightly(
                settings,
                args.out,
                max_cost_usd=args.max_cost,
                on_planned=progress.planned,
                on_result=progress.result,
                tuning=tuning.timed_run,
            )
    finally:
        progress.stop()
    _print_run(night.run)
    _print_checks(night.checks, night.checks_error)
    _print_site(night.site, settings)
    return 0


def _print_checks(report, error: str | None) -> None:
    """One line: what the checks that need no model flagged in this run, or why they did not run."""
    from arena.cli.checking import summary_line

    if report is None:
        print(f"checks:  not run ({error})")
    else:
        print(f"checks:  {summary_line(report)}")


# --- stats -----------------------------------------------------------------------------------


def _print_stats(settings, args, run_id=None) -> None:
    from arena import stats, store

    window = stats.parse_window(args.window)
    source = getattr(args, "source", "benchmark")
    only = None if source == "all" else source
    engine = store.open_engine(settings.database_url)
    since = stats.window_start(window, datetime.now(UTC))
    attempts = store.read_attempts(
        engine, since=since, model=args.model, run_id=run_id, source=only
    )
    if args.model and attempts.empty:
        known = sorted(set(store.read_attempts(engine, run_id=run_id, source=only)["model"]))
        first = "none yet (run `arena run`)" if source == "benchmark" else "none yet"
        raise ArenaError(
            f"--model {args.model!r}: no {_SOURCE_WORDS[source]} for that model"
            + ("" if window is None else f" in {stats.describe_window(args.window)}")
            + f"; models with them: {', '.join(known) if known else first}"
        )
    table = stats.provider_table(attempts)
    messages = stats.failure_messages(attempts)
    if args.json:
        rows = stats.records(table)
        for row in rows:  # the provider's own words for each failure class, commonest first
            row["failure_messages"] = stats.messages_by_class(
                messages, model=row["model"], provider=row["provider"]
            )
            row["source"] = source
        _print_json(rows)
    else:
        from arena.cli.tables import emit, stats_renderables

        scope = f"run {run_id}" if run_id else stats.describe_window(args.window)
        emit(
            [
                f"provider performance over {scope}, {_stats_source(source, attempts)}:",
                *stats_renderables(table, messages, stats.headline, _STATS_HINTS[source]),
            ]
        )


_SOURCE_WORDS = {
    "benchmark": "benchmark attempts",
    "traffic": "gateway traffic",
    "all": "attempts",
}
_STATS_HINTS = {
    "benchmark": "no benchmark attempts in this window: run `arena run` (or `arena demo`) first",
    "traffic": "no gateway traffic in this window: start `arena gateway` and send it requests "
    "(docs/gateway.md)",
    "all": "no attempts in this window: run `arena run` (or `arena demo`) first",
}


def _stats_source(source: str, attempts) -> str:
    """Which attempts the figures are over, for the table's heading."""
    from arena import stats
    from arena.errors import plural

    if source == "benchmark":
        return "from the benchmark's attempts (--source benchmark)"
    traffic = attempts[attempts["source"] == "traffic"] if len(attempts) else attempts
    requests = plural(stats.request_count(traffic), "real API request")
    if source == "traffic":
        return f"aggregated from {requests} through the gateway (--source traffic)"
    return f"from the benchmark's attempts and {requests} through the gateway (--source all)"


def cmd_stats(args) -> int:
    _print_stats(_settings(args), args)
    return 0


# --- providers / probe -------------------------------------------------------------------------


def cmd_providers(args) -> int:
    from arena.app.catalog import provider_catalog

    catalog = provider_catalog(_settings(args))
    if args.json:
        _print_json(catalog)
    else:
        from arena.cli.tables import catalog_renderables, emit
        from arena.params import PROTOCOLS_SHAPE_NOTE

        emit(catalog_renderables(catalog, PROTOCOLS_SHAPE_NOTE))
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
    from arena.cli import ratings as ratings_views
    from arena.ratings import (
        RatingOptions,
        boards_records,
        compare_routes,
        compare_routes_from_counts,
        compute_boards,
        compute_boards_from_counts,
    )

    ratings_views.check_ratings_args(args)
    if args.agreement:
        return ratings_views.print_agreement(args, _settings(args))
    if args.votes:
        from arena.ratings.frames import read_votes_file

        votes = read_votes_file(args.votes)
        if args.task:
            votes = votes[votes["task"] == args.task]
    else:
        from arena import store

        settings = _settings(args)
        engine = store.open_engine(settings.database_url)
        # The database counts the votes per pair of models: no row per vote reaches Python.
        votes = store.read_pair_counts(engine, voters=args.voters, by=args.by, task=args.task)
        if votes.empty:  # not a mistake: nobody has voted yet
            print(ratings_views.no_votes_message(args, settings, engine))
            return 0
    if args.anchor is not None:
        models = ratings_views.board_labels(votes, args.by)
        if args.anchor not in models:
            raise ArenaError(
                f"--anchor {args.anchor!r}: no votes for that model; models with votes: {', '.join(models)}"
            )
    options = RatingOptions(
        ties=args.ties,
        both_bad=args.both_bad,
        anchor=args.anchor,
        bootstrap_rounds=args.rounds,
        seed=args.seed,
        intervals=args.intervals,
        min_votes=args.min_votes,
    )
    counted = not args.votes
    boards = (compute_boards_from_counts if counted else compute_boards)(votes, options, by=args.by)
    if args.by == "route":
        comparisons = (compare_routes_from_counts if counted else compare_routes)(votes)
        return ratings_views.print_routes(boards, comparisons, as_json=args.json)
    if args.json:
        records = boards_records(boards, by=args.by)
        _print_json(records)
    else:
        from arena.cli.tables import boards_renderables, emit

        emit(boards_renderables(boards, by=args.by))
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


# --- keys ------------------------------------------------------------------------------------


def cmd_keys_create(args) -> int:
    from arena.app.keys import create_key

    settings = _settings(args)
    key = create_key(
        settings, args.name, budget_usd=args.budget_usd, rate_per_min=args.rate_per_min
    )
    limits = [
        "no budget" if args.budget_usd is None else f"budget ${args.budget_usd:g}",
        "no rate limit" if args.rate_per_min is None else f"{args.rate_per_min} requests/min",
    ]
    print(f"created key {args.name!r} ({', '.join(limits)}):")
    print(key)
    print(
        "This key is not shown again (only its hash is stored): keep it now. Send it as "
        "`Authorization: Bearer <key>`, or set OPENAI_API_KEY=<key> and "
        f"base_url={settings.gateway.public_url}/v1 for the OpenAI SDKs."
    )
    return 0


def _when(moment) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def cmd_keys_list(args) -> int:
    from arena.app.keys import list_keys

    rows = list_keys(_settings(args))
    if args.json:  # the same fields as the table: never the key or its hash
        _print_json(
            [
                {
                    "name": r.name,
                    "prefix": r.key_prefix,
                    "created_at": r.created_at.isoformat(),
                    "budget_usd": r.budget_usd,
                    "spent_usd": r.spent_usd,
                    "requests": r.requests,
                    "rate_per_min": r.rate_per_min,
                    "last_used_at": r.last_used_at and r.last_used_at.isoformat(),
                    "revoked_at": r.revoked_at and r.revoked_at.isoformat(),
                }
                for r in rows
            ]
        )
        return 0
    if not rows:
        print("no gateway keys yet: `arena keys create NAME` makes one")
        return 0
    from arena.cli.tables import add_row, emit, table

    shown = table(
        "name",
        "prefix",
        "created (UTC)",
        "budget",
        "spent",
        "requests",
        "rate/min",
        "last used (UTC)",
        "revoked",
        right=(3, 4, 5, 6),
    )
    for r in rows:
        add_row(
            shown,
            r.name,
            r.key_prefix + "...",
            _when(r.created_at),
            "-" if r.budget_usd is None else f"${r.budget_usd:,.2f}",
            f"${r.spent_usd:,.4f}",
            f"{r.requests:,}",
            "-" if r.rate_per_min is None else f"{r.rate_per_min:g}",
            _when(r.last_used_at),
            _when(r.revoked_at) if r.revoked_at else "no",
        )
    emit([shown])
    return 0


def cmd_keys_revoke(args) -> int:
    from arena.app.keys import revoke_key

    revoke_key(_settings(args), args.name)
    print(f"revoked key {args.name!r}: the gateway refuses it within its key cache time (2 s)")
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


def _listen(host: str, port: int):
    """The voting page's socket, bound before anything is announced; a busy port is one line."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ArenaError(f"--port {port}: cannot listen on {host}:{port}: {reason}") from None


# uvicorn[standard]: several times the asyncio/h11 rate
UVICORN_OPTIONS = {
    "log_level": "warning",
    "access_log": False,
    "loop": "uvloop",
    "http": "httptools",
}


def _bind(args, settings):
    """(the listening socket or None, the port) for a server of args.workers processes: one
    process binds now, before anything is announced; workers get a port checked free for them."""
    if args.workers > 1 and settings.database_url.startswith("sqlite"):
        raise ArenaError(
            "--workers above 1 needs a PostgreSQL database_url: SQLite takes one writing process"
        )
    if args.workers == 1:
        listening = _listen(args.host, args.port)
        return listening, listening.getsockname()[1]
    from arena.app.servers import pick_port

    return None, pick_port(args.host, args.port)


def _run_server(args, app, listening, port: int, factory: str, name: str) -> None:
    """Serve `app` on the bound socket, or start args.workers processes that each build theirs."""
    import uvicorn

    if args.workers == 1:
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, **UVICORN_OPTIONS))
        server.run(sockets=[listening])  # bound before the announcement: it is true
        return
    from arena.app.servers import serve_workers

    config_path = str(Path(args.config).resolve()) if args.config else None
    serve_workers(
        args.host, port, args.workers, UVICORN_OPTIONS, config_path, factory=factory, name=name
    )


def cmd_serve(args) -> int:
    from arena.web import create_app
    from arena.web.options import options_from_env

    settings = _settings(args)
    listening, port = _bind(args, settings)
    app = create_app(
        settings, options_from_env()
    )  # makes every missing blind derivative once, here
    pool = app.state.voting.pool
    from arena.cli.tables import plural

    print(
        f"voting page on http://{args.host}:{port}/ ({plural(len(pool.outputs), 'output')} over "
        f"{plural(len(pool.challenges), 'challenge')}; store {_safe_url(settings.database_url)}); Ctrl-C to stop",
        flush=True,
    )
    _run_server(args, app, listening, port, "arena.web:app_from_env", "arena-web")
    return 0


# --- gateway -------------------------------------------------------------------------------------


def cmd_gateway(args) -> int:
    from arena.gateway import create_app

    settings = _settings(args)
    listening, port = _bind(args, settings)
    if args.workers == 1:
        app = create_app(settings)  # opens (and upgrades) the store before the announcement
    else:
        from arena.app.database import upgrade_database

        app = None
        upgrade_database(settings)  # once, here, rather than raced by every worker
    from arena.cli.tables import plural

    print(
        f"gateway on http://{args.host}:{port}/v1 (OpenAI images API; "
        f"{plural(len(settings.models), 'model')}, {plural(len(settings.routes), 'route')}; "
        f"store {_safe_url(settings.database_url)}); Ctrl-C to stop",
        flush=True,
    )
    from urllib.parse import urlsplit

    public = urlsplit(settings.gateway.public_url)
    if public.hostname in ("127.0.0.1", "localhost") and public.port != port:
        print(
            f"warning: response_format=url replies point at [gateway] public_url "
            f"{settings.gateway.public_url}, not this port: set public_url where clients reach it",
            flush=True,
        )
    _run_server(args, app, listening, port, "arena.gateway:app_from_env", "arena-gateway")
    return 0

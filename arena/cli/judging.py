"""`arena judge`: its arguments to plain values, one call of arena.app.judge, a short summary."""

from __future__ import annotations

from arena.cli import signals
from arena.cli.commands import _print_json, _settings


def cmd_judge(args) -> int:
    from arena.app.judge import judge_outputs
    from arena.errors import plural

    settings = _settings(args)
    with signals.sigterm_as_ctrl_c():
        summary = judge_outputs(
            settings,
            judge=args.judge,
            run=args.run,
            max_cost_usd=args.max_cost,
            pairs=args.pairs,
        )
    if args.json:
        _print_json(summary.as_dict())
        return 0
    failures = ", ".join(f"{k} {v}" for k, v in sorted(summary.failures.items()))
    print(
        f"judge {summary.judge}: {plural(summary.comparisons, 'comparison')} judged, "
        f"{plural(summary.calls, 'call')} ({summary.succeeded} succeeded"
        + (f"; failed: {failures}" if failures else "")
        + f"), cost ${summary.cost_usd:.4f}"
    )
    for failure, message in sorted(summary.messages.items()):  # what went wrong, once a class
        print(f"first {failure} failure: {message}")
    print(
        f"stopped: {summary.stopped}; {summary.judged_total:,} of "
        f"{plural(summary.candidates, 'comparison')} judged so far, "
        f"{plural(summary.unsettled_pairs, 'pair')} still to ask"
    )
    print(f"board:   `arena ratings --voters {summary.voter}`; `arena judge` again continues")
    return 0

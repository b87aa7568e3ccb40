"""`arena check`: the checks that need no model, run on the stored outputs, and their counts.

Its imports wait for the command, as commands.py's do: `arena --help` loads no pandas."""

from __future__ import annotations

import sys

from arena.cli.commands import _print_json, _settings


def cmd_check(args) -> int:
    from arena.app.check import check_outputs

    report = check_outputs(_settings(args), args.run)
    if args.json:
        _print_json(
            {
                "run_id": report.run_id,
                "outputs": report.outputs,
                "checked": report.checked,
                "flagged": {
                    name: {"flagged": flagged, "outputs": outputs}
                    for name, (flagged, outputs) in report.flagged().items()
                },
                "problems": list(report.problems),
                "rows": report.counts.to_dict(orient="records"),
            }
        )
    else:
        from arena.cli.tables import emit

        emit(_renderables(report))
    for line in report.problems:
        print(f"arena: not checked: {line}", file=sys.stderr)
    return 0


def _renderables(report) -> list:
    from arena.cli.tables import add_row, table

    if report.outputs == 0:
        where = f"run {report.run_id}" if report.run_id else "the store"
        return [f"no successful outputs in {where}: run `arena run` (or `arena demo`) first"]
    shown = table("check", "model", "provider", "flagged", "outputs", "share", right=(3, 4, 5))
    for row in report.counts.itertuples(index=False):
        share = f"{row.flagged / row.outputs:.0%}" if row.outputs else "-"
        add_row(shown, row.check, row.model, row.provider, row.flagged, row.outputs, share)
    return [shown, summary_line(report)]


def summary_line(report) -> str:
    """The checks' counts in one line, as `arena check`, `arena demo` and `arena nightly` print them."""
    from arena.errors import plural

    where = f"run {report.run_id}" if report.run_id else "every run"
    counts = "; ".join(
        f"{name} {flagged} of {outputs} flagged"
        for name, (flagged, outputs) in report.flagged().items()
    )
    line = f"checked {plural(report.checked, 'output')} of {where}: {counts or 'no check applied'}"
    if report.problems:
        line += f"; {plural(len(report.problems), 'image')} could not be checked (below)"
    return line

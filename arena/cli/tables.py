"""The command line's tables: rich tables whose columns hold whatever a name's length, printed in
colour and wrapped inside their cells on a terminal, and as plain, unwrapped, colourless lines
when stdout is not one (a pipe, a file, a test), so the output stays stable to read and parse."""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterable

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from arena.errors import FAILURE_CLASSES, plural  # noqa: F401  (plural: cli imports it from here)

# Wide enough that no line is ever wrapped in plain output (a line is as long as its content).
PLAIN_WIDTH = 100_000
# A dash rule under the headings and columns three spaces apart: ASCII, so pipes and greps see
# the same characters a terminal shows.
RULE = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)
STYLE = {"markup": False, "highlight": False, "emoji": False}  # names are shown as written


def table(*columns: str, right: Iterable[int] = ()) -> Table:
    """A table with these headings; `right` are the positions of right-aligned (number) columns."""
    shown = Table(box=RULE, show_edge=False, pad_edge=False, header_style="bold")
    right = set(right)
    for k, heading in enumerate(columns):
        shown.add_column(heading, justify="right" if k in right else "left", overflow="fold")
    return shown


def add_row(shown: Table, *cells) -> None:
    """A row of plain text cells (never read as markup: a model may be called "[red]")."""
    shown.add_row(*(Text(str(cell)) for cell in cells))


def plain(renderables: Iterable) -> str:
    """The text a pipe gets: no colour, no wrapping, no trailing spaces."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=PLAIN_WIDTH, color_system=None, **STYLE)
    for item in renderables:
        console.print(item)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def emit(renderables: Iterable, file=None) -> None:
    """Print strings and tables: rich on a terminal, plain() otherwise."""
    file = file or sys.stdout
    items = [Text(item) if isinstance(item, str) else item for item in renderables]
    if file.isatty():
        console = Console(file=file, **STYLE)
        for item in items:
            console.print(item)
    else:
        print(plain(items), file=file)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ms(value) -> str:
    return "-" if _missing(value) else f"{value:,.0f}"


# --- arena stats -----------------------------------------------------------------------------


def stats_renderables(
    table_: pd.DataFrame, messages: pd.DataFrame, headline, empty_hint: str
) -> list:
    """Per model: its headline, the provider table, the commonest failure messages, the counts."""
    if table_.empty:
        return [empty_hint]
    out: list = []
    for model, rows in table_.groupby("model", sort=True):
        if out:
            out.append("")
        out.append(f"{model}: {headline(rows)}")
        shown = table(
            "#", "provider", "n", "success", "p50 ms", "p95 ms", "ttfb p50", "failures",
            right=range(0, 7),
        )  # fmt: skip
        for _, r in rows.iterrows():
            fails = ", ".join(
                f"{c} {int(r[f'failures_{c}'])}" for c in FAILURE_CLASSES if r[f"failures_{c}"]
            )
            add_row(
                shown,
                int(r["rank"]),
                r["provider"],
                f"{int(r['n']):,}",
                f"{r['success_rate'] * 100:.1f}%",
                _ms(r["p50_ms"]),
                _ms(r["p95_ms"]),
                _ms(r["ttfb_p50_ms"]),
                fails or "-",
            )
        out.append(shown)
        said = messages[messages["model"] == model] if len(messages) else messages
        if len(said):
            out.append("most common failure messages:")
            lines = table("provider", "class", "times", "message", right=[2])
            for r in said.itertuples(index=False):
                add_row(lines, r.provider, r.failure_class, f"{int(r.count):,}", r.message)
            out.append(lines)
        out.append(
            f"(percentiles over {plural(int(rows['successes'].sum()), 'success', 'successes')}; "
            f"success rate over {plural(int(rows['n'].sum()), 'attempt')})"
        )
    return out


# --- arena ratings ---------------------------------------------------------------------------


def board_table(board: pd.DataFrame) -> list:
    """One board: its table (preliminary rows marked '*', groups as group:rank) and its notes."""
    shown = table(
        "rank", "model", "rating", "95% interval", "votes", "win %", "W/L/T", "note",
        right=range(2, 7),
    )  # fmt: skip
    shown.columns[0].justify = "right"
    grouped = board.attrs.get("groups", 1) != 1
    for row in board.itertuples(index=False):
        interval = "—" if math.isnan(row.lower) else f"{row.lower:.0f} – {row.upper:.0f}"
        note = ("* " if row.preliminary else "") + (row.note or "")
        add_row(
            shown,
            f"{row.group}:{row.rank}" if grouped else row.rank,
            row.model,
            f"{row.rating:.1f}",
            interval,
            f"{int(row.votes):,}",
            f"{100 * row.win_rate:.1f}",
            f"{row.wins}/{row.losses}/{row.ties + row.both_bad}",
            note.strip(),
        )
    out: list = [shown]
    if board.attrs.get("message"):
        out.append(f"note: {board.attrs['message']} (rank shown as group:rank)")
    if board["preliminary"].any():
        out.append(
            "* preliminary: fewer votes than the minimum, or a rating the votes do not pin down"
        )
    return out


def boards_renderables(boards: dict, by: str | None = None) -> list:
    """Every board under a title naming its task (and category or challenge) and its vote count."""
    out: list = []
    for (task, key), board in boards.items():
        if out:
            out.append("")
        title = task if key is None else f"{task} · {by or 'key'}: {key}"
        out.append(f"{title} ({plural(int(board.attrs.get('votes', 0)), 'vote')})")
        out.extend(board_table(board))
    return out


# --- arena providers -------------------------------------------------------------------------


def _price(value: float | None) -> str:
    if value is None:
        return "price not set"
    return "free" if value == 0 else f"${value:.4g}/image"


def _capabilities(model: dict, shape_notes: dict) -> str:
    caps = model["capabilities"] or model["default_capabilities"]
    if not caps:
        return f"no capability table: {shape_notes[model['takes']]}"
    parts = []
    for key, value in caps.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}: {shown}")
    default = "" if model["capabilities"] else "the protocol's default table: "
    return default + "; ".join(parts)


def catalog_renderables(catalog: list[dict], shape_notes: dict) -> list:
    """Each provider: where it is, its key (set or not, never its value), limits, models, handling."""
    out: list = []
    for provider in catalog:
        if out:
            out.append("")
        where = provider["base_url"] or "started on loopback on demand"
        key = provider["api_key_env"]
        key_text = (
            f"key ${key} ({'set' if provider['api_key_set'] else 'NOT set'})" if key else "no key"
        )
        label = " [baseline]" if provider["baseline"] else ""
        out.append(
            f"{provider['name']}{label}: protocol {provider['protocol']}, {where}, {key_text}"
        )
        out.append(
            f"limits: {provider['rate_limit_per_s']:g} req/s, {provider['max_concurrency']} at "
            f"once, timeout {provider['timeout_s']:g} s; prices starting from "
            f"{_price(provider['starting_price_usd'])}"
        )
        models = table("model", "id", "tasks", "price", "takes", "params")
        for model in provider["models"]:
            tiers = model["price_usd_by_tier"]
            price = _price(model["starting_price_usd"])
            if tiers:
                price = f"from {price} ({', '.join(f'{t} {_price(p)}' for t, p in tiers.items())})"
            params = ", ".join(f"{k} = {v!r}" for k, v in model.get("params", {}).items())
            add_row(
                models,
                model["model"],
                model["model_id"],
                ", ".join(model["tasks"]),
                price,
                f"{model['takes']}: {_capabilities(model, shape_notes)}",
                params or "-",
            )
        out.append(models)
        handling = table("parameter", "handling", "sent as", "note")
        for param, h in provider["parameters"].items():
            sent = h["sent_as"] if h["sent_as"] and h["sent_as"] != param else ""
            add_row(handling, param, h["kind"], sent, h["note"])
        add_row(handling, "anything else", "passthrough", "", "sent as given")
        out.append(handling)
    return out


# --- arena challenges ------------------------------------------------------------------------


def challenges_table(challenges) -> Table:
    shown = table("slug", "kind", "category", "title", "sources")
    for c in challenges:
        sources = ", ".join(p.name for p in c.source_images)
        add_row(shown, c.slug, c.kind, c.category, c.title, sources or "-")
    return shown

"""Boards as aligned plain text, for the CLI."""

from __future__ import annotations

import math

import pandas as pd


def format_board_text(board: pd.DataFrame) -> str:
    """An aligned plain-text table; preliminary rows are marked with '*', groups are separated."""
    header = ["rank", "model", "rating", "95% interval", "votes", "win %", "W/L/T", "note"]
    lines: list[list[str]] = []
    for row in board.itertuples(index=False):
        interval = "—" if math.isnan(row.lower) else f"{row.lower:.0f} – {row.upper:.0f}"
        note = ("* " if row.preliminary else "") + (row.note or "")
        lines.append(
            [
                str(row.rank) if board.attrs.get("groups", 1) == 1 else f"{row.group}:{row.rank}",
                str(row.model),
                f"{row.rating:.1f}",
                interval,
                str(row.votes),
                f"{100 * row.win_rate:.1f}",
                f"{row.wins}/{row.losses}/{row.ties + row.both_bad}",
                note.strip(),
            ]
        )
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    right_aligned = {0, 2, 3, 4, 5, 6}

    def render(cells: list[str]) -> str:
        padded = [
            cell.rjust(w) if k in right_aligned else cell.ljust(w)
            for k, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    text = [render(header), render(["-" * w for w in widths])] + [render(cells) for cells in lines]
    if board.attrs.get("message"):
        text.append(f"note: {board.attrs['message']} (rank shown as group:rank)")
    if board["preliminary"].any():
        text.append(
            "* preliminary: fewer votes than the minimum, or a rating the votes do not pin down"
        )
    return "\n".join(text)


def format_boards_text(
    boards: dict[tuple[str, str | None], pd.DataFrame], by: str | None = None
) -> str:
    """All boards, each under a title line naming its task (and category or challenge)."""
    parts = []
    for (task, key), board in boards.items():
        title = task if key is None else f"{task} · {by or 'key'}: {key}"
        parts.append(f"{title} ({board.attrs.get('votes', 0)} votes)\n{format_board_text(board)}")
    return "\n\n".join(parts)

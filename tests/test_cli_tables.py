"""The CLI's tables and help: aligned whatever a name's length, plain in a pipe, wrapped inside their
cells on a terminal; every command's --help with a description, its defaults and examples."""

from __future__ import annotations

import argparse
import io
import re

import numpy as np
import pandas as pd
import pytest

from arena.cli import build_parser, main
from arena.cli.tables import board_table, emit, plain, plural, stats_renderables
from arena.ratings import RatingOptions, compute_board
from arena.stats import describe_window, failure_messages, headline, provider_table

LONG = "a-very-long-model-name-" + "x" * 97  # 120 characters
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _board() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    names = [LONG, "mid-model", "b"]
    rows = []
    for _ in range(300):
        left, right = rng.choice(names, 2, replace=False)
        rows.append((left, right, str(rng.choice(["left", "right", "tie"], p=[0.5, 0.4, 0.1]))))
    frame = pd.DataFrame(rows, columns=["model_left", "model_right", "outcome"])
    frame["task"], frame["category"], frame["challenge"] = "edit", "c", "ch"
    return compute_board(frame, RatingOptions(intervals="closed_form"))


def _right_edges(header: str, names: list[str]) -> list[int]:
    return [header.index(name) + len(name) for name in names]


def test_a_120_character_model_name_keeps_the_board_aligned_in_a_pipe():
    assert len(LONG) == 120
    lines = plain(board_table(_board())).splitlines()
    header, rule, rows = lines[0], lines[1], lines[2:5]
    assert set(rule) == {"-"} and len(rule) == max(len(line) for line in lines[:5])
    assert sum(LONG in row for row in rows) == 1  # whole, on one line: never wrapped or cut
    for name in ("rating", "votes", "W/L/T"):  # right-aligned numbers end under their heading
        edge = header.index(name) + len(name)
        for row in rows:
            assert row[edge - 1] != " " and (len(row) == edge or row[edge] == " "), (name, row)
    model_start = header.index("model")
    assert all(row[model_start - 1] == " " and row[model_start] != " " for row in rows)
    assert all(line == line.rstrip() for line in lines)


def test_on_a_terminal_a_long_name_wraps_inside_its_cell(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "80")
    out = Terminal()
    emit(["title", *[board_table(_board())][0]], file=out)
    lines = [ANSI.sub("", line).rstrip() for line in out.getvalue().splitlines()]
    assert lines[0] == "title" and all(len(line) <= 80 for line in lines)
    header = lines[1]
    edge = header.index("rating") + len("rating")
    numbered = [line for line in lines[3:] if re.search(r"\d+\.\d", line[:edge])]
    assert len(numbered) == 3 and all(line[edge - 1].isdigit() for line in numbered)
    # The name folds inside its column: its pieces sit one under the other at the column's start.
    start = header.index("model")
    (first,) = [k for k, line in enumerate(lines) if line[start:].startswith("a-very-long")]
    width = len(lines[first][start:].split(" ")[0])
    assert width < len(LONG)
    pieces = [line[start : start + width].strip() for line in lines[first:]]
    assert "".join(pieces)[: len(LONG)] == LONG


def test_stats_tables_stay_aligned_and_say_one_success():
    frame = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "provider": [LONG, "p", "p"],
            "ok": [True, True, False],
            "generation_ms": [1200.0, 900.0, np.nan],
            "ttfb_ms": [100.0, 90.0, np.nan],
            "download_ms": [np.nan] * 3,
            "cost_usd": [0.0] * 3,
            "failure_class": [None, None, "server_error"],
            "error": [None, None, "server_error: HTTP 503: The server is [red]overloaded[/]."],
            "warmup": [False] * 3,
        }
    )
    table = provider_table(frame)
    text = plain(stats_renderables(table, failure_messages(frame), headline, "none"))
    lines = text.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("#"))
    edge = header.index("p50 ms") + len("p50 ms")
    rows = [line for line in lines if line.startswith(("1 ", "2 "))]
    assert len(rows) == 2 and all(row[edge - 1].isdigit() for row in rows)
    assert "HTTP 503: The server is [red]overloaded[/]." in text  # shown as written, not markup
    assert "(percentiles over 2 successes; success rate over 3 attempts)" in text
    one = plain(stats_renderables(provider_table(frame.iloc[:1]), frame.iloc[:0], headline, ""))
    assert "(percentiles over 1 success; success rate over 1 attempt)" in one


def test_words():
    assert [plural(1, "success", "successes"), plural(2, "success", "successes")] == [
        "1 success",
        "2 successes",
    ]
    assert plural(1200, "attempt") == "1,200 attempts"
    assert describe_window("30d") == "the last 30 days"
    assert (
        describe_window("1h") == "the last hour" and describe_window("90m") == "the last 90 minutes"
    )
    assert describe_window("all") == "all time"


def test_a_malformed_number_says_what_it_must_be(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "--samples", "many"])
    assert "--samples: must be an integer, got 'many'" in capsys.readouterr().err
    bad = tmp_path / "arena.toml"
    bad.write_text(
        '[providers.p]\nprotocol = "local"\nmax_concurrency = "many"\n[models.m.providers.p]\n'
    )
    assert main(["validate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "providers.p.max_concurrency: must be an integer, got 'many'" in err


# --- --help ---------------------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser, prefix: str = ""):
    """(name, parser) for every subcommand, nested ones (db current, ...) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _commands(sub, f"{prefix}{name} ")


COMMANDS = list(_commands(build_parser()))


def test_every_command_is_listed():
    names = {name for name, _ in COMMANDS}
    assert {"run", "stats", "ratings", "providers", "db", "db current", "local-provider"} <= names
    assert {"gateway", "keys", "keys create", "keys list", "keys revoke", "judge", "check"} <= names
    assert len(names) == 24


@pytest.mark.parametrize(("name", "sub"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_help_has_a_description_its_defaults_and_an_example(name, sub, capsys):
    with pytest.raises(SystemExit) as info:
        main([*name.split(), "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    description = sub.description or ""
    assert description[:1].isupper() and description.endswith("."), description
    assert " ".join(description.split()[:4]) in " ".join(text.split())
    examples = text.split("examples:\n", 1)[1].splitlines()
    assert examples and all(f"arena {name}" in line for line in examples if line.strip())
    flat = " ".join(text.split())
    for action in sub._actions:
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            continue
        assert f"(default: {action.default}" in flat, (name, action.option_strings)
    for action in sub._actions:  # an option with no value of its own says what happens instead
        if action.option_strings and action.default is None and not action.required:
            if action.dest in ("help", "json"):
                continue
            assert "default" in (action.help or ""), (name, action.option_strings)

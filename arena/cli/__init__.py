"""The `arena` command: the face of the package; `parser` reads the arguments, `commands` runs them.

The CLI (with the servers' start-up) is the only place that applies process-wide tuning, and
nothing imports it.
"""

from __future__ import annotations

import sys

from arena.cli import signals
from arena.cli.parser import build_parser
from arena.errors import ArenaError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad argument: one `arena: error:` line, exit 2 (parser.py)
    try:
        return args.func(args)
    except ArenaError as exc:
        print(f"arena: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        # A database that fails where no store function expected it (a lock, a refused connection):
        # still one line, the driver's own words. Anything else is a bug and keeps its traceback.
        from sqlalchemy.exc import OperationalError

        if not isinstance(exc, OperationalError):
            raise
        from arena.store.messages import one_line

        print(f"arena: error: the database: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:  # Ctrl-C; or SIGTERM during a run (cli/signals.py)
        # A stored run's id comes with it (arena.app.runs.RunInterrupted): the hint names that
        # run, never an older one; before anything is stored there is nothing to resume.
        run_id, note = getattr(exc, "run_id", None), getattr(exc, "note", "")
        hint = f"; finish with `arena run --resume {run_id}`" if run_id else ""
        fresh_line = "\n" if sys.stderr.isatty() else ""  # after the terminal's echoed ^C
        print(f"{fresh_line}arena: interrupted{f'; {note}' if note else ''}{hint}", file=sys.stderr)
        return EXIT_TERMINATED if signals.terminated() else EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


def _one_line(message: str) -> str:
    """Whatever a message carries (a parser's or a driver's line breaks), the user reads one line."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())

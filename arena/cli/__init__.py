"""The `arena` command: the face of the package; `parser` reads the arguments, `commands` runs them.

The CLI (with the servers' start-up) is the only place that applies process-wide tuning, and
nothing imports it.
"""

from __future__ import annotations

import sys

from arena.cli.parser import build_parser
from arena.errors import ArenaError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "build_parser", "main"]


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
    except KeyboardInterrupt:
        print("\narena: interrupted; finish with `arena run --resume last`", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


def _one_line(message: str) -> str:
    """Whatever a message carries (a parser's or a driver's line breaks), the user reads one line."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())

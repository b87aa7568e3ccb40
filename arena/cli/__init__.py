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
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ArenaError as exc:
        print(f"arena: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\narena: interrupted; finish with `arena run --resume last`", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0

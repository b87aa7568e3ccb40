"""`python -m arena.store.migrations`: Alembic's own command line on arena's migration scripts.

For developers (`revision --autogenerate`, `upgrade`, `downgrade`, `check`, ...): no alembic.ini;
the database is ARENA_DATABASE_URL. Users have `arena db current | upgrade | history`.
"""

from __future__ import annotations

from alembic.config import CommandLine

from arena.store.migrations import alembic_config


def main(argv: list[str] | None = None) -> None:
    cli = CommandLine(prog="python -m arena.store.migrations")
    options = cli.parser.parse_args(argv)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    config = alembic_config()
    config.cmd_opts = options
    cli.run_cmd(config, options)


if __name__ == "__main__":
    main()

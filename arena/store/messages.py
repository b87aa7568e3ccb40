"""Database errors as the one line a user reads."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """The driver's own message (never SQLAlchemy's SQL and parameter dump), its lines joined.

    psycopg's "connection refused" comes on two lines; SQLAlchemy appends the statement, its
    parameters and a link to every error it wraps.
    """
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).split("\n[SQL:", 1)[0].split("\n(Background on this error", 1)[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())

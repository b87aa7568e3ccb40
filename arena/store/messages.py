"""Database and file errors as the one line a user reads."""

from __future__ import annotations

MAX_CHARS = 300  # a driver's message can quote a whole row back


def one_line(exc: BaseException) -> str:
    """The driver's own message (never SQLAlchemy's SQL and parameter dump), its lines joined.

    psycopg's "connection refused" comes on two lines; SQLAlchemy appends the statement, its
    parameters and a link to every error it wraps. A file error is its reason and its path.
    """
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    orig = getattr(exc, "orig", None) or exc  # a DBAPIError wraps the driver's exception
    text = str(orig).split("\n[SQL:", 1)[0].split("\n(Background on this error", 1)[0]
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if text.startswith("(") and ") " in text:  # SQLAlchemy's "(sqlite3.OperationalError) " prefix
        text = text.split(") ", 1)[1]
    return text[:MAX_CHARS] or type(orig).__name__

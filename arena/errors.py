"""The one exception tree of arena; every error a user can cause is an ArenaError.

    ArenaError                    anything arena reports as a one-line message (exit code 2)
     ├── ConfigError              arena.toml or the environment: names the file, the field, the problem
     ├── ChallengeError           a challenge file: names the file, the field, the problem
     ├── ImageError               bytes that are not a plausible, safe image
     ├── ProviderError            a provider reply that failed; carries one failure class
     ├── StoreError               the database or the image store
     ├── VoteDataError            a votes file or vote rows: names the row and the problem
     └── RunError                 a run that cannot start or resume (unknown id, nothing to do)

Messages never contain secrets: adapters build them from status codes and provider text only.
"""

from __future__ import annotations


class ArenaError(Exception):
    """Base class: the message is meant for the user, one line."""


class _LocatedError(ArenaError):
    """An error in a file, at a field."""

    def __init__(self, path: object, field: str | None, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {problem}")


class ConfigError(_LocatedError):
    """A malformed configuration file or environment setting."""


class ChallengeError(_LocatedError):
    """A malformed challenge definition."""


class ImageError(ArenaError):
    """Bytes that do not decode to a plausible image within the safety limits."""


class ProviderError(ArenaError):
    """A failed provider call, classified into one of the failure classes in providers/base.py."""

    def __init__(
        self,
        failure_class: str,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.failure_class = failure_class
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        super().__init__(f"{failure_class}: {message}")


class StoreError(ArenaError):
    """The database or the content-addressed image store refused an operation."""


class VoteDataError(ArenaError):
    """Vote rows that cannot be rated: unknown outcome, missing column, empty board."""


class RunError(ArenaError):
    """A benchmark run that cannot start or resume."""

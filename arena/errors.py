"""The one exception tree of arena, and the failure kinds every failed attempt is classed into.

    ArenaError                    anything arena reports as a one-line message (exit code 2)
     ├── ConfigError              arena.toml or the environment: names the file, the field, the problem
     ├── ChallengeError           a challenge file: names the file, the field, the problem
     ├── ImageError               bytes that are not a plausible, safe image
     ├── ProviderError            a provider reply that failed; carries one Failure
     ├── StoreError               the database or the image store
     ├── VoteDataError            a votes file or vote rows: names the row and the problem
     └── RunError                 a run that cannot start or resume (unknown id, nothing to do)

    Failure                       the class of a failed attempt (stored as its value, e.g. "timeout")
     ├── timeout                  no complete reply within the provider's timeout (including mid-poll)
     ├── rate_limited             429, or the provider's own "too many requests" signal
     ├── refused                  content policy / moderation (also a gateway passing one on)
     ├── auth                     the provider rejected the key, or wanted one: 401, 403, or its own
     │                            "invalid key" 400; the message names $api_key_env, never the key
     ├── client_error             other 4xx: our request was wrong (bad parameter, not found)
     ├── server_error             5xx, or the provider reported an internal failure
     ├── network                  connection refused, reset, DNS, TLS, truncated transfer
     ├── bad_response             a reply we cannot read: invalid JSON, missing fields, unknown status
     ├── invalid_image            bytes that do not decode to a plausible image
     └── empty_output             a success reply with no image in it

Messages never contain secrets: adapters build them from status codes and provider text only.
"""

from __future__ import annotations

from enum import StrEnum


class Failure(StrEnum):
    """Every failed attempt has exactly one of these; the order is the order reports list them in."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    REFUSED = "refused"
    AUTH = "auth"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    NETWORK = "network"
    BAD_RESPONSE = "bad_response"
    INVALID_IMAGE = "invalid_image"
    EMPTY_OUTPUT = "empty_output"


# The values as plain strings, in Failure's order: column names, categories, the database's words.
FAILURE_CLASSES: tuple[str, ...] = tuple(failure.value for failure in Failure)


# What a setting of each type must be, in a message's words ("must be an integer").
TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    dict: "a table",
    list: "a list",
}


def expected(kind: type | tuple[type, ...]) -> str:
    """'an integer', 'a number or a string': what a value of these types must be, for messages."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(TYPE_WORDS.get(k, f"a {k.__name__}") for k in kinds)


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 success', '2 successes': the count and the word in the number it takes."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


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
    """A failed provider call, classified into exactly one Failure."""

    def __init__(
        self,
        failure_class: Failure | str,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        # Checked here so a misspelt class fails where it is raised; kept as the plain string the
        # database stores (a str subclass could be written differently by a database driver).
        self.failure_class: str = Failure(failure_class).value
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        super().__init__(f"{self.failure_class}: {message}")


class StoreError(ArenaError):
    """The database or the content-addressed image store refused an operation."""


class VoteDataError(ArenaError):
    """Vote rows that cannot be rated: unknown outcome, missing column, empty board."""


class RunError(ArenaError):
    """A benchmark run that cannot start or resume."""

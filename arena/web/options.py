"""The voting server's knobs: expiry, dwell and burst flags, rate limits, image box; read from env for workers."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from arena.config import secret_in_file
from arena.errors import ConfigError, expected

ENV_PREFIX = "ARENA_WEB_"


@dataclass(frozen=True)
class WebOptions:
    """Every rule of the voting page that an operator may tune (ARENA_WEB_<NAME> in the environment)."""

    battle_ttl_s: float = 1800.0  # a battle not voted on within 30 min expires (410)
    min_dwell_s: float = (
        1.5  # votes sooner than this after the battle was issued are flagged "fast"
    )
    burst_window_s: float = 60.0
    burst_votes: int = (
        20  # more votes than this by one session within the window are flagged "burst"
    )
    session_per_min: float = 60.0  # POSTs per session per minute (0: no limit)
    ip_per_min: float = 600.0  # POSTs per IP per minute (0: no limit); per worker process
    rate_burst: int = 20  # requests a bucket may take at once
    max_body_bytes: int = 4096
    box_px: int = 768  # long side of the box every output is fitted into
    webp_quality: int = 80
    known_sessions: int = (
        20000  # sessions a server process remembers (seen images, latest battle) between requests
    )
    refresh_s: float = 30.0  # how often the pool of outputs, vote counts and ratings are re-read
    secret: str = ""  # signs session cookies and CSRF tokens and salts IP hashes; shared by workers
    reports_dir: str = ""  # the built report, linked as the leaderboard ("" = <project>/reports)

    def with_secret(self, data_dir: Path) -> WebOptions:
        """A secret from the options, else from data_dir/web-secret (made once, readable by us only)."""
        if self.secret:
            return self
        return replace(self, secret=secret_in_file(Path(data_dir) / "web-secret"))


def options_from_env(environ: dict | None = None) -> WebOptions:
    """WebOptions with every ARENA_WEB_<FIELD> variable applied; a bad value names the variable."""
    environ = os.environ if environ is None else environ
    values = {}
    for field in fields(WebOptions):
        name = ENV_PREFIX + field.name.upper()
        if name not in environ:
            continue
        text = environ[name]
        kind = type(getattr(WebOptions(), field.name))
        try:
            values[field.name] = kind(text)
        except ValueError:
            raise ConfigError(
                "environment", name, f"must be {expected(kind)}, got {text!r}"
            ) from None
    return WebOptions(**values)

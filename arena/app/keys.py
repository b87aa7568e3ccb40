"""`arena keys`: gateway keys made, listed and revoked in the configured database."""

from __future__ import annotations

import math

from arena import store
from arena.config import Settings
from arena.errors import ArenaError
from arena.store import keys
from arena.store.keys import KeyRow


def _checked(what: str, value: float | None) -> None:
    if value is not None and not (0 <= value < math.inf):
        raise ArenaError(f"{what} {value!r}: must be a finite number, 0 or more")


def create_key(
    settings: Settings,
    name: str,
    *,
    budget_usd: float | None = None,
    rate_per_min: float | None = None,
) -> str:
    """A new gateway key named `name` (its hash stored); returns the key, which is never shown again."""
    _checked("--budget-usd", budget_usd)
    _checked("--rate-per-min", rate_per_min)
    if rate_per_min is not None and rate_per_min < 1:
        raise ArenaError(f"--rate-per-min {rate_per_min!r}: must be 1 or more")
    engine = store.open_engine(settings.database_url)
    try:
        return keys.create_key(engine, name, budget_usd=budget_usd, rate_per_min=rate_per_min)
    finally:
        engine.dispose()


def list_keys(settings: Settings) -> list[KeyRow]:
    """Every gateway key's row (names, prefixes and figures: never a key or its hash)."""
    engine = store.open_engine(settings.database_url)
    try:
        return keys.list_keys(engine)
    finally:
        engine.dispose()


def revoke_key(settings: Settings, name: str) -> None:
    """Revoke the key named `name`; the gateway refuses it within its cache time (2 s by default)."""
    engine = store.open_engine(settings.database_url)
    try:
        keys.revoke_key(engine, name)
    finally:
        engine.dispose()

"""Gateway keys: made, listed, revoked and looked up by their sha256; the key itself is never stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from arena.errors import ArenaError
from arena.store.tables import GatewayKey, utcnow

KEY_PREFIX = "arena-"  # every gateway key starts so, which tells it from a provider's key in a scan
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def hash_key(key: str) -> str:
    """The sha256 stored for a key (keys are 256 random bits: a plain hash is enough, no salt)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyRow:
    """A gateway key as the store keeps it: never the key, only its name, prefix and figures."""

    name: str
    key_sha256: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    budget_usd: float | None
    rate_per_min: float | None
    spent_usd: float
    requests: int
    last_used_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _row(mapping) -> KeyRow:
    return KeyRow(**{f: mapping[f] for f in KeyRow.__dataclass_fields__})


def create_key(
    engine: sa.Engine,
    name: str,
    *,
    budget_usd: float | None = None,
    rate_per_min: float | None = None,
) -> str:
    """A new key named `name`: returns the key (shown once); stores only its hash."""
    if not NAME_RE.match(name):
        raise ArenaError(
            f"key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    table = GatewayKey.__table__
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert().values(
                    name=name,
                    key_sha256=hash_key(key),
                    key_prefix=key[: len(KEY_PREFIX) + 4],
                    created_at=utcnow(),
                    budget_usd=budget_usd,
                    rate_per_min=rate_per_min,
                    spent_usd=0.0,
                    requests=0,
                )
            )
    except IntegrityError:
        raise ArenaError(
            f"a key named {name!r} exists already (a name stays taken after a revoke: pick another)"
        ) from None
    return key


def list_keys(engine: sa.Engine) -> list[KeyRow]:
    table = GatewayKey.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.name)).mappings().all()
    return [_row(r) for r in rows]


def find_key(engine: sa.Engine, key: str) -> KeyRow | None:
    """The row of a presented key (revoked ones too), or None."""
    table = GatewayKey.__table__
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(table).where(table.c.key_sha256 == hash_key(key)))
            .mappings()
            .first()
        )
    return _row(row) if row else None


def revoke_key(engine: sa.Engine, name: str) -> None:
    """Mark a key revoked (kept, so its spend and traffic still read); unknown names are an error."""
    table = GatewayKey.__table__
    with engine.begin() as conn:
        done = conn.execute(
            table.update()
            .where(table.c.name == name, table.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
        if not done:
            exists = conn.execute(sa.select(table.c.name).where(table.c.name == name)).first()
            if exists:
                raise ArenaError(f"key {name!r} is revoked already")
            raise ArenaError(f"no key named {name!r} (arena keys list shows them)")


@dataclass(frozen=True)
class Spend:
    """What one gateway process settled on a key since its last write."""

    cost_usd: float
    requests: int
    last_used_at: datetime


def add_spend(engine: sa.Engine, spends: dict[str, Spend]) -> None:
    """Add each key's settled spend and requests in one transaction.

    The addition happens in SQL (`spent_usd = spent_usd + :x`), so several gateway processes
    writing to one key add up instead of overwriting each other; last_used_at only moves forward.
    A key that is no longer there is skipped (nothing to add to).
    """
    if not spends:
        return
    table = GatewayKey.__table__
    c = table.c
    used_at = sa.bindparam("used_at", type_=c.last_used_at.type)
    statement = (
        table.update()
        .where(c.name == sa.bindparam("key_name"))
        .values(
            spent_usd=c.spent_usd + sa.bindparam("add_usd", type_=sa.Float),
            requests=c.requests + sa.bindparam("add_requests", type_=sa.Integer),
            last_used_at=sa.case(
                (
                    sa.or_(c.last_used_at.is_(None), c.last_used_at < used_at),
                    used_at,
                ),
                else_=c.last_used_at,
            ),
        )
    )
    rows = [
        {
            "key_name": name,
            "add_usd": spend.cost_usd,
            "add_requests": spend.requests,
            "used_at": spend.last_used_at,
        }
        for name, spend in sorted(spends.items())  # one lock order for every writer: no deadlock
    ]
    with engine.begin() as conn:
        conn.execute(statement, rows)

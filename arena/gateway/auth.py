"""Gateway keys: the Bearer check, budgets, rates and spend (store/keys.py keeps them).

MINIMAL placeholder of the CORE helper's worktree (the KEYS helper's module replaces it at merge):
the Bearer check against the store; charge() does nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from arena.gateway.replies import GatewayError
from arena.store.keys import find_key


@dataclass(frozen=True)
class Grant:
    key_name: str
    playground: bool = False


class KeyRing:
    def __init__(self, engine, *, cache_s: float = 2.0) -> None:
        self.engine = engine
        self.cache_s = cache_s

    async def authorize(
        self, authorization: str | None, *, expected_cost_usd: float | None = None
    ) -> Grant:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise GatewayError(
                401,
                "missing gateway key: send Authorization: Bearer <key> (arena keys create NAME makes one)",
                code="invalid_api_key",
            )
        row = await asyncio.to_thread(find_key, self.engine, key.strip())
        if row is None or row.revoked:
            raise GatewayError(401, "invalid or revoked gateway key", code="invalid_api_key")
        return Grant(key_name=row.name)

    def charge(self, grant: Grant, cost_usd: float | None) -> None:
        return None

    async def aclose(self) -> None:
        return None

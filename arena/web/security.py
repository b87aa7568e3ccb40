"""Sessions signed by the server, CSRF tokens, salted IP hashes and per-key rate limits."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

COOKIE_NAME = "arena_session"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Signer:
    """Everything keyed by the server secret: no session table, so every worker agrees without a lookup."""

    secret: str

    @property
    def _key(self) -> bytes:
        return self.secret.encode()

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.digest(self._key, f"{purpose}|{value}".encode(), "sha256").hex()

    def new_cookie(self) -> tuple[str, str]:
        """(cookie value, session id): 128 random bits and their signature."""
        sid = secrets.token_hex(16)
        return f"{sid}.{self._mac('sid', sid)[:32]}", sid

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a genuine cookie, else None."""
        if not cookie or "." not in cookie or len(cookie) > 100:
            return None
        sid, mac = cookie.split(".", 1)
        return sid if hmac.compare_digest(mac, self._mac("sid", sid)[:32]) else None

    def csrf_token(self, sid: str) -> str:
        return self._mac("csrf", sid)[:40]

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token, self.csrf_token(sid))

    def voter(self, sid: str) -> str:
        """What the database stores for a session: a keyed hash, so a copy of the tables cannot vote as anyone."""
        return self._mac("voter", sid)[:32]

    def ip_hash(self, ip: str) -> str:
        return self._mac("ip", ip)[:32]


@dataclass
class RateLimiter:
    """Token buckets per key (an IP or a session) within one process; rate 0 means no limit."""

    per_min: float
    burst: int
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: str, now: float | None = None) -> float:
        """0.0 when the request may go ahead, else the seconds to wait."""
        if self.per_min <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        rate = self.per_min / 60.0
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._prune(now, rate)
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def _prune(self, now: float, rate: float) -> None:
        """Forget buckets that have refilled: they behave exactly like new ones."""
        full_after = self.burst / rate
        for key in [k for k, (_, last) in self._buckets.items() if now - last >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # still full: drop the oldest half
            for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[
                : self.max_keys // 2
            ]:
                del self._buckets[key]

"""Issuing battles and taking votes: the rules of one blind vote, on top of the store and the pool."""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from arena.config import Settings
from arena.sampling import choose_battle
from arena.store import votepath
from arena.store.tables import utcnow
from arena.web.options import WebOptions
from arena.web.pool import Pool
from arena.web.security import Signer

CHOICES = {"a": "left", "b": "right", "tie": "tie", "both_bad": "both_bad"}
SLOTS = {"a": "view_left", "b": "view_right", "s": "view_source"}  # fields of votepath.BattleViews


class ApiError(Exception):
    """A client mistake with its HTTP status, a stable code and a sentence saying what to do."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class KnownSession:
    """What this process knows of a voter's session: every image shown to it and its latest battle,
    complete as long as no other process issues it a battle (the store's guard checks that)."""

    seen: set[str]
    latest: tuple[str, datetime] | None  # (battle id, issued_at)
    latest_may_be_open: bool  # False once this process took its vote


@dataclass
class Voting:
    """One server process's view of the voting rules; the pool snapshot is swapped by the refresher.

    Its methods are coroutines on the server's event loop: each awaits one to three indexed
    statements of the store's vote path (arena.votepath.VotePath).
    """

    engine: sa.Engine
    settings: Settings
    options: WebOptions
    signer: Signer
    pool: Pool

    def __post_init__(self) -> None:
        self.rng = random.Random(secrets.randbits(64))
        self.db = votepath.VotePath(self.engine)
        self.sessions: dict[str, KnownSession] = {}  # by voter, oldest first

    # --- battles ---

    def card(
        self, battle_id: str, challenge_slug: str, task: str, view_source: str | None, expires_at
    ) -> dict:
        """A battle as the client sees it: no model, provider, file name or original URL."""
        challenge = self.pool.challenges.get(challenge_slug)
        base = f"/img/{battle_id}"
        return {
            "battle_id": battle_id,
            "expires_at": expires_at.isoformat(),
            "challenge": {
                "title": challenge.title if challenge else "",
                "task": task,
                "prompt": challenge.prompt if challenge else "",
                "prompt_format": challenge.prompt_format if challenge else "text",
            },
            "images": {
                "a": f"{base}/a",
                "b": f"{base}/b",
                "source": f"{base}/s" if view_source else None,
            },
        }

    async def issue(self, sid: str, ip: str, user_agent: str) -> dict | None:
        """The session's open battle if it has one (a reload does not re-roll the pair), else a new one.

        A new battle is one statement when this process knows the session (KnownSession): the pair
        is chosen from what it knows the session has seen, and the store keeps the battle only if no
        other battle was issued to the session meanwhile (by another worker); otherwise, and for a
        session new to this process, the session's battles are read first.
        """
        voter = self.signer.voter(sid)
        now = utcnow()
        known = self.sessions.get(voter)
        for _ in range(
            3
        ):  # a guard that fails means fresh news: read again (twice in a row is rare)
            if known is None or known.latest_may_be_open:
                known, open_card = await self._read_session(voter, now)
                if open_card is not None:
                    return open_card
            card = await self._issue_new(voter, known, now, ip, user_agent)
            if card is not False:
                return card
            known = None
        raise ApiError(
            503,
            "busy_session",
            "This session is getting battles from elsewhere at the same time; try again.",
            headers={"Retry-After": "1"},
        )

    async def _read_session(self, voter: str, now) -> tuple[KnownSession, dict | None]:
        """What the store has of a session, remembered; and the card of its open battle, if any."""
        history = await self.db.session_battles(voter, now)
        pool = self.pool
        known = KnownSession(
            seen={image for row in history for image in (row.image_left, row.image_right)},
            latest=(history[-1].id, history[-1].issued_at) if history else None,
            latest_may_be_open=False,
        )
        self._remember(voter, known)
        for row in reversed(history):
            if row.is_open and row.challenge in pool.challenges:
                known.latest_may_be_open = row.id == known.latest[0]
                return known, self.card(
                    row.id, row.challenge, row.task, row.view_source, row.expires_at
                )
        return known, None

    async def _issue_new(
        self, voter: str, known: KnownSession, now, ip: str, user_agent: str
    ) -> dict | None | bool:
        """A new battle's card; None when the session has seen everything; False when the guard failed."""
        pool = self.pool
        choice = choose_battle(
            pool.outputs,
            challenge_votes=pool.challenge_votes,
            uncertainty=pool.uncertainty,
            seen=known.seen,
            rng=self.rng,
        )
        if choice is None:
            return None
        challenge = pool.challenges[choice.challenge]
        first, second = choice.first, choice.second
        expires_at = now + timedelta(seconds=self.options.battle_ttl_s)
        row = {
            "id": secrets.token_hex(16),
            "session": voter,
            "challenge": challenge.slug,
            "task": challenge.task,
            "category": challenge.category,
            "model_left": first.model,
            "provider_left": first.provider,
            "image_left": first.image,
            "view_left": first.view,
            "model_right": second.model,
            "provider_right": second.provider,
            "image_right": second.image,
            "view_right": second.view,
            "view_source": challenge.source_view,
            "issued_at": now,
            "expires_at": expires_at,
            "weights_json": json.dumps(choice.weights, sort_keys=True),
            "ip_hash": self.signer.ip_hash(ip),
            "user_agent": user_agent[:200],
        }
        if not await self.db.issue_battle(row, coin=self.rng.random() < 0.5, after=known.latest):
            return False
        known.seen.update((first.image, second.image))
        known.latest, known.latest_may_be_open = (row["id"], now), True
        return self.card(
            row["id"], challenge.slug, challenge.task, challenge.source_view, expires_at
        )

    def _remember(self, voter: str, known: KnownSession) -> None:
        sessions = self.sessions
        sessions.pop(voter, None)
        if len(sessions) >= self.options.known_sessions:
            del sessions[
                next(iter(sessions))
            ]  # the longest-remembered; it is read again if it comes back
        sessions[voter] = known

    # --- votes ---

    async def vote(self, sid: str, battle_id: str, choice: str, ip: str) -> dict:
        """Consume the battle with this vote and reveal who made each image; 404, 409 or 410 otherwise.

        The flags (kept, never told to the voter; only a voter's first vote per challenge and pair
        counts): "fast" under min_dwell_s after the battle was issued, "burst" when the session
        already has burst_votes votes within burst_window_s, "repeat_pair" when it already voted on
        this challenge and pair (either side). The store computes them in the consuming statement.
        """
        voter = self.signer.voter(sid)
        now = utcnow()
        stored = await self.db.vote(
            {
                "battle_id": battle_id,
                "voter": voter,
                "outcome": CHOICES[choice],
                "ip_hash": self.signer.ip_hash(ip),
                "now": now,
                "since": now - timedelta(seconds=self.options.burst_window_s),
                "min_dwell_ms": self.options.min_dwell_s * 1000.0,
                "burst_votes": self.options.burst_votes,
            }
        )
        if stored is None:
            state = await self.db.vote_state(battle_id)
            if state is None or state.session != voter:
                raise ApiError(
                    404,
                    "battle_not_found",
                    "No such battle in this session; ask POST /api/battles for one.",
                )
            if state.vote_id is None and state.expires_at <= now:
                raise ApiError(
                    410,
                    "battle_expired",
                    "This battle expired before the vote; ask POST /api/battles for a new one.",
                )
            raise ApiError(
                409,
                "already_voted",
                "This battle already has its vote; ask POST /api/battles for the next.",
            )
        known = self.sessions.get(voter)
        if known is not None and known.latest is not None and known.latest[0] == battle_id:
            known.latest_may_be_open = False
        return {
            "battle_id": battle_id,
            "choice": choice,
            "reveal": {
                "a": self._reveal(stored.model_left, stored.provider_left),
                "b": self._reveal(stored.model_right, stored.provider_right),
            },
        }

    def _reveal(self, model: str, provider: str) -> dict:
        configured = self.settings.models.get(model)
        route_provider = self.settings.providers.get(provider)
        baseline = bool(
            (configured and configured.baseline) or (route_provider and route_provider.baseline)
        )
        return {"model": model, "provider": provider, "baseline": baseline}

    # --- images ---

    async def view_file(self, sid: str, battle_id: str, slot: str):
        """The derivative file behind /img/<battle>/<slot>, for the battle's own session only."""
        from arena.derivatives import view_path

        if slot not in SLOTS:
            raise ApiError(404, "image_not_found", "No such image in this session.")
        battle = await self.db.views(battle_id)
        view = (
            getattr(battle, SLOTS[slot])
            if battle is not None and battle.session == self.signer.voter(sid)
            else None
        )
        if not view:
            raise ApiError(404, "image_not_found", "No such image in this session.")
        return view_path(self.settings.data_dir / "derivatives", view)

"""Issuing battles and taking votes: the rules of one blind vote, on top of the store and the pool."""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from arena import store
from arena.config import Settings
from arena.sampling import choose_battle
from arena.tables import utcnow
from arena.web.options import WebOptions
from arena.web.pool import Pool
from arena.web.security import Signer

CHOICES = {"a": "left", "b": "right", "tie": "tie", "both_bad": "both_bad"}
SLOTS = {"a": "view_left", "b": "view_right", "s": "view_source"}


class ApiError(Exception):
    """A client mistake with its HTTP status, a stable code and a sentence saying what to do."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class Voting:
    """One server process's view of the voting rules; the pool snapshot is swapped by the refresher."""

    engine: sa.Engine
    settings: Settings
    options: WebOptions
    signer: Signer
    pool: Pool

    def __post_init__(self) -> None:
        self.rng = random.Random(secrets.randbits(64))

    # --- battles ---

    def card(self, battle: dict) -> dict:
        """A battle as the client sees it: no model, provider, file name or original URL."""
        challenge = self.pool.challenges.get(battle["challenge"])
        base = f"/img/{battle['id']}"
        return {
            "battle_id": battle["id"],
            "expires_at": store.as_utc(battle["expires_at"]).isoformat(),
            "challenge": {
                "title": challenge.title if challenge else "",
                "task": battle["task"],
                "prompt": challenge.prompt if challenge else "",
                "prompt_format": challenge.prompt_format if challenge else "text",
            },
            "images": {"a": f"{base}/a", "b": f"{base}/b", "source": f"{base}/s" if battle["view_source"] else None},
        }

    def issue(self, sid: str, ip: str, user_agent: str) -> dict | None:
        """The session's open battle if it has one (a reload does not re-roll the pair), else a new one."""
        with self.engine.begin() as conn:
            return self._issue(conn, sid, ip, user_agent)

    def _issue(self, conn: sa.Connection, sid: str, ip: str, user_agent: str) -> dict | None:
        voter = self.signer.voter(sid)
        history = store.session_battles(conn, voter)
        now = utcnow()
        for battle in reversed(history):
            if battle["vote_id"] is None and store.as_utc(battle["expires_at"]) > now \
                    and battle["challenge"] in self.pool.challenges:
                return self.card(battle)
        seen = {b["image_left"] for b in history} | {b["image_right"] for b in history}
        pool = self.pool
        choice = choose_battle(pool.outputs, challenge_votes=pool.challenge_votes, uncertainty=pool.uncertainty,
                               seen=seen, rng=self.rng)
        if choice is None:
            return None
        challenge = pool.challenges[choice.challenge]
        first, second = choice.first, choice.second
        row = {
            "id": secrets.token_hex(16), "session": voter, "challenge": challenge.slug, "task": challenge.task,
            "category": challenge.category,
            "model_left": first.model, "provider_left": first.provider, "image_left": first.image, "view_left": first.view,
            "model_right": second.model, "provider_right": second.provider, "image_right": second.image,
            "view_right": second.view, "view_source": challenge.source_view,
            "issued_at": now, "expires_at": now + timedelta(seconds=self.options.battle_ttl_s),
            "weights_json": json.dumps(choice.weights, sort_keys=True), "ip_hash": self.signer.ip_hash(ip),
            "user_agent": user_agent[:200],
        }
        stored = store.issue_battle(conn, row, coin=self.rng.random() < 0.5)
        return self.card(stored)

    # --- votes ---

    def vote(self, sid: str, battle_id: str, choice: str, ip: str) -> dict:
        """Consume the battle with this vote and reveal who made each image; 404, 409 or 410 otherwise."""
        with self.engine.begin() as conn:
            return self._vote(conn, sid, battle_id, choice, ip)

    def _vote(self, conn: sa.Connection, sid: str, battle_id: str, choice: str, ip: str) -> dict:
        voter = self.signer.voter(sid)
        battle = store.get_battle(conn, battle_id)
        if battle is None or battle["session"] != voter:
            raise ApiError(404, "battle_not_found", "No such battle in this session; ask POST /api/battles for one.")
        if battle["vote_id"] is not None:
            raise ApiError(409, "already_voted", "This battle already has its vote; ask POST /api/battles for the next.")
        now = utcnow()
        if store.as_utc(battle["expires_at"]) <= now:
            raise ApiError(410, "battle_expired", "This battle expired before the vote; ask POST /api/battles for a new one.")
        dwell_ms = (now - store.as_utc(battle["issued_at"])).total_seconds() * 1000.0
        pair = (battle["model_left"], battle["model_right"])
        recent, repeats = store.voter_history(conn, voter, now - timedelta(seconds=self.options.burst_window_s),
                                              battle["challenge"], pair)
        reasons = []
        if dwell_ms < self.options.min_dwell_s * 1000.0:
            reasons.append("fast")
        if recent >= self.options.burst_votes:
            reasons.append("burst")
        if repeats:
            reasons.append("repeat_pair")  # only a voter's first vote per (challenge, pair) counts
        row = {
            "battle_id": battle_id, "created_at": now, "challenge": battle["challenge"], "task": battle["task"],
            "category": battle["category"], "model_left": battle["model_left"], "model_right": battle["model_right"],
            "provider_left": battle["provider_left"], "provider_right": battle["provider_right"],
            "image_left": battle["image_left"], "image_right": battle["image_right"], "outcome": CHOICES[choice],
            "voter": voter, "ip_hash": self.signer.ip_hash(ip), "dwell_ms": round(dwell_ms, 1),
            "flagged": bool(reasons), "flag_reason": ",".join(reasons) or None,
        }
        if not store.record_vote(conn, row):
            raise ApiError(409, "already_voted", "This battle already has its vote; ask POST /api/battles for the next.")
        # Flags stay on the server: the voter sees the same reply either way.
        return {"battle_id": battle_id, "choice": choice, "reveal": {
            "a": self._reveal(battle["model_left"], battle["provider_left"]),
            "b": self._reveal(battle["model_right"], battle["provider_right"]),
        }}

    def _reveal(self, model: str, provider: str) -> dict:
        configured = self.settings.models.get(model)
        route_provider = self.settings.providers.get(provider)
        baseline = bool((configured and configured.baseline) or (route_provider and route_provider.baseline))
        return {"model": model, "provider": provider, "baseline": baseline}

    # --- images ---

    def view_file(self, sid: str, battle_id: str, slot: str):
        """The derivative file behind /img/<battle>/<slot>, for the battle's own session only."""
        from arena.derivatives import view_path

        if slot not in SLOTS:
            raise ApiError(404, "image_not_found", "No such image in this session.")
        with self.engine.connect() as conn:
            battle = store.get_battle(conn, battle_id)
        if battle is None or battle["session"] != self.signer.voter(sid) or not battle[SLOTS[slot]]:
            raise ApiError(404, "image_not_found", "No such image in this session.")
        return view_path(self.settings.data_dir / "derivatives", battle[SLOTS[slot]])

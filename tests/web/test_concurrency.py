"""50 clients x 20 votes against `arena serve`: 2 workers on PostgreSQL, 1 on SQLite; every vote stored once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from support.processes import start_server, stop
from support.servers import free_port

from arena import store
from arena.config import load_settings
from arena.providers import protocol_facts

from .factory import config_table, fill_store, write_challenges, write_toml

CLIENTS, VOTES_EACH = 50, 20
ARENA = str(Path(sys.executable).with_name("arena"))


async def _client(base: str, index: int, statuses: list, cast: list) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        reply = await client.get("/api/session")
        statuses.append(reply.status_code)
        headers = {"Origin": base, "X-CSRF-Token": reply.json()["csrf_token"]}
        for n in range(VOTES_EACH):
            battle = await client.post("/api/battles", headers=headers)
            statuses.append(battle.status_code)
            battle_id = battle.json()["battle_id"]
            vote = await client.post(
                "/api/votes",
                headers=headers,
                json={"battle_id": battle_id, "choice": ("a", "b", "tie", "both_bad")[n % 4]},
            )
            statuses.append(vote.status_code)
            cast.append(battle_id)


async def _swarm(base: str) -> tuple[list, list]:
    statuses, cast = [], []
    await asyncio.gather(*(_client(base, i, statuses, cast) for i in range(CLIENTS)))
    return statuses, cast


def _serve(config: Path, workers: int, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """`arena serve` on a free port, returned once its /api/health answers; its output in serve.log."""
    port = free_port()
    env = {
        **os.environ,
        "ARENA_WEB_IP_PER_MIN": "0",
        "ARENA_WEB_SESSION_PER_MIN": "0",
        "ARENA_WEB_BOX_PX": "128",
    }
    base = f"http://127.0.0.1:{port}"
    proc = start_server(
        [ARENA, "serve", "--config", str(config), "--port", str(port), "--workers", str(workers)],
        health_url=base + "/api/health",
        log_path=tmp_path / "serve.log",
        env=env,
        cwd=tmp_path,
    )
    return proc, base


def test_every_vote_of_fifty_concurrent_clients_is_stored_exactly_once(tmp_path, db_url):
    workers = 2 if db_url.startswith("postgresql") else 1
    challenges = write_challenges(tmp_path / "challenges")
    config = write_toml(tmp_path / "arena.toml", config_table(tmp_path, db_url, challenges))
    settings = load_settings(config, protocols=protocol_facts())
    fill_store(
        settings, samples=6
    )  # 24 outputs per challenge: every client gets 20 battles of unseen images
    proc, base = _serve(config, workers, tmp_path)
    try:
        statuses, cast = asyncio.run(_swarm(base))
    finally:
        stop(proc)  # the server, then anything left of its session
    assert len(cast) == CLIENTS * VOTES_EACH
    assert set(statuses) == {200}, sorted(set(statuses))
    engine = store.open_engine(settings.database_url)
    votes = store.read_votes(engine)
    with engine.connect() as conn:
        battles = conn.execute(sa.text("SELECT count(*) FROM battles")).scalar_one()
    engine.dispose()
    assert len(votes) == CLIENTS * VOTES_EACH == battles
    assert votes["battle_id"].is_unique and set(votes["battle_id"]) == set(cast)
    assert votes["voter"].nunique() == CLIENTS
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


# Up to 120 s to start on a loaded machine, then the swarm itself.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

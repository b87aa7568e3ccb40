"""The golden store: a real local-provider run on three challenges, then synthetic votes; built once."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from support.store import add_votes

from arena import store
from arena.config import parse_settings
from arena.providers import protocol_facts

ROOT = Path(__file__).resolve().parents[2]
EVIL_MODEL = '<script>alert("model")</script>'
EVIL_PROMPT = 'Draw a cat <script>alert("prompt")</script> & a dog'
VOTER_SECRET = "voter-session-7f3a"
IP_SECRET = "iphash-9c1d"
STAMP = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def golden_config(directory: Path) -> dict:
    return {
        "data_dir": str(directory / "data"),
        "database_url": f"sqlite:///{directory / 'data' / 'arena.db'}",
        "challenges_dir": str(directory / "challenges"),
        "providers": {
            "local": {"protocol": "local", "rate_limit_per_s": 50.0, "max_concurrency": 8}
        },
        "models": {
            "identity": {
                "tasks": ["edit"],
                "description": "the unchanged input",
                "providers": {"local": {"model_id": "identity", "price_usd": 0.0}},
            },
            "cartoon-filter": {
                "tasks": ["edit"],
                "baseline": False,
                "providers": {"local": {"model_id": "cartoon", "price_usd": 0.03}},
            },
            "night-grade": {
                "tasks": ["edit"],
                "baseline": False,
                "providers": {"local": {"model_id": "night", "price_usd": 0.01}},
            },
            "prompt-card": {
                "tasks": ["text-to-image"],
                "providers": {"local": {"model_id": "prompt-card", "price_usd": 0.0}},
            },
            EVIL_MODEL: {
                "tasks": ["text-to-image"],
                "baseline": False,
                "providers": {
                    "local": {"model_id": "palette", "price_usd_by_tier": {"1K": 0.02, "2K": 0.05}}
                },
            },
        },
    }


def write_challenges(directory: Path) -> None:
    directory.mkdir(parents=True)
    for slug in ("bald-man", "night-sky"):
        shutil.copy(ROOT / "challenges" / f"{slug}.toml", directory / f"{slug}.toml")
    shutil.copytree(ROOT / "challenges" / "images", directory / "images")
    (directory / "evil-prompt.toml").write_text(
        'slug = "evil-prompt"\ntitle = "Title <script>alert(\\"title\\")</script>"\nkind = "text-to-image"\n'
        f'category = "illustration"\nprompt = "{EVIL_PROMPT.replace(chr(34), chr(92) + chr(34))}"\n'
    )


def synthetic_votes(seed: int = 3) -> list[dict]:
    """Votes among the edit models and among the text-to-image models; two flagged."""
    rng = np.random.default_rng(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    plans = [
        (
            "edit",
            ["identity", "cartoon-filter", "night-grade"],
            ["bald-man", "night-sky"],
            "portrait-edit",
            90,
        ),
        ("text-to-image", ["prompt-card", EVIL_MODEL], ["evil-prompt"], "illustration", 40),
    ]
    votes, n = [], 0
    for task, models, challenges, category, count in plans:
        strength = {m: k * 0.8 for k, m in enumerate(models)}
        for _ in range(count):
            left, right = rng.choice(models, 2, replace=False)
            p_left = 1 / (1 + np.exp(strength[right] - strength[left]))
            draw = rng.random()
            outcome = "tie" if draw < 0.15 else ("left" if rng.random() < p_left else "right")
            votes.append(
                {
                    "battle_id": f"battle-{n:04d}",
                    "created_at": start + timedelta(seconds=20 * n),
                    "challenge": str(rng.choice(challenges)),
                    "task": task,
                    "category": category,
                    "model_left": str(left),
                    "model_right": str(right),
                    "outcome": outcome,
                    "voter": VOTER_SECRET,
                    "ip_hash": IP_SECRET,
                    "flagged": n in (5, 17),
                }
            )
            n += 1
    return votes


@pytest.fixture(scope="session")
def golden(tmp_path_factory):
    """Settings of a store with a real run of 3 challenges x 5 models and 130 votes."""
    from arena.app.runs import run_benchmark

    directory = tmp_path_factory.mktemp("golden")
    write_challenges(directory / "challenges")
    settings = parse_settings(golden_config(directory), "<golden>", directory, protocol_facts())
    report = run_benchmark(settings)
    assert report.status == "completed"
    engine = store.open_engine(settings.database_url)
    add_votes(engine, synthetic_votes())
    engine.dispose()
    return settings


@pytest.fixture(scope="session")
def golden_site(golden, tmp_path_factory):
    """The report of the golden store, built once with a fixed stamp."""
    from arena.report import build_site

    out = tmp_path_factory.mktemp("site")
    result = build_site(golden, out, stamp=STAMP)
    return result

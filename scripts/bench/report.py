#!/usr/bin/env python3
"""Time and peak memory to build the whole report site from a large synthetic store; prints one JSON line.

Store: 100 models x 6 providers x 20 challenges (10 text-to-image, 10 edits) x 30 nights of
generations (360,000 attempts, ~4% failures), one small image per challenge and model, and
1,000,000 votes drawn from a Bradley-Terry model, in a temporary SQLite file (bulk inserts through
SQLAlchemy Core). The build runs in a fresh child process so its peak RSS is the build's alone;
peak_rss_mb adds the peak of the worker it forks for the votes.

    .venv/bin/python scripts/bench/report.py [--models 100] [--providers 6] [--challenges 20]
                                             [--nights 30] [--votes 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FAILURES = ("timeout", "rate_limited", "server_error", "refused")


def synthetic_config(models: int, providers: int, directory: Path) -> dict:
    """An arena.toml-shaped table: every model on every provider, prices that differ."""
    rng = np.random.default_rng(1)
    config = {
        "data_dir": str(directory / "data"),
        "database_url": f"sqlite:///{directory / 'data' / 'arena.db'}",
        "challenges_dir": str(directory / "challenges"),
        "providers": {
            f"provider-{p}": {"protocol": "openai", "base_url": f"http://127.0.0.1:9/p{p}"}
            for p in range(providers)
        },
        "models": {},
    }
    for m in range(models):
        config["models"][f"model-{m:03d}"] = {
            "tasks": ["text-to-image", "edit"],
            "baseline": m < 2,
            "providers": {
                f"provider-{p}": {
                    "model_id": f"m{m}",
                    "price_usd": round(float(rng.uniform(0.003, 0.12)), 3),
                }
                for p in range(providers)
            },
        }
    return config


def write_challenges(directory: Path, count: int) -> list[tuple[str, str, str]]:
    """count challenge files, half edits of one small source image; returns (slug, task, category)."""
    from PIL import Image

    (directory / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (120, 90, 60)).save(directory / "images" / "source.png")
    challenges = []
    for c in range(count):
        task = "edit" if c % 2 else "text-to-image"
        slug, category = f"challenge-{c:02d}", f"category-{c % 5}"
        lines = [
            f'slug = "{slug}"',
            f'title = "Challenge {c}"',
            f'kind = "{task}"',
            f'prompt = "synthetic prompt number {c}"',
            f'category = "{category}"',
        ]
        if task == "edit":
            lines.append('source_images = ["images/source.png"]')
        (directory / f"{slug}.toml").write_text("\n".join(lines) + "\n")
        challenges.append((slug, task, category))
    return challenges


def build_store(
    directory: Path, models: int, providers: int, n_challenges: int, nights: int, n_votes: int
):
    """The synthetic store under `directory`; returns its Settings."""
    from PIL import Image
    from scipy.special import expit

    from arena import store
    from arena.config import parse_settings
    from arena.providers import protocol_facts
    from arena.store.tables import Attempt, Run, StoredImage, Vote

    config = synthetic_config(models, providers, directory)
    challenges = write_challenges(directory / "challenges", n_challenges)
    settings = parse_settings(config, "<synthetic>", directory, protocol_facts())
    engine = store.open_engine(settings.database_url)
    rng = np.random.default_rng(0)
    start = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
    model_names = sorted(settings.models)
    provider_names = sorted(settings.providers)

    # One small image per challenge and model, shared by its generations on every provider and night.
    image_rows, image_of = [], {}
    for c, (slug, _, _) in enumerate(challenges):
        for m, model in enumerate(model_names):
            buffer = io.BytesIO()
            Image.new("RGB", (48, 48), (c * 12 % 256, m * 2 % 256, 128)).save(buffer, format="PNG")
            data = buffer.getvalue()
            from arena.images import inspect_image, save_image

            info = inspect_image(data)
            path = save_image(settings.images_dir, data, info)
            image_of[(slug, model)] = info.sha256
            image_rows.append(
                {
                    "sha256": info.sha256,
                    "path": str(path.relative_to(settings.data_dir)),
                    "format": info.format,
                    "width": info.width,
                    "height": info.height,
                    "size_bytes": info.size_bytes,
                    "created_at": start,
                }
            )
    with engine.begin() as conn:
        conn.execute(StoredImage.__table__.insert(), image_rows)
        conn.execute(
            Run.__table__.insert(),
            [
                {
                    "id": f"night-{n:02d}",
                    "created_at": start + timedelta(days=n),
                    "finished_at": start + timedelta(days=n, hours=1),
                    "status": "completed",
                    "config_source": "<synthetic>",
                    "settings_json": store.settings_snapshot(settings),
                    "samples": 1,
                    "jobs_total": models * providers * n_challenges,
                }
                for n in range(nights)
            ],
        )

    base_ms = rng.uniform(800, 9000, (models, providers))
    attempt_rows = []
    for n in range(nights):
        for c, (slug, task, category) in enumerate(challenges):
            for m, model in enumerate(model_names):
                times = base_ms[m] * rng.lognormal(0, 0.25, providers)
                failed = rng.random(providers) < 0.04
                for p, provider in enumerate(provider_names):
                    ok = not failed[p]
                    attempt_rows.append(
                        {
                            "run_id": f"night-{n:02d}",
                            "attempt": 1,
                            "warmup": False,
                            "challenge": slug,
                            "task": task,
                            "category": category,
                            "model": model,
                            "provider": provider,
                            "started_at": start + timedelta(days=n, seconds=c * 60 + m),
                            "ok": ok,
                            "failure_class": None if ok else FAILURES[(m + p + n) % len(FAILURES)],
                            "status_code": 200 if ok else 500,
                            "generation_ms": float(times[p]) if ok else None,
                            "ttfb_ms": float(times[p] * 0.9) if ok else None,
                            "download_ms": 40.0 if ok else None,
                            "cost_usd": 0.02 if ok else 0.0,
                            "image_sha256": image_of[(slug, model)] if ok else None,
                            "width": 48 if ok else None,
                            "height": 48 if ok else None,
                            "format": "PNG" if ok else None,
                        }
                    )
        if len(attempt_rows) >= 100_000 or n == nights - 1:
            with engine.begin() as conn:
                conn.execute(Attempt.__table__.insert(), attempt_rows)
            attempt_rows = []

    strengths = rng.normal(0, 0.6, models)
    chunk = 200_000
    for first in range(0, n_votes, chunk):
        size = min(chunk, n_votes - first)
        left = rng.integers(0, models, size)
        right = (left + rng.integers(1, models, size)) % models
        which = rng.integers(0, n_challenges, size)
        wins = rng.random(size) < expit(strengths[left] - strengths[right])
        draw = rng.random(size)
        outcome = np.where(
            draw < 0.2, "tie", np.where(draw < 0.27, "both_bad", np.where(wins, "left", "right"))
        )
        seconds = rng.integers(0, nights * 86400, size)
        rows = [
            {
                "battle_id": f"b{first + k:08d}",
                "created_at": start + timedelta(seconds=int(seconds[k])),
                "challenge": challenges[which[k]][0],
                "task": challenges[which[k]][1],
                "category": challenges[which[k]][2],
                "model_left": model_names[left[k]],
                "model_right": model_names[right[k]],
                "provider_left": provider_names[k % providers],
                "provider_right": provider_names[(k + 1) % providers],
                "outcome": str(outcome[k]),
                "voter": f"v{k % 5000:05d}",
                "ip_hash": f"ip{k % 4000:05d}",
                "flagged": bool(k % 500 == 0),
            }
            for k in range(size)
        ]
        with engine.begin() as conn:
            conn.execute(Vote.__table__.insert(), rows)
    engine.dispose()
    return settings


def _own_peak_mb() -> float:
    """This process's peak RSS since it started.

    Not ru_maxrss on Linux: exec carries the peak of the image it replaces over, and a spawned
    child is exec'd from a fork of this script's parent, which holds the store it just built
    (~460 MB would be counted as the build's). VmHWM is the peak of this process image alone.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_once(settings, out_dir: Path, queue) -> None:
    """In a child process: build the site, report the time and this process's peak RSS."""
    from arena.report import build_site

    started = time.perf_counter()
    result = build_site(settings, out_dir)
    elapsed = time.perf_counter() - started
    # The build forks one worker for the vote half: count both peaks (an upper bound on the total).
    self_mb = _own_peak_mb()
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    queue.put(
        {
            "build_s": round(elapsed, 2),
            "peak_rss_mb": round(self_mb + worker_mb, 1),
            "pages": result.pages,
            "main_rss_mb": round(self_mb, 1),
            "worker_rss_mb": round(worker_mb, 1),
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--providers", type=int, default=6)
    parser.add_argument("--challenges", type=int, default=20)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the store and site here and keep them")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="arena-bench-report-"))
    try:
        started = time.perf_counter()
        settings = build_store(
            directory, args.models, args.providers, args.challenges, args.nights, args.votes
        )
        setup_s = time.perf_counter() - started
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=build_once, args=(settings, directory / "site", queue))
        child.start()
        result = queue.get()
        child.join()
        result.update(
            {
                "models": args.models,
                "providers": args.providers,
                "challenges": args.challenges,
                "nights": args.nights,
                "attempts": args.models * args.providers * args.challenges * args.nights,
                "votes": args.votes,
                "store_setup_s": round(setup_s, 1),
            }
        )
        print(json.dumps(result))
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

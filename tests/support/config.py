"""An arena.toml for a provider on loopback."""

from __future__ import annotations

from pathlib import Path


def write_config(
    path: Path,
    *,
    base_url: str,
    models: dict[str, list[str]],
    challenges_dir: Path,
    db_url: str,
    data_dir: Path,
    timeout_s: float = 5.0,
    max_retries: int = 2,
    price: float = 0.01,
    max_concurrency: int = 4,
    rate: float = 100.0,
    warmup: bool = False,
) -> Path:
    """An arena.toml for a provider at base_url serving the given models ({name: tasks})."""
    lines = [
        f'data_dir = "{data_dir}"',
        f'database_url = "{db_url}"',
        f'challenges_dir = "{challenges_dir}"',
        "",
        "[providers.faulty]",
        'protocol = "openai"',
        f'base_url = "{base_url}"',
        f"rate_limit_per_s = {rate}",
        f"max_concurrency = {max_concurrency}",
        f"timeout_s = {timeout_s}",
        f"max_retries = {max_retries}",
        "max_retry_after_s = 1.0",
        f"warmup = {'true' if warmup else 'false'}",
        "",
    ]
    for name, tasks in models.items():
        lines += [
            f'[models."{name}"]',
            f"tasks = {tasks!r}".replace("'", '"'),
            f'[models."{name}".providers.faulty]',
            f'model_id = "{name}"',
            f"price_usd = {price}",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def write_challenges(directory, count: int):
    """`count` text-to-image challenges c00, c01, ... in a new folder; returns the folder."""
    directory.mkdir()
    for i in range(count):
        (directory / f"c{i:02d}.toml").write_text(
            f'slug = "c{i:02d}"\ntitle = "t"\nkind = "text-to-image"\nprompt = "prompt {i}"\ncategory = "x"\n'
        )
    return directory


def write_slow_config(tmp_path, fault_server, db_url, count: int = 10):
    """A config whose runs take a few seconds: `count` jobs of the fault server's slow-ok model,
    one at a time, at its delay each."""
    return write_config(
        tmp_path / "arena.toml",
        base_url=fault_server.base_url,
        models={"slow-ok": ["text-to-image"]},
        challenges_dir=write_challenges(tmp_path / "challenges", count),
        db_url=db_url,
        data_dir=tmp_path / "data",
        max_concurrency=1,
    )

"""The local baseline provider on loopback for fault tests: every image request's arrival stamped,
every reply counted, and a config (challenges included) that runs it with many small jobs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from arena.providers.local import LocalProvider

from .servers import serve_in_thread


class StampedLocalProvider:
    """`with StampedLocalProvider() as local:` serves the local provider; `local.arrivals` holds the
    wall-clock time (time.time()) each image request arrived, `local.replies` how many were answered."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.provider = LocalProvider(delay_s=delay_s)
        self.arrivals: list[float] = []
        self.replies = 0
        self._lock = threading.Lock()
        self._served = serve_in_thread(self._app, name="stamped-local-provider", interface="asgi3")

    @property
    def base_url(self) -> str:
        return f"{self._served.url}/v1"

    def __enter__(self) -> StampedLocalProvider:
        self._served.__enter__()
        self.provider.base_url = self._served.url
        return self

    def __exit__(self, *exc) -> None:
        self._served.__exit__(*exc)

    async def _app(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/images/"):
            await self.provider.app(scope, receive, send)
            return
        with self._lock:
            self.arrivals.append(time.time())

        async def counted(message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                with self._lock:
                    self.replies += 1

        await self.provider.app(scope, receive, send=counted)


def write_local_config(
    directory: Path,
    *,
    base_url: str,
    db_url: str,
    data_dir: Path,
    challenges: int = 12,
    samples: int = 10,
    rate: float = 40.0,
    max_concurrency: int = 8,
    store_retry_s: float | None = None,
) -> Path:
    """arena.toml and `challenges` small text-to-image challenges (256x256) for the local provider at
    base_url, with its two text-to-image models: challenges x 2 x samples jobs."""
    challenge_dir = directory / "challenges"
    challenge_dir.mkdir(parents=True, exist_ok=True)
    for i in range(challenges):
        (challenge_dir / f"c{i:02d}.toml").write_text(
            f'slug = "c{i:02d}"\ntitle = "t"\nkind = "text-to-image"\nprompt = "a red cat {i}"\n'
            'category = "x"\nsize = "256x256"\n'
        )
    lines = [
        f'data_dir = "{data_dir}"',
        f'database_url = "{db_url}"',
        f'challenges_dir = "{challenge_dir}"',
        f"samples = {samples}",
        *([f"store_retry_s = {store_retry_s}"] if store_retry_s is not None else []),
        "",
        "[providers.local]",
        'protocol = "local"',
        f'base_url = "{base_url}"',
        f"rate_limit_per_s = {rate}",
        f"max_concurrency = {max_concurrency}",
        "timeout_s = 30",
        "",
    ]
    for model, model_id in (("prompt-card", "prompt-card"), ("palette-gradient", "palette")):
        lines += [
            f'[models."{model}"]',
            'tasks = ["text-to-image"]',
            f'[models."{model}".providers.local]',
            f'model_id = "{model_id}"',
            "price_usd = 0.01",
            "",
        ]
    path = directory / "arena.toml"
    path.write_text("\n".join(lines))
    return path

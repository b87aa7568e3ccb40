"""`arena gateway` as a user starts it: the demo config (no keys, the local provider) serving a
generation and an edit, the seed's curl edit example run verbatim, and two workers on PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from support.images import make_png
from support.processes import start_server, stop, tail
from support.servers import free_port

from arena import store
from arena.store.keys import create_key

from .kit import make_key, running_gateway

ARENA = str(Path(sys.executable).with_name("arena"))


def _start(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(
        [ARENA, "gateway", "--port", str(port), *args],
        health_url=f"{base}/health",
        log_path=tmp_path / "gateway.log",
        env={**os.environ, **(env or {})},
        cwd=tmp_path,
    )
    return proc, base


def _key(database_url: str, name: str = "cli") -> str:
    engine = store.open_engine(database_url)
    try:
        return create_key(engine, name)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_arena_gateway_with_the_demo_config(tmp_path):
    data = tmp_path / "data"
    key = _key(f"sqlite:///{data / 'arena.db'}")
    proc, base = _start(tmp_path, env={"ARENA_DATA_DIR": str(data)})
    try:
        with openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0) as client:
            made = client.images.generate(model="prompt-card", prompt="a red cat", size="256x256")
            source = tmp_path / "source.png"
            source.write_bytes(make_png(64, 64, (9, 99, 199)))
            with open(source, "rb") as f:
                edited = client.images.edit(model="night-grade", image=f, prompt="at night")
        assert made.model_extra["metadata"]["provider"] == "local"
        assert base64.b64decode(made.data[0].b64_json)[:8] == b"\x89PNG\r\n\x1a\n"
        assert edited.model_extra["metadata"]["model"] == "night-grade"
    finally:
        stop(proc)
    first = tail(tmp_path / "gateway.log").splitlines()[0]
    assert first.startswith(f"gateway on {base}/v1 (OpenAI images API; 5 models, 5 routes;")
    assert "Ctrl-C to stop" in first
    assert "Traceback" not in tail(tmp_path / "gateway.log")


@pytest.mark.slow
def test_the_seeds_curl_example_verbatim(local_settings, tmp_path):
    settings = local_settings()
    key = make_key(settings)
    (tmp_path / "source.png").write_bytes(make_png(96, 64, (120, 30, 60)))
    with running_gateway(settings) as (url, _):
        script = (
            f'curl -s -X POST {url}/v1/images/edits -H "Authorization: Bearer $KEY" '
            '-F model=identity -F image=@source.png -F prompt="Make the sky a deep night blue" '
            "-F size=1024x1024"
        )
        done = subprocess.run(
            ["sh", "-c", script],
            cwd=tmp_path,
            env={**os.environ, "KEY": key},
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert base64.b64decode(body["data"][0]["b64_json"]) == (tmp_path / "source.png").read_bytes()
    assert body["metadata"]["model"] == "identity"


@pytest.mark.slow
def test_two_gateway_workers_on_postgresql(tmp_path, postgres_url):
    config = tmp_path / "arena.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\ndatabase_url = "{postgres_url}"\n\n'
        '[providers.local]\nprotocol = "local"\n\n'
        '[models.prompt-card]\ntasks = ["text-to-image"]\n'
        '[models.prompt-card.providers.local]\nmodel_id = "prompt-card"\nprice_usd = 0.0\n'
    )
    key = _key(postgres_url)
    proc, base = _start(tmp_path, "--config", str(config), "--workers", "2")
    try:
        with openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0) as client:
            for _ in range(6):
                made = client.images.generate(model="prompt-card", prompt="blue", size="64x64")
                assert made.model_extra["metadata"]["provider"] == "local"
    finally:
        stop(proc)
    assert "1 model, 1 route" in tail(tmp_path / "gateway.log")


@pytest.mark.slow
def test_workers_above_one_need_postgresql(tmp_path):
    done = subprocess.run(
        [ARENA, "gateway", "--workers", "2", "--port", str(free_port())],
        cwd=tmp_path,
        env={**os.environ, "ARENA_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("arena: error: --workers above 1 needs a PostgreSQL")

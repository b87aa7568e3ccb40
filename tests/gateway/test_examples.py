"""The report's "use it through the API" examples, run verbatim against the real gateway: curl (a
generation and the `-F image=@source.png` edit), the openai Python SDK and the openai npm package,
each answered by the local baseline provider behind it and recorded as the key's traffic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from support.images import make_png
from support.processes import wait_until

from arena.report.examples import api_examples

from .kit import make_key, running_gateway, traffic_rows

NODE_MODULES = Path(__file__).resolve().parents[1] / "js" / "node_modules"  # scripts/test fills it


@pytest.fixture
def served(local_settings, tmp_path):
    """(settings, gateway url, key, a folder holding source.png)."""
    settings = local_settings()
    key = make_key(settings, "examples")
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "source.png").write_bytes(make_png(96, 64, (30, 140, 200)))
    with running_gateway(settings) as (url, _):
        yield settings, url, key, folder


def _run(argv: list[str], folder: Path, key: str) -> str:
    env = {**os.environ, "ARENA_API_KEY": key}
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _examples(settings, name: str, url: str) -> dict[str, str]:
    return api_examples(settings.models[name], url)


def _served_rows(settings, expected: int) -> list[dict]:
    wait_until(lambda: len(traffic_rows(settings)) >= expected, what=f"{expected} traffic rows")
    return traffic_rows(settings)


@pytest.mark.slow  # subprocesses
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_examples_run_against_the_gateway(served):
    settings, url, key, folder = served
    generated = json.loads(
        _run(["bash", "-c", _examples(settings, "prompt-card", url)["curl"]], folder, key)
    )
    assert generated["metadata"]["provider"] == "local" and generated["data"][0]["b64_json"]
    edit = _examples(settings, "identity", url)["curl_edit"]
    assert "image=@source.png" in edit
    edited = json.loads(_run(["bash", "-c", edit], folder, key))
    assert edited["metadata"]["model"] == "identity"
    rows = _served_rows(settings, 2)
    assert [(r["model"], r["task"], r["gateway_key"]) for r in rows] == [
        ("prompt-card", "text-to-image", "examples"),
        ("identity", "edit", "examples"),
    ]
    assert all(r["ok"] and r["source"] == "traffic" for r in rows)


@pytest.mark.slow  # subprocesses
def test_the_python_examples_run_against_the_gateway(served):
    settings, url, key, folder = served
    for name in ("prompt-card", "identity"):
        script = folder / "example.py"
        script.write_text(_examples(settings, name, url)["python"])
        _run([sys.executable, str(script)], folder, key)
        with Image.open(folder / "image.png") as image:
            size = image.size
        if name == "identity":  # the baseline returns the source unchanged
            assert size == (96, 64)
        (folder / "image.png").unlink()
    assert [r["model"] for r in _served_rows(settings, 2)] == ["prompt-card", "identity"]


@pytest.mark.slow  # subprocesses
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(
    not (NODE_MODULES / "openai").is_dir(),
    reason="the openai npm package is not installed (scripts/test runs npm ci --prefix tests/js)",
)
def test_the_javascript_examples_run_against_the_gateway(served):
    settings, url, key, folder = served
    (folder / "node_modules").symlink_to(NODE_MODULES)  # where node looks for "openai"
    for name in ("prompt-card", "identity"):
        script = folder / "example.mjs"
        script.write_text(_examples(settings, name, url)["javascript"])
        _run(["node", str(script)], folder, key)
        with Image.open(folder / "image.png") as image:
            size = image.size
        if name == "identity":
            assert size == (96, 64)
        (folder / "image.png").unlink()
    rows = _served_rows(settings, 2)
    assert [(r["model"], r["gateway_key"]) for r in rows] == [
        ("prompt-card", "examples"),
        ("identity", "examples"),
    ]

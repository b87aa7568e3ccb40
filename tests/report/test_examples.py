"""The model page's API examples: quoted right for any model name, shown escaped, and runnable verbatim."""

from __future__ import annotations

import ast
import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.images import make_png

from arena.config import GatewaySettings, ModelConfig
from arena.report import build_site
from arena.report.examples import EDIT_PROMPT, GENERATE_PROMPT, api_examples
from arena.report.formats import slugify

from .conftest import EVIL_MODEL, ROOT, STAMP

BOTH = ("text-to-image", "edit")
NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
)  # what a TOML key can name a model (NUL aside, which no command line can carry)


def _argv(command: str) -> list[str]:
    """A curl command as the words bash itself hands to curl (continuations, quotes and all): the
    command run with `curl` standing for a function that prints its arguments."""
    done = subprocess.run(
        ["bash", "-c", "curl() { printf '%s\\0' curl \"$@\"; }\n" + command],
        capture_output=True,
        check=True,
        env={**os.environ, "ARENA_API_KEY": "$ARENA_API_KEY"},  # the expansion reads as written
    )
    return done.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]


def _python_call(source: str) -> dict:
    """The keyword arguments of the example's images.* call and of OpenAI(...), evaluated."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in ("generate", "edit", "OpenAI"):
                found[name] = {
                    k.arg: ast.literal_eval(k.value)
                    for k in node.keywords
                    if isinstance(k.value, ast.Constant)
                }
    return found


@pytest.mark.slow  # bash reads each example
@settings(max_examples=200, deadline=None)
@given(name=NAMES, edits=st.sampled_from([("text-to-image",), ("edit",), BOTH]))
def test_every_model_name_reaches_the_request_unchanged(name, edits):
    model = ModelConfig(name=name, tasks=edits, routes=())
    examples = api_examples(model, "https://images.example.com/")
    base = "https://images.example.com/v1"
    generates = "text-to-image" in edits
    assert set(examples) == {"curl", "python", "javascript"} | (
        {"curl_edit"} if "edit" in edits else set()
    )
    if generates:
        argv = _argv(examples["curl"])
        assert argv[:2] == ["curl", f"{base}/images/generations"]
        assert "Authorization: Bearer $ARENA_API_KEY" in argv
        assert json.loads(argv[argv.index("-d") + 1]) == {
            "model": name,
            "prompt": GENERATE_PROMPT,
            "size": "1024x1024",
        }
    if "edit" in edits:
        argv = _argv(examples["curl_edit"])
        assert argv[:2] == ["curl", f"{base}/images/edits"]
        pairs = list(zip(argv[2::2], argv[3::2], strict=True))
        assert ("-F", "image=@source.png") in pairs and ("-F", f"prompt={EDIT_PROMPT}") in pairs
        assert ("-F", "size=1024x1024") in pairs
        flag = "-F" if ("-F", f"model={name}") in pairs else "--form-string"
        assert (flag, f"model={name}") in pairs
        if flag == "-F":  # curl reads -F values for files (@, <) and ;type= : none may be here
            assert ";" not in name and '"' not in name and name[0] not in "@<"
        if not generates:
            assert examples["curl"] == examples["curl_edit"]
    calls = _python_call(examples["python"])
    assert calls["OpenAI"] == {"base_url": base}
    call = calls["generate" if generates else "edit"]
    assert call["model"] == name and call["size"] == "1024x1024"
    script = examples["javascript"]
    (literal,) = re.findall(r"^  model: (.*),$", script, re.M)
    assert json.loads(literal) == name  # a JSON string is a JavaScript string literal
    assert f'baseURL: "{base}"' in script
    assert ("client.images.generate(" in script) == generates


def _blocks(page: str) -> dict[str, str]:
    """data-example -> the text of its code block, as a browser shows (and copies) it."""
    found = re.findall(
        r'<figure class="example" data-example="([^"]+)">.*?<pre><code>(.*?)</code></pre>',
        page,
        re.S,
    )
    return {key: html.unescape(text) for key, text in found}


def test_the_model_page_shows_the_examples_escaped(golden, golden_site):
    root = golden_site.out_dir
    for name in ("cartoon-filter", "prompt-card", EVIL_MODEL):
        page = (root / "models" / f"{slugify(name)}.html").read_text()
        assert "<h2>Use it through the API</h2>" in page
        expected = api_examples(golden.models[name], golden.gateway.public_url)
        if expected.get("curl_edit") == expected["curl"]:
            del expected["curl_edit"]
        assert _blocks(page) == expected
        assert "http://127.0.0.1:8800/v1" in _blocks(page)["curl"]  # the default public_url
    evil = (root / "models" / f"{slugify(EVIL_MODEL)}.html").read_text()
    assert "<script>alert" not in evil  # the name is in every example, escaped each time
    identity = _blocks((root / "models" / "identity.html").read_text())
    assert list(identity) == ["curl", "python", "javascript"]  # edit-only: its curl is the edit
    assert "-F image=@source.png" in identity["curl"] and "images.edit(" in identity["python"]


def test_public_url_comes_from_the_gateway_config(golden, tmp_path):
    configured = replace(golden, gateway=GatewaySettings(public_url="https://img.example.org"))
    result = build_site(configured, tmp_path / "site", stamp=STAMP)
    blocks = _blocks((result.out_dir / "models" / "prompt-card.html").read_text())
    assert blocks["curl"].startswith("curl https://img.example.org/v1/images/generations \\\n")
    assert 'base_url="https://img.example.org/v1"' in blocks["python"]


def test_a_site_built_without_a_config_shows_no_examples(golden, tmp_path):
    from arena import store

    engine = store.open_engine(golden.database_url)
    result = build_site(engine, tmp_path / "site", data_dir=golden.data_dir, stamp=STAMP)
    page = (result.out_dir / "models" / "cartoon-filter.html").read_text()
    assert "Use it through the API" not in page  # no config: no gateway known to serve it


# --- run verbatim ---------------------------------------------------------------------------------


@pytest.fixture
def openai_server():
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "source.png").write_bytes(make_png(64, 64, (200, 120, 40)))
    return tmp_path


KEY = "arena-test-key-0123456789"


def _run(argv, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARENA_API_KEY": KEY}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def _checked(server, path: str, model: str) -> None:
    from fake_openai import conformance_errors

    exchange = server.exchanges[-1]
    assert exchange.path == path and exchange.body["model"] == model
    assert exchange.headers["authorization"] == f"Bearer {KEY}"
    assert conformance_errors(exchange) == []  # the request as OpenAI's OpenAPI document has it


@pytest.mark.slow  # subprocesses
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_examples_run_verbatim(openai_server, workdir):
    url = openai_server.base_url.removesuffix("/v1")
    examples = api_examples(ModelConfig("gpt-image-1", BOTH, ()), url)
    for key, path in (("curl", "/images/generations"), ("curl_edit", "/images/edits")):
        reply = json.loads(_run(["bash", "-c", examples[key]], workdir).stdout)
        assert base64.b64decode(reply["data"][0]["b64_json"]).startswith(b"\x89PNG")
        _checked(openai_server, path, "gpt-image-1")
    assert openai_server.exchanges[-1].file_parts[0][:2] == ("image", "source.png")


@pytest.mark.slow  # subprocesses
def test_the_python_examples_run_verbatim(openai_server, workdir):
    url = openai_server.base_url.removesuffix("/v1")
    for tasks, path in ((BOTH, "/images/generations"), (("edit",), "/images/edits")):
        script = workdir / "example.py"
        script.write_text(api_examples(ModelConfig("gpt-image-1", tasks, ()), url)["python"])
        _run([sys.executable, str(script)], workdir)
        assert (workdir / "image.png").read_bytes().startswith(b"\x89PNG")
        _checked(openai_server, path, "gpt-image-1")
        (workdir / "image.png").unlink()


NODE_MODULES = (
    ROOT / "tests" / "js" / "node_modules"
)  # scripts/test installs the openai package there


@pytest.mark.slow  # subprocesses
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(
    not (NODE_MODULES / "openai").is_dir(),
    reason="the openai npm package is not installed (scripts/test runs npm ci --prefix tests/js)",
)
def test_the_javascript_examples_run_verbatim(openai_server, workdir):
    url = openai_server.base_url.removesuffix("/v1")
    (workdir / "node_modules").symlink_to(NODE_MODULES)  # where node looks for "openai"
    for tasks, path in ((BOTH, "/images/generations"), (("edit",), "/images/edits")):
        script = workdir / "example.mjs"
        script.write_text(api_examples(ModelConfig("gpt-image-1", tasks, ()), url)["javascript"])
        _run(["node", str(script)], workdir)
        assert (workdir / "image.png").read_bytes().startswith(b"\x89PNG")
        _checked(openai_server, path, "gpt-image-1")
        (workdir / "image.png").unlink()


@pytest.mark.slow  # subprocesses
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_javascript_examples_parse(workdir):
    for tasks in (BOTH, ("edit",)):
        script = workdir / "example.mjs"
        script.write_text(
            api_examples(ModelConfig(EVIL_MODEL, tasks, ()), "http://127.0.0.1:8800")["javascript"]
        )
        _run(["node", "--check", str(script)], workdir)

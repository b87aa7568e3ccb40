"""`params` tables on routes and challenges: refused at validation when wrong, on the wire when right."""

from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAI, conformance_errors

from arena import store
from arena.app.runs import run_benchmark
from arena.cli import main
from arena.config import load_settings
from arena.providers import protocol_facts


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI() as fake:
        yield fake


def _config(
    tmp_path, challenge_dir, *, protocol="openai", base_url="http://127.0.0.1:9/v1", params=None
):
    model = "stream" if params and params.get("stream") else "ok"
    lines = [
        f'data_dir = "{tmp_path / "data"}"',
        f'challenges_dir = "{challenge_dir}"',
        'challenges = ["t2i"]',
        "[providers.p]",
        f'protocol = "{protocol}"',
        f'base_url = "{base_url}"',
        'api_key_env = "P_KEY"',
        "rate_limit_per_s = 100",
        "timeout_s = 5",
        "[models.m]",
        'tasks = ["text-to-image"]',
        "[models.m.providers.p]",
        f'model_id = "{model}"',
        "price_usd = 0.01",
    ]
    if params is not None:
        lines.append(f"params = {params['toml']}" if "toml" in params else "")
    path = tmp_path / "arena.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _challenge_params(challenge_dir, text: str) -> None:
    path = challenge_dir / "t2i.toml"
    path.write_text(path.read_text() + f"params = {text}\n")


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("arena: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


# --- refused at validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "params", "field", "problem"),
    [
        ("xai", "{ stream = true }", "params.stream", "not supported on protocol xai"),
        ("fal", "{ partial_images = 2 }", "params.partial_images", "not supported"),
        (
            "openai",
            "{ partial_image = 2 }",
            "params.partial_image",
            "did you mean 'partial_images'",
        ),
        ("openai", '{ api_key = "sk-abc" }', "params.api_key", "credential"),
        ("openai", '{ size = "1x1" }', "params.size", "set `size` on the challenge"),
        ("openai", "{ partial_images = 9 }", "params.partial_images", "from 0 to 3"),
        ("openai", '{ stream = "yes" }', "params.stream", "true or false"),
        ("openai", "{ seed = nan }", "params.seed", "finite"),
        ("openai", '"high"', "params", "must be a table"),
    ],
)
def test_a_bad_route_param_is_one_line_naming_the_file_key_and_parameter(
    tmp_path, challenge_dir, capsys, protocol, params, field, problem
):
    cfg = _config(tmp_path, challenge_dir, protocol=protocol, params={"toml": params})
    assert main(["validate", "--config", str(cfg)]) == 2
    line = _one_error_line(capsys)
    assert f"{cfg}: models.m.providers.p.{field}: " in line and problem in line, line
    assert "sk-abc" not in line
    assert main(["run", "--config", str(cfg)]) == 2  # the same refusal, before anything is stored
    _one_error_line(capsys)
    assert not (tmp_path / "data" / "arena.db").exists()


def test_a_challenge_param_its_route_cannot_take_is_refused_naming_the_challenge_and_route(
    tmp_path, challenge_dir, capsys
):
    _challenge_params(challenge_dir, "{ stream = true }")
    cfg = _config(tmp_path, challenge_dir, protocol="xai")
    assert main(["validate", "--config", str(cfg)]) == 2
    line = _one_error_line(capsys)
    assert (
        f"{challenge_dir / 't2i.toml'}: params.stream: not supported on m@p (protocol xai)" in line
    )
    assert main(["run", "--config", str(cfg)]) == 2
    assert line in capsys.readouterr().err  # refused before a plan is stored: no run to resume
    runs = store.list_runs(
        store.open_engine(load_settings(cfg, protocols=protocol_facts()).database_url)
    )
    assert runs == []


def test_a_malformed_challenge_param_is_refused_on_its_own(tmp_path, challenge_dir, capsys):
    _challenge_params(challenge_dir, '{ prompt = "other" }')
    cfg = _config(tmp_path, challenge_dir)
    assert main(["validate", "--config", str(cfg)]) == 2
    line = _one_error_line(capsys)
    assert "t2i.toml: params.prompt: is not a request parameter" in line


# --- on the wire ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_route_and_challenge_params_reach_the_body_with_the_challenge_winning(
    tmp_path, challenge_dir, server, monkeypatch
):
    monkeypatch.setenv("P_KEY", "k-route-test")
    _challenge_params(challenge_dir, '{ quality = "high", background = "transparent" }')
    cfg = _config(
        tmp_path,
        challenge_dir,
        base_url=server.base_url,
        params={"toml": '{ quality = "low", output_format = "webp", moderation = "low" }'},
    )
    settings = load_settings(cfg, protocols=protocol_facts())
    first = len(server.exchanges)
    report = run_benchmark(settings)
    assert report.outcome.succeeded == 1
    (exchange,) = server.exchanges[first:]
    assert exchange.body["quality"] == "high"  # the challenge's, over the route's "low"
    assert exchange.body["background"] == "transparent"
    assert exchange.body["output_format"] == "webp" and exchange.body["moderation"] == "low"
    assert conformance_errors(exchange) == []
    engine = store.open_engine(settings.database_url)
    snapshot = json.loads(store.get_run(engine, report.run_id).settings_json)
    (route,) = snapshot["models"]["m"]["routes"]
    assert route["params"] == {"quality": "low", "output_format": "webp", "moderation": "low"}
    assert snapshot["challenge_params"] == {"t2i": {"quality": "high", "background": "transparent"}}
    assert "k-route-test" not in json.dumps(snapshot)


@pytest.mark.slow
def test_openai_streaming_is_reachable_from_a_route(tmp_path, challenge_dir, server, monkeypatch):
    monkeypatch.setenv("P_KEY", "k-stream-test")
    cfg = _config(
        tmp_path,
        challenge_dir,
        base_url=server.base_url,
        params={"stream": True, "toml": "{ stream = true, partial_images = 2 }"},
    )
    settings = load_settings(cfg, protocols=protocol_facts())
    first = len(server.exchanges)
    report = run_benchmark(settings)
    assert report.outcome.succeeded == 1
    (exchange,) = server.exchanges[first:]
    assert exchange.body["stream"] is True and exchange.body["partial_images"] == 2
    assert (
        exchange.streamed
        and [name for name, _ in exchange.reply].count("image_generation.partial_image") == 2
    )
    attempts = store.read_attempts(store.open_engine(settings.database_url))
    (attempt,) = attempts.itertuples()
    assert attempt.ok and attempt.first_partial_ms > 0
    assert attempt.first_partial_ms < attempt.generation_ms


def test_probe_refuses_a_challenge_param_its_route_cannot_take(tmp_path, challenge_dir, capsys):
    _challenge_params(challenge_dir, "{ partial_images = 1 }")
    cfg = _config(tmp_path, challenge_dir, protocol="bfl")
    assert main(["probe", "m@p", "--challenge", "t2i", "--config", str(cfg)]) == 2
    line = _one_error_line(capsys)
    assert "t2i.toml: params.partial_images: not supported on m@p (protocol bfl)" in line


def test_providers_lists_a_routes_params(tmp_path, challenge_dir, capsys):
    cfg = _config(tmp_path, challenge_dir, params={"toml": '{ quality = "high", seed = 7 }'})
    assert main(["providers", "--config", str(cfg)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("m ")]
    assert row.endswith("quality = 'high', seed = 7")
    assert main(["providers", "--config", str(cfg), "--json"]) == 0
    (provider,) = json.loads(capsys.readouterr().out)
    assert provider["models"][0]["params"] == {"quality": "high", "seed": 7}

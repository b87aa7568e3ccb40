"""`arena providers` and `arena probe`, through arena.cli.main with the built-in demo config."""

from __future__ import annotations

import json
import re

from arena.cli import main
from arena.config import project_root
from arena.providers.local import free_port

ASTRONAUT = project_root() / "challenges" / "images" / "astronaut.png"
XAI_CONFIG = """
[providers.xai]
protocol = "xai"
base_url = "https://api.x.ai/v1"
api_key_env = "ARENA_TEST_XAI_KEY"

[models.grok-imagine]
tasks = ["text-to-image", "edit"]
[models.grok-imagine.providers.xai]
model_id = "grok-imagine-image"
price_usd_by_tier = { "1K" = 0.02, "2K" = 0.07 }
capabilities = { aspect_ratios = ["1:1", "16:9", "9:19.5"], resolutions = ["1K", "2K"], short_side_multiple = 2 }

[models.grok-pro]
tasks = ["text-to-image"]
[models.grok-pro.providers.xai]
model_id = "grok-imagine-image-quality"
price_usd = 0.05
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- arena providers ------------------------------------------------------------------------------


def cells(out: str, first: str) -> list[str]:
    """The cells of the table row that starts with `first` (columns are 3 spaces apart)."""
    (line,) = [line for line in out.splitlines() if line.startswith(first + "  ")]
    return re.split(r"\s{2,}", line.strip())


def test_providers_lists_the_demo_provider_its_models_and_parameter_handling(capsys):
    code, out, _ = run(capsys, "providers")
    assert code == 0
    assert out.startswith("local [baseline]: protocol local")
    assert cells(out, "model")[:4] == ["model", "id", "tasks", "price"]
    for model in ("identity", "cartoon-filter", "night-grade", "prompt-card", "palette-gradient"):
        assert cells(out, model)[0] == model
    assert cells(out, "identity")[1:4] == ["identity", "edit", "free"]
    assert "prices starting from free" in out
    assert cells(out, "aspect_ratio")[:3] == ["aspect_ratio", "converted", "size"]  # WxH only
    assert cells(out, "anything else") == ["anything else", "passthrough", "sent as given"]


def test_providers_json_is_machine_readable(capsys):
    code, out, _ = run(capsys, "providers", "--json")
    assert code == 0
    (local,) = json.loads(out)
    assert local["name"] == "local" and local["baseline"] is True and local["api_key_set"] is False
    assert [m["model"] for m in local["models"]][:2] == ["identity", "cartoon-filter"]
    assert local["starting_price_usd"] == 0.0
    assert local["parameters"]["resolution"] == {
        "kind": "converted",
        "sent_as": "size",
        "note": "with aspect_ratio, to the nearest supported WxH",
    }


def test_providers_shows_capabilities_and_the_cheapest_price_but_never_the_key(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("ARENA_TEST_XAI_KEY", "xai-very-secret-value")
    config = tmp_path / "arena.toml"
    config.write_text(XAI_CONFIG)
    code, out, _ = run(capsys, "providers", "--config", str(config))
    assert code == 0
    assert "key $ARENA_TEST_XAI_KEY (set)" in out and "xai-very-secret-value" not in out
    assert "prices starting from $0.02/image" in out  # the cheapest tier of any model
    row = cells(out, "grok-imagine")
    assert row[:4] == [
        "grok-imagine",
        "grok-imagine-image",
        "text-to-image, edit",
        "from $0.02/image (1K $0.02/image, 2K $0.07/image)",
    ]
    assert row[4].startswith("ratio: aspect_ratios: 1:1, 16:9, 9:19.5; resolutions: 1K, 2K")
    assert cells(out, "size")[:3] == ["size", "converted", "aspect_ratio + resolution"]
    assert cells(out, "stream")[:2] == ["stream", "unsupported"]  # xAI answers in one reply
    _, out, _ = run(capsys, "providers", "--json", "--config", str(config))
    (xai,) = json.loads(out)
    assert [m["starting_price_usd"] for m in xai["models"]] == [0.02, 0.05]
    assert "xai-very-secret-value" not in out


def test_a_bad_capability_table_is_a_clear_error(capsys, tmp_path):
    config = tmp_path / "arena.toml"
    config.write_text(XAI_CONFIG.replace('"9:19.5"]', '"9-19.5"]'))
    code, _, err = run(capsys, "providers", "--config", str(config))
    assert code == 2
    assert "models.grok-imagine.providers.xai" in err and "capabilities.aspect_ratios" in err
    assert "'9-19.5'" in err


# --- arena probe ----------------------------------------------------------------------------------


def test_probe_runs_one_request_against_the_local_server_and_breaks_down_its_time(capsys):
    code, out, _ = run(capsys, "probe", "identity@local", "--challenge", "bald-man")
    assert code == 0
    assert out.startswith("probe identity@local with challenge bald-man (edit)")
    assert "result:  OK: 1 image, first 512x512 PNG" in out
    for label in ("ttfb:", "download:", "generation:", "queue:"):
        assert f"  {label}" in out
    assert " ms " in out.split("generation:")[1]  # a measured number, not "-"


def test_probe_json_reports_timings_that_add_up_and_can_save_the_image(capsys, tmp_path):
    saved = tmp_path / "probe.png"
    code, out, _ = run(
        capsys, "probe", "identity@local", "--challenge", "bald-man", "--json", "--out", str(saved)
    )
    assert code == 0
    result = json.loads(out)
    timings = result["timings"]
    assert result["ok"] is True and result["failure_class"] is None
    assert 0 < timings["ttfb_ms"] <= timings["generation_ms"]
    assert 0 <= timings["download_ms"] <= timings["generation_ms"]
    assert timings["queue_ms"] is None  # the local provider answers synchronously
    # The identity baseline returns the challenge's source unchanged, byte for byte.
    assert saved.read_bytes() == ASTRONAUT.read_bytes()
    assert (result["width"], result["height"]) == (512, 512)


def test_probe_sends_the_normalized_shape(capsys):
    code, out, _ = run(capsys, "probe", "prompt-card@local", "--challenge", "anime-scene", "--json")
    result = json.loads(out)
    assert code == 0
    # anime-scene asks for 16:9; the local server takes WxH, so it gets the converted size.
    assert result["sent"] == {"size": "1360x768", "aspect_ratio": None, "resolution": None}
    assert (result["width"], result["height"]) == (1360, 768) == tuple(result["expected_px"])


def test_probe_of_an_unreachable_provider_reports_the_failure_class(capsys, tmp_path):
    config = tmp_path / "arena.toml"
    config.write_text(
        f'challenges_dir = "{project_root() / "challenges"}"\n'
        f'[providers.down]\nprotocol = "openai"\nbase_url = "http://127.0.0.1:{free_port()}/v1"\n'
        '[models.m]\ntasks = ["edit"]\n[models.m.providers.down]\nprice_usd = 0.01\n'
    )
    code, out, _ = run(capsys, "probe", "m@down", "--challenge", "bald-man")
    assert code == 1
    assert "FAILED network" in out
    assert "  generation:            -" in out  # a failure has no generation time


def test_probe_names_the_known_routes_when_the_target_is_wrong(capsys):
    code, _, err = run(capsys, "probe", "identity@elsewhere", "--challenge", "bald-man")
    assert code == 2 and "no route 'identity@elsewhere'" in err and "identity@local" in err
    code, _, err = run(capsys, "probe", "prompt-card@local", "--challenge", "bald-man")
    assert code == 2 and "prompt-card does not do edit" in err
    code, _, err = run(capsys, "probe", "identity@local", "--challenge", "no-such-challenge")
    assert code == 2 and "no-such-challenge" in err

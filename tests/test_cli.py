"""The `arena` command as a user runs it: help, JSON output, exit codes, one-line errors, no secrets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import write_config

from arena.cli import build_parser, main

COMMANDS = ["demo", "run", "stats", "challenges", "validate", "local-provider", "db"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: arena {command}" in capsys.readouterr().out


def test_parser_lists_every_command():
    text = build_parser().format_help()
    assert all(c in text for c in COMMANDS)


def test_challenges_json_lists_the_shipped_challenges(capsys):
    assert main(["challenges", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    slugs = {c["slug"] for c in data}
    assert {"bald-man", "outfit-transfer", "anime-scene"} <= slugs
    outfit = next(c for c in data if c["slug"] == "outfit-transfer")
    assert outfit["kind"] == "edit" and len(outfit["source_images"]) == 2


def test_validate_reports_counts(capsys):
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "config OK: <built-in demo config>" in out and "challenges OK: 12" in out


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[providers.x]\nprotocol = 'nope'\n")
    assert main(["validate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and err.startswith("arena: error:") and "providers.x.protocol" in err
    )


def test_bad_window_and_unknown_resume_are_clear_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "d"))
    assert main(["stats", "--window", "fortnight"]) == 2
    assert "--window: 'fortnight'" in capsys.readouterr().err
    assert main(["run", "--resume", "last"]) == 2
    assert "no run to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_subset_then_stats_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("ARENA_DEMO_CHALLENGES", "bald-man,vintage-cafe-logo")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "completed; 5 attempts, 5 succeeded" in out and "identity: fastest through local" in out
    assert str(tmp_path / "d" / "arena.db") in out
    # the checks that need no model ran on the demo's outputs: the identity edit is unchanged
    assert "checks:  checked 5 outputs of run " in out and "unchanged 1 of 3 flagged" in out
    assert "run `arena serve`" in out  # how to vote ...
    assert (
        "run `arena gateway`" in out and "http://127.0.0.1:8800/v1" in out
    )  # ... and call the API
    assert main(["stats", "--json", "--window", "1h"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in rows} == {
        "identity",
        "cartoon-filter",
        "night-grade",
        "prompt-card",
        "palette-gradient",
    }
    for row in rows:
        assert {
            "model",
            "provider",
            "n",
            "success_rate",
            "p50_ms",
            "p95_ms",
            "ttfb_p50_ms",
            "failures",
        } <= set(row)
        assert row["n"] == 1 and row["success_rate"] == 1.0 and row["p50_ms"] > 0
        assert set(row["failures"]) >= {"timeout", "rate_limited", "refused", "invalid_image"}
    assert main(["stats", "--model", "identity", "--json"]) == 0
    assert [r["model"] for r in json.loads(capsys.readouterr().out)] == ["identity"]


def test_api_key_never_reaches_db_output_or_files(
    tmp_path, fault_server, challenge_dir, monkeypatch, capsys
):
    secret = "sk-live-SECRET-do-not-leak-1234567890"
    monkeypatch.setenv("FAULTY_KEY", secret)
    cfg = write_config(
        tmp_path / "arena.toml",
        base_url=fault_server.base_url,
        models={
            "refuse": ["text-to-image"],
            "echo-auth": ["text-to-image", "edit"],
            "ok": ["edit"],
        },
        challenges_dir=challenge_dir,
        db_url=f"sqlite:///{tmp_path / 'data' / 'arena.db'}",
        data_dir=tmp_path / "data",
    )
    cfg.write_text(
        cfg.read_text().replace(
            'protocol = "openai"', 'protocol = "openai"\napi_key_env = "FAULTY_KEY"'
        )
    )
    assert main(["run", "--config", str(cfg)]) == 0
    assert main(["stats", "--config", str(cfg), "--json"]) == 0
    captured = capsys.readouterr()
    assert '"auth": 2' in captured.out  # the echoing provider's replies were recorded
    assert secret not in captured.out + captured.err
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow  # a subprocess
def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "arena.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("arena ")


@pytest.mark.slow  # a subprocess
def test_python_dash_m_arena_is_the_same_command_line(tmp_path):
    from arena import __version__

    done = subprocess.run(
        [sys.executable, "-m", "arena", "--version"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"arena {__version__}"
    bad = subprocess.run(
        [sys.executable, "-m", "arena", "ratings", "--rounds", "x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "--rounds" in bad.stderr

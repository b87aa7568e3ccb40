"""`arena keys` as an operator runs it: create prints the key once, list never shows it or its hash,
revoke; bad input is one line and exit 2; on SQLite and PostgreSQL, from $ARENA_DATABASE_URL or --config."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import write_config
from support.scan import database_dump

from arena import store
from arena.cli import main
from arena.gateway.auth import KeyRing
from arena.gateway.replies import GatewayError
from arena.store.keys import hash_key, list_keys

ROOT = Path(__file__).resolve().parent.parent
KEY = re.compile(r"^arena-[A-Za-z0-9_-]{43}$", re.MULTILINE)


def arena(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arena", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=120,
    )


@pytest.mark.slow  # subprocesses
def test_create_list_revoke_end_to_end(db_url, tmp_path):
    env = {"ARENA_DATABASE_URL": db_url, "ARENA_DATA_DIR": str(tmp_path / "data")}
    made = arena("keys", "create", "my-app", "--budget-usd", "2.5", "--rate-per-min", "30", env=env)
    assert made.returncode == 0, made.stderr
    key = KEY.search(made.stdout).group(0)
    assert "created key 'my-app' (budget $2.5, 30 requests/min)" in made.stdout
    assert "not shown again" in made.stdout
    assert "Authorization: Bearer <key>" in made.stdout and "OPENAI_API_KEY" in made.stdout

    engine = store.open_engine(db_url)  # a gateway process uses the key and is charged
    try:

        async def use():
            ring = KeyRing(engine)
            ring.charge(await ring.authorize(f"Bearer {key}", expected_cost_usd=0.5), 0.75)
            await ring.aclose()

        asyncio.run(use())
    finally:
        engine.dispose()

    listed = arena("keys", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "name",
        "prefix",
        "created",
        "(UTC)",
        "budget",
        "spent",
        "requests",
        "rate/min",
        "last",
        "used",
        "(UTC)",
        "revoked",
    ]
    cells = lines[2].split()
    assert cells[0] == "my-app" and cells[1] == key[:10] + "..."
    assert "$2.50" in cells and "$0.7500" in cells and "30" in cells and cells[-1] == "no"
    as_json = json.loads(arena("keys", "list", "--json", env=env).stdout)
    assert as_json[0]["spent_usd"] == 0.75 and as_json[0]["requests"] == 1
    for shown in (listed.stdout, json.dumps(as_json)):
        assert key not in shown and key[10:] not in shown and hash_key(key) not in shown

    revoked = arena("keys", "revoke", "my-app", env=env)
    assert revoked.returncode == 0 and "revoked key 'my-app'" in revoked.stdout
    after = arena("keys", "list", "--json", env=env)
    assert json.loads(after.stdout)[0]["revoked_at"]

    engine = store.open_engine(db_url)
    try:

        async def refused():
            ring = KeyRing(engine)
            try:
                await ring.authorize(f"Bearer {key}")
            except GatewayError as exc:
                return exc
            finally:
                await ring.aclose()

        assert asyncio.run(refused()).status == 401
    finally:
        engine.dispose()
    dump = database_dump(db_url)
    assert hash_key(key) in dump and key[10:] not in dump


@pytest.mark.slow  # a subprocess
def test_config_names_the_database(db_url, tmp_path, challenge_dir):
    config = write_config(
        tmp_path / "arena.toml",
        base_url="http://127.0.0.1:9/v1",
        models={"m": ["text-to-image"]},
        challenges_dir=challenge_dir,
        db_url=db_url,
        data_dir=tmp_path / "d",
    )
    made = arena("keys", "create", "ci", "--config", str(config), env={})
    assert made.returncode == 0, made.stderr
    engine = store.open_engine(db_url)
    try:
        assert [r.name for r in list_keys(engine)] == ["ci"]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["keys", "create", "bad name"], "key name 'bad name'"),
        (["keys", "create", "-x"], "the following arguments are required: NAME"),
        (["keys", "create", "a", "--budget-usd", "-1"], "--budget-usd: '-1' must be"),
        (["keys", "create", "a", "--budget-usd", "nan"], "--budget-usd: 'nan' must be"),
        (["keys", "create", "a", "--rate-per-min", "0"], "--rate-per-min: must be 1 or more"),
        (["keys", "create", "dup"], "a key named 'dup' exists already"),
        (["keys", "revoke", "nobody"], "no key named 'nobody'"),
        (["keys", "revoke", "gone"], "key 'gone' is revoked already"),
        (["keys"], "the following arguments are required: KEYS_COMMAND"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(db_url, monkeypatch, capsys, argv, says):
    monkeypatch.setenv("ARENA_DATABASE_URL", db_url)
    assert main(["keys", "create", "dup"]) == 0
    assert main(["keys", "create", "gone"]) == 0
    assert main(["keys", "revoke", "gone"]) == 0
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # the parser's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("arena: error:") and says in err, err


def test_an_empty_list_says_how_to_make_a_key(db_url, monkeypatch, capsys):
    monkeypatch.setenv("ARENA_DATABASE_URL", db_url)
    assert main(["keys", "list"]) == 0
    assert "no gateway keys yet: `arena keys create NAME`" in capsys.readouterr().out

"""No key leaks: after a gateway served successes, fallbacks past a provider that quotes its key
back, refusals of bad, revoked and missing keys, dry runs and the model pages, neither a gateway
key nor a provider key is in any reply (body or header), log record, database row or file."""

from __future__ import annotations

import logging
import secrets

import httpx
from support.processes import wait_until
from support.scan import database_dump

from arena import store
from arena.store.keys import revoke_key

from .kit import (
    gateway_settings,
    make_key,
    running_gateway,
    traffic_rows,
)


def test_no_key_reaches_a_reply_a_log_the_store_or_a_file(
    tmp_path, db_url, fault_server, monkeypatch, caplog
):
    careless_key = "sk-careless-" + secrets.token_hex(16)
    fine_key = "sk-fine-" + secrets.token_hex(16)
    monkeypatch.setenv("ARENA_TEST_CARELESS_KEY", careless_key)
    monkeypatch.setenv("ARENA_TEST_FINE_KEY", fine_key)
    settings = gateway_settings(
        tmp_path,
        db_url,
        providers={
            "careless": {
                "protocol": "openai",
                "base_url": fault_server.base_url,
                "api_key_env": "ARENA_TEST_CARELESS_KEY",
            },
            "fine": {
                "protocol": "openai",
                "base_url": fault_server.base_url,
                "api_key_env": "ARENA_TEST_FINE_KEY",
            },
        },
        models={
            "echo": {
                "tasks": ["text-to-image"],
                "routes": {"careless": "echo-auth", "fine": "ok"},
            },
            "leaky": {"tasks": ["text-to-image"], "routes": {"careless": "echo-auth"}},
        },
        gateway={"keep_outputs": True},
    )
    key = make_key(settings, "app")
    revoked = make_key(settings, "gone")
    engine = store.open_engine(settings.database_url)
    revoke_key(engine, "gone")
    engine.dispose()
    caplog.set_level(logging.DEBUG)
    with running_gateway(settings) as (url, recorder):
        with httpx.Client(base_url=url, timeout=60) as client:

            def post(bearer: str | None, body: dict, query: str = "") -> httpx.Response:
                headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
                return client.post(f"/v1/images/generations{query}", json=body, headers=headers)

            served = post(key, {"model": "echo", "prompt": "a kite"})
            assert served.status_code == 200  # the careless route failed (auth), fine served
            assert [a["failure_class"] for a in served.json()["metadata"]["attempts"]] == [
                "auth",
                None,
            ]
            leaked = post(key, {"model": "leaky", "prompt": "a kite"})
            assert leaked.status_code == 503
            assert post(key, {"model": "echo", "prompt": "a kite"}, "?dry_run=true").is_success
            assert post(None, {"model": "echo", "prompt": "x"}).status_code == 401
            assert post(key + "x", {"model": "echo", "prompt": "x"}).status_code == 401
            wait_until(  # the revoke is known once the key cache has read it
                lambda: post(revoked, {"model": "echo", "prompt": "x"}).status_code == 401,
                what="the revoked key refused",
            )
            assert post(key, {"model": "echo", "prompt": ""}).status_code == 400
            assert client.get("/v1/models/echo").status_code == 200
            assert client.get("/v1/models").status_code == 200
        wait_until(lambda: len(traffic_rows(settings)) >= 3, what="the traffic rows")
    secrets_ = {
        "gateway key": key,
        "revoked key": revoked,
        "careless": careless_key,
        "fine": fine_key,
    }
    replies = "\n".join(
        f"{e.status} {e.headers} {e.reply.decode('latin-1')}" for e in recorder.exchanges
    )
    errors = [r["error"] for r in traffic_rows(settings) if r["failure_class"] == "auth"]
    # the careless provider's words are kept, naming the variable, the key it quoted redacted
    assert errors and all("$ARENA_TEST_CARELESS_KEY" in e and "Bearer ***" in e for e in errors)
    logs = "\n".join(
        f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    )
    dump = database_dump(settings.database_url)
    files = "\n".join(
        path.read_bytes().decode("latin-1")
        for path in settings.data_dir.rglob("*")
        if path.is_file()
    )
    for what, secret in secrets_.items():
        for where, text in (
            ("a reply", replies),
            ("a log", logs),
            ("the store", dump),
            ("a file", files),
        ):
            assert secret not in text, f"the {what} is in {where}"

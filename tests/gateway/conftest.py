"""Fixtures of the gateway tests: a config on the local baseline provider (started by the gateway's
own lifespan) and on loopback fakes, the gateway served by uvicorn, and a key for it."""

from __future__ import annotations

import pytest
from fake_openai import FakeOpenAI

from .kit import make_key, running_gateway, settings_from, write_gateway_config

LOCAL_MODELS = {
    "identity": {"tasks": ["edit"], "routes": {"local": "identity"}},
    "prompt-card": {"tasks": ["text-to-image"], "routes": {"local": "prompt-card"}},
}


@pytest.fixture
def local_settings(tmp_path, db_url):
    """The local baseline provider (no base_url: the gateway starts it), on SQLite and PostgreSQL;
    url replies point at the gateway the `gateway` fixture starts."""

    def build(**gateway):
        path = write_gateway_config(
            tmp_path / "arena.toml",
            db_url=db_url,
            data_dir=tmp_path / "data",
            providers={"local": {"protocol": "local"}},
            models=LOCAL_MODELS,
            gateway=gateway or None,
        )
        return settings_from(path)

    return build


@pytest.fixture
def gateway(local_settings):
    """The gateway on the local provider, served on loopback: (base url, recorder, settings, key)."""
    settings = local_settings()
    key = make_key(settings)
    with running_gateway(settings) as (url, recorder):
        yield url, recorder, settings, key


@pytest.fixture
def fake_upstream():
    """A loopback server speaking OpenAI's images API, recording what reached it."""
    with FakeOpenAI() as fake:
        yield fake

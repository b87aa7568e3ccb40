"""The workers' fixtures: the upstream's key in this process's environment (planning checks it)."""

from __future__ import annotations

import pytest

from .kit import KEY, KEY_ENV


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)

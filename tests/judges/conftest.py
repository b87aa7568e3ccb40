"""One loopback judge for the session; each test gets it reset."""

from __future__ import annotations

import pytest

from .fake_judge import FakeJudge


@pytest.fixture(scope="session")
def _judge_server():
    with FakeJudge() as server:
        yield server


@pytest.fixture
def judge_server(_judge_server):
    _judge_server.reset()
    yield _judge_server
    _judge_server.reset()

"""One loopback server per provider protocol for the session; each test gets it reset to success."""

from __future__ import annotations

import pytest
from support.servers import serve_in_thread

from .fake_bfl import FakeBFL
from .fake_fal import FakeFal
from .fake_gemini import FakeGemini
from .fake_replicate import FakeReplicate
from .fake_xai import FakeXAI


def _serve(fake_class):
    @pytest.fixture(scope="session")
    def server():
        fake = fake_class()
        name = f"fake-{fake_class.__name__}"
        with serve_in_thread(fake.app(), name=name, log_level="critical", lifespan="off") as served:
            fake.base = served.url
            yield fake

    return server


_xai_server = _serve(FakeXAI)
_fal_server = _serve(FakeFal)
_bfl_server = _serve(FakeBFL)
_replicate_server = _serve(FakeReplicate)
_gemini_server = _serve(FakeGemini)


@pytest.fixture
def xai(_xai_server):
    _xai_server.reset()
    return _xai_server


@pytest.fixture
def fal(_fal_server):
    _fal_server.reset()
    return _fal_server


@pytest.fixture
def bfl(_bfl_server):
    _bfl_server.reset()
    return _bfl_server


@pytest.fixture
def replicate(_replicate_server):
    _replicate_server.reset()
    return _replicate_server


@pytest.fixture
def gemini(_gemini_server):
    _gemini_server.reset()
    return _gemini_server

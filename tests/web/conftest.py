"""Fixtures of the web tests: a store with outputs, an app on it, and voters with their own sessions."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from arena.web import create_app

from .factory import TEST_OPTIONS, fill_store, settings_for, write_challenges


@pytest.fixture
def web_settings(tmp_path, db_url):
    """Settings on a fresh database (SQLite, and PostgreSQL when configured) filled with telling outputs."""
    challenges = write_challenges(tmp_path / "challenges")
    settings = settings_for(tmp_path, db_url, challenges)
    fill_store(settings)
    return settings


@pytest.fixture
def make_app(web_settings):
    """create_app on web_settings with test options, overridable per test."""

    def build(**changes):
        return create_app(web_settings, replace(TEST_OPTIONS, **changes))

    return build


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory):
    """The demo's own store (local baseline models, three shipped challenges) with derivatives made, built once."""
    from arena.app.runs import run_benchmark
    from arena.config import demo_settings
    from arena.providers import protocol_facts

    root = tmp_path_factory.mktemp("demo")
    settings = replace(
        demo_settings(protocol_facts()),
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'data' / 'arena.db'}",
        challenges=("bald-man", "vintage-cafe-logo", "night-sky"),
        samples=2,
    )
    run_benchmark(settings)
    create_app(settings, replace(TEST_OPTIONS))  # makes the derivatives once
    return settings


@pytest.fixture
def demo_settings_copy(demo_template, tmp_path):
    """A private copy of the demo store for one test."""
    data = tmp_path / "demo-data"
    shutil.copytree(demo_template.data_dir, data)
    return replace(demo_template, data_dir=data, database_url=f"sqlite:///{data / 'arena.db'}")

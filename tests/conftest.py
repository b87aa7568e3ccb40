"""Shared fixtures: databases (SQLite always, PostgreSQL when ARENA_TEST_POSTGRES_URL is set), settings, servers."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

POSTGRES_URL = os.environ.get("ARENA_TEST_POSTGRES_URL")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's config, data dir or database."""
    for name in ("ARENA_CONFIG", "ARENA_DATA_DIR", "ARENA_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _postgres_schema_url() -> tuple[str, str]:
    schema = f"t_{secrets.token_hex(6)}"
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", schema


def _drop_schema(schema: str) -> None:
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, and a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'arena.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL variant: set ARENA_TEST_POSTGRES_URL (CI sets it)")
    url, schema = _postgres_schema_url()
    yield url
    _drop_schema(schema)


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL schema, for tests of what only PostgreSQL has (skipped, and reported, without it)."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL only: set ARENA_TEST_POSTGRES_URL (CI sets it)")
    url, schema = _postgres_schema_url()
    yield url
    _drop_schema(schema)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'arena.db'}"


@pytest.fixture
def fault_server():
    from faultserver import FaultServer

    with FaultServer() as server:
        yield server


@pytest.fixture
def challenge_dir(tmp_path):
    """A small challenge set: one text-to-image and one edit."""
    from support.images import make_png

    directory = tmp_path / "challenges"
    (directory / "images").mkdir(parents=True)
    (directory / "images" / "face.png").write_bytes(make_png(40, 40, (90, 80, 70)))
    (directory / "t2i.toml").write_text(
        'slug = "t2i"\ntitle = "A cat"\nkind = "text-to-image"\nprompt = "a cat on a mat"\ncategory = "photo"\n'
    )
    (directory / "edit.toml").write_text(
        'slug = "edit"\ntitle = "Hair"\nkind = "edit"\nprompt = "give the person hair"\ncategory = "portrait"\n'
        'source_images = ["images/face.png"]\n'
    )
    return directory


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The fallback spill's temp dir, inside the test's own folder."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory

"""Schema migrations: a database made before migrations is upgraded with every row kept; a fresh one
matches the models; a newer one is refused; concurrent openers do not race; `arena db`."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel
from support.store import read_jobs

from arena import store
from arena.cli import main
from arena.errors import StoreError
from arena.store import migrations

DATA = Path(__file__).resolve().parent.parent / "data"
T0 = datetime(2026, 11, 20, 12, 30, 15, 250000, tzinfo=UTC)
T1 = datetime(2026, 11, 20, 12, 31, 0, 125000, tzinfo=UTC)

# one row (or two) in every table, as arena wrote them before migrations
ROWS = {
    "runs": [
        {
            "id": "20261120-123015-ab12",
            "created_at": T0,
            "finished_at": T1,
            "status": "completed",
            "config_source": "arena.toml",
            "settings_json": '{"models": ["m1", "m2"]}',
            "max_cost_usd": 2.5,
            "samples": 1,
            "jobs_total": 2,
        }
    ],
    "jobs": [
        {
            "id": 7,
            "run_id": "20261120-123015-ab12",
            "challenge": "bald-man",
            "task": "edit",
            "category": "portrait",
            "model": model,
            "provider": "local",
            "model_id": model + "-id",
            "sample": 0,
            "status": "done",
            "outcome": "success",
            "attempts": 1,
            "expected_cost_usd": 0.01,
            "cost_usd": 0.01,
            "image_sha256": sha * 64,
            "finished_at": T1,
        }
        for model, sha in (("m1", "a"),)
    ]
    + [
        {
            "id": 8,
            "run_id": "20261120-123015-ab12",
            "challenge": "bald-man",
            "task": "edit",
            "category": "portrait",
            "model": "m2",
            "provider": "local",
            "model_id": "m2-id",
            "sample": 0,
            "status": "done",
            "outcome": "timeout",
            "attempts": 2,
            "expected_cost_usd": 0.02,
            "cost_usd": None,
            "image_sha256": None,
            "finished_at": T1,
        }
    ],
    "attempts": [
        {
            "id": 11,
            "run_id": "20261120-123015-ab12",
            "job_id": 7,
            "attempt": 1,
            "warmup": False,
            "challenge": "bald-man",
            "task": "edit",
            "category": "portrait",
            "model": "m1",
            "provider": "local",
            "started_at": T0,
            "ok": True,
            "failure_class": None,
            "status_code": 200,
            "error": None,
            "generation_ms": 812.5,
            "ttfb_ms": 640.25,
            "download_ms": 12.0,
            "queue_ms": None,
            "processing_ms": None,
            "first_partial_ms": None,
            "limiter_wait_ms": 0.5,
            "retry_after_s": None,
            "cost_usd": 0.01,
            "image_sha256": "a" * 64,
            "width": 1024,
            "height": 768,
            "format": "png",
            "served_by": "local-1",
            "request_id": "req-1",
        },
        {
            "id": 12,
            "run_id": "20261120-123015-ab12",
            "job_id": 8,
            "attempt": 1,
            "warmup": False,
            "challenge": "bald-man",
            "task": "edit",
            "category": "portrait",
            "model": "m2",
            "provider": "local",
            "started_at": T1,
            "ok": False,
            "failure_class": "timeout",
            "status_code": None,
            "error": "no reply in 30 s",
            "generation_ms": None,
            "ttfb_ms": None,
            "download_ms": None,
            "queue_ms": 5.0,
            "processing_ms": 7.0,
            "first_partial_ms": 3.0,
            "limiter_wait_ms": 0.0,
            "retry_after_s": 2.0,
            "cost_usd": None,
            "image_sha256": None,
            "width": None,
            "height": None,
            "format": None,
            "served_by": None,
            "request_id": None,
        },
    ],
    "images": [
        {
            "sha256": "a" * 64,
            "path": "images/aa/" + "a" * 64 + ".png",
            "format": "png",
            "width": 1024,
            "height": 768,
            "size_bytes": 123456,
            "created_at": T0,
        }
    ],
    "votes": [
        {
            "id": 3,
            "battle_id": "b" * 32,
            "created_at": T1,
            "challenge": "bald-man",
            "task": "edit",
            "category": "portrait",
            "model_left": "m1",
            "model_right": "m2",
            "provider_left": "local",
            "provider_right": "local",
            "image_left": "a" * 64,
            "image_right": "c" * 64,
            "outcome": "left",
            "voter": "v" * 64,
            "ip_hash": "i" * 64,
            "dwell_ms": 4200.5,
            "flagged": True,
            "flag_reason": "burst",
        }
    ],
    "derivatives": [
        {
            "original_sha256": "a" * 64,
            "box": "768x432",
            "sha256": "d" * 64,
            "path": "derivatives/dd/" + "d" * 64 + ".webp",
            "width": 576,
            "height": 432,
            "size_bytes": 23456,
            "created_at": T0,
        }
    ],
    "battles": [
        {
            "id": "b" * 32,
            "session": "v" * 64,
            "challenge": "bald-man",
            "task": "edit",
            "category": "portrait",
            "model_left": "m1",
            "provider_left": "local",
            "image_left": "a" * 64,
            "view_left": "d" * 64,
            "model_right": "m2",
            "provider_right": "local",
            "image_right": "c" * 64,
            "view_right": "e" * 64,
            "view_source": None,
            "issued_at": T0,
            "expires_at": T1,
            "weights_json": '{"m1": 0.5}',
            "ip_hash": "i" * 64,
            "user_agent": "test-agent/1",
        }
    ],
    "battle_sides": [
        {
            "challenge": "bald-man",
            "model_a": "m1",
            "model_b": "m2",
            "issued": 3,
            "a_left": 2,
            "last_a_left": 1,
        }
    ],
}

# databases create_all made before migrations: today's schema, and the older shapes it had (columns
# never changed; tables were added, and the voting indexes replaced one)
VARIANTS = {
    "today": [],
    # before the voting indexes: battles indexed by (session) alone, votes not by voter
    "before-voting-indexes": [
        "DROP INDEX ix_battles_session_issued",
        "DROP INDEX ix_votes_voter_created",
        "CREATE INDEX ix_battles_session ON battles (session)",
    ],
    # from before the voting server: votes (imported) but no battles
    "before-voting-tables": [
        "DROP TABLE battle_sides",
        "DROP TABLE battles",
        "DROP TABLE derivatives",
    ],
    # the first store: benchmark tables only
    "benchmark-only": [
        "DROP TABLE battle_sides",
        "DROP TABLE battles",
        "DROP TABLE derivatives",
        "DROP TABLE votes",
    ],
}


def _plain_engine(url: str) -> sa.Engine:
    return sa.create_engine(store.engine_url(url))


def _dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def _statements(sql: str) -> list[str]:
    text = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def make_v0_database(url: str, variant: str) -> dict[str, list[dict]]:
    """A database as create_all made it before migrations, from the frozen DDL, with ROWS in it;
    returns what each table holds, read back before any upgrade."""
    ddl = (DATA / f"schema-v0-{_dialect(url)}.sql").read_text()
    engine = _plain_engine(url)
    try:
        with engine.begin() as conn:
            for statement in _statements(ddl) + VARIANTS[variant]:
                conn.exec_driver_sql(statement)
        meta = sa.MetaData()
        meta.reflect(engine)  # the v0 tables as they are, not as today's models say
        with engine.begin() as conn:
            for name in [t.name for t in meta.sorted_tables]:
                conn.execute(meta.tables[name].insert(), ROWS[name])
        return _contents(engine, meta)
    finally:
        engine.dispose()


def _contents(engine: sa.Engine, meta: sa.MetaData) -> dict[str, list[dict]]:
    """Every row of the tables in `meta` (only their columns), in primary-key order."""
    out = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            current = sa.Table(table.name, sa.MetaData(), autoload_with=conn)
            columns = [current.c[c.name] for c in table.columns]
            keys = [current.c[c.name] for c in table.primary_key.columns]
            rows = conn.execute(sa.select(*columns).order_by(*keys))
            out[table.name] = [dict(r._mapping) for r in rows]
    return out


HEAD = migrations.head_revision()


def _indexes(engine: sa.Engine, table: str) -> set[str]:
    return {ix["name"] for ix in sa.inspect(engine).get_indexes(table)}


def _schema_diff(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)


def _version(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_database_made_before_migrations_is_upgraded_with_every_row(db_url, variant, caplog):
    before = make_v0_database(db_url, variant)
    dropped = {s.split()[-1] for s in VARIANTS[variant] if s.startswith("DROP TABLE")}
    assert set(before) == set(ROWS) - dropped and all(before.values())

    with caplog.at_level(logging.WARNING, logger="arena.store"):
        engine = store.open_engine(db_url)
    try:
        said = [r.getMessage() for r in caplog.records if r.name == "arena.store"]
        assert len(said) == 1 and f"from none (made before migrations) to {HEAD}" in said[0]
        assert said[0].startswith("arena: upgraded the database at ")
        assert _version(engine) == migrations.head_revision()

        meta = sa.MetaData()
        meta.reflect(engine, only=list(before))
        after = _contents(engine, meta)
        old = {
            name: [{k: row[k] for k in rows[0]} for row in after[name]]
            for name, rows in before.items()
        }
        assert old == before  # every row, every value
        added = {k for rows in after.values() for k in rows[0]} - {
            k for rows in before.values() for k in rows[0]
        }
        # a column added since is empty on old rows, but for the attempts' source and the votes'
        # voter kind: they were all the harness's and all human
        filled = {"source": "benchmark", "voter_kind": "human"}
        assert all(
            row[k] == filled.get(k)
            for rows in after.values()
            for row in rows
            for k in added & set(row)
        )
        if "attempts" in after:
            assert {row["source"] for row in after["attempts"]} == {"benchmark"}
        for name, rows in ROWS.items():  # ... and they are the rows written
            if name in before:
                assert [{k: before[name][i][k] for k in row} for i, row in enumerate(rows)] == [
                    {k: _comparable(v, db_url) for k, v in row.items()} for row in rows
                ]

        assert "ix_battles_session_issued" in _indexes(engine, "battles")
        assert "ix_battles_session" not in _indexes(engine, "battles")
        assert "ix_votes_voter_created" in _indexes(engine, "votes")
        assert (
            _schema_diff(engine) == []
        )  # the tables a variant lacked were created as the models say

        run = store.get_run(engine, "20261120-123015-ab12")
        assert run.status == "completed" and run.max_cost_usd == 2.5
        votes = store.read_votes(engine)
        if "votes" in before:
            assert list(votes["outcome"]) == ["left"] and bool(votes["flagged"].iloc[0])
        else:
            assert votes.empty
        assert sorted(read_jobs(engine)["outcome"]) == ["success", "timeout"]
    finally:
        engine.dispose()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arena.store"):
        store.open_engine(db_url).dispose()  # said once: the second open has nothing to do
    assert not [r for r in caplog.records if r.name == "arena.store"]


def _comparable(value, url):
    """A written value as the database reads it back (SQLite keeps no time zone)."""
    if isinstance(value, datetime) and url.startswith("sqlite"):
        return value.replace(tzinfo=None)
    return value


def test_a_fresh_database_is_upgraded_to_head_and_matches_the_models(db_url, caplog):
    with caplog.at_level(logging.WARNING, logger="arena.store"):
        engine = store.open_engine(db_url)
    try:
        assert _version(engine) == migrations.head_revision()
        assert _schema_diff(engine) == []  # a model changed without a migration fails here
        assert not [r for r in caplog.records if r.name == "arena.store"]  # nothing to tell
        assert migrations.schema_state(engine).status == "up to date"
    finally:
        engine.dispose()


def test_the_schema_diff_sees_a_model_the_migrations_lack(db_url):
    engine = store.open_engine(db_url)
    extra = sa.Column("not_migrated", sa.Integer())
    table = SQLModel.metadata.tables["runs"]
    table.append_column(extra)
    try:
        diff = _schema_diff(engine)
    finally:
        table._columns.remove(extra)
        engine.dispose()
    assert [d[0] for d in diff] == ["add_column"] and diff[0][3].name == "not_migrated"


def test_a_database_newer_than_the_code_is_refused_in_one_line(db_url):
    store.open_engine(db_url).dispose()
    engine = _plain_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    engine.dispose()
    with pytest.raises(StoreError) as info:
        store.open_engine(db_url)
    message = str(info.value)
    assert "\n" not in message and "ffff9999" in message and "newer arena" in message
    assert HEAD in message


def test_concurrent_openers_of_an_older_database_upgrade_it_once(db_url):
    make_v0_database(db_url, "before-voting-indexes")
    openers = 4
    barrier = threading.Barrier(openers)
    errors: list[BaseException] = []

    def open_it():
        try:
            barrier.wait()
            store.open_engine(db_url).dispose()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(openers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = _plain_engine(db_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(migrations.head_revision(),)]
        assert "ix_battles_session" not in _indexes(engine, "battles")
    finally:
        engine.dispose()


def test_reading_without_create_leaves_the_schema_alone(db_url):
    make_v0_database(db_url, "today")
    store.open_engine(db_url, create=False).dispose()
    engine = _plain_engine(db_url)
    try:
        assert "alembic_version" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


# --- arena db -----------------------------------------------------------------------------------


@pytest.fixture
def db_env(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("ARENA_DATABASE_URL", db_url)
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "data"))
    return db_url


def test_arena_db_current_and_upgrade_on_a_database_made_before_migrations(db_env, capsys):
    make_v0_database(db_env, "before-voting-indexes")
    assert main(["db", "current"]) == 0
    out = capsys.readouterr().out
    assert "revision: none (made before migrations), behind" in out
    assert f"newest is {HEAD}" in out

    assert main(["db", "upgrade"]) == 0
    assert f"upgraded from none (made before migrations) to {HEAD}" in capsys.readouterr().out
    engine = _plain_engine(db_env)
    try:
        assert _version(engine) == HEAD
        assert "ix_battles_session" not in _indexes(engine, "battles")
    finally:
        engine.dispose()

    assert main(["db", "upgrade"]) == 0
    assert f"already at {HEAD} (up to date)" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert f"revision: {HEAD}, up to date" in capsys.readouterr().out


def test_arena_db_on_an_empty_and_on_a_newer_database(db_env, capsys):
    assert main(["db", "current"]) == 0
    assert "revision: none (empty), behind" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"upgraded from none (empty) to {HEAD}" in capsys.readouterr().out

    engine = _plain_engine(db_env)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    engine.dispose()
    assert main(["db", "current"]) == 0
    assert "revision: ffff9999, newer" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arena: error:") and "\n" not in err and "ffff9999" in err


def test_arena_db_history_lists_every_revision_with_its_message(capsys):
    assert main(["db", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [r.id for r in migrations.revisions()]
    assert lines[0].startswith("0001  arena's tables as create_all made them")
    assert lines[-1].endswith("(head)")

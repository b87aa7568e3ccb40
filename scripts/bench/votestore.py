"""A synthetic vote table in PostgreSQL for the benchmarks: a database of its own, votes loaded by COPY.

The votes are drawn from a Bradley–Terry model as the in-memory ratings case draws them, with
every column of the real table filled (battle ids, image hashes, IP hashes, voters, times), so
the table is as wide as a real one (~430 bytes a vote). Loading 10M votes: the compact draws go
to an UNLOGGED staging table by binary COPY, one INSERT ... SELECT writes the votes, and the
indexes (dropped first) are built again afterwards, each exactly as the migrations made it.
About 3 minutes for 10M votes on two cores.
"""

from __future__ import annotations

import time

import numpy as np
import psycopg
from scipy.special import expit

PROVIDERS = ("fal", "replicate", "openai")
CHALLENGES = 20  # the first half text-to-image, the second half edits
CHUNK_VOTES = 1_000_000
FLAGGED_SHARE = 0.01
JUDGE_SHARE = 0.05  # votes of "judge:lens", which the human boards leave out
_STAGED = ("n", "l", "r", "pl", "pr", "o", "c", "f", "k", "t")
_WIDE = {"n": ">i8", "f": "u1", "t": ">i4"}  # the others are smallint
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length


def model_names(n_models: int) -> list[str]:
    return [f"vendor-{k % 7}/image-model-{k:02d}" for k in range(n_models)]


def database_url(admin_url: str, name: str) -> str:
    """The URL of database `name` on the server of `admin_url`."""
    return admin_url.rsplit("/", 1)[0] + "/" + name


def create_database(admin_url: str, name: str) -> str:
    """A fresh, empty database `name` (dropped first if a run left one); its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(admin_url, name)


def holds_votes(admin_url: str, name: str, n_votes: int) -> bool:
    """Whether database `name` exists with exactly n_votes votes (a kept run's, to reuse)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
    try:
        with psycopg.connect(database_url(admin_url, name)) as conn:
            (count,) = conn.execute("SELECT count(*) FROM votes").fetchone()
    except psycopg.Error:
        return False
    return count == n_votes


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _staged_rows(rng: np.random.Generator, strengths: np.ndarray, start: int, n: int):
    """n votes as binary COPY rows of the staging table (one numpy record a row, big-endian)."""
    fields = [("count", ">i2")]
    for name in _STAGED:
        fields += [(f"{name}_bytes", ">i4"), (name, _WIDE.get(name, ">i2"))]
    rows = np.zeros(n, dtype=np.dtype(fields))
    rows["count"] = len(_STAGED)
    for name in _STAGED:
        rows[f"{name}_bytes"] = np.dtype(_WIDE.get(name, ">i2")).itemsize
    m = len(strengths)
    left = rng.integers(0, m, n)
    right = (left + rng.integers(1, m, n)) % m
    left_wins = rng.random(n) < expit(strengths[left] - strengths[right])
    draw = rng.random(n)
    rows["n"] = np.arange(start, start + n)
    rows["l"], rows["r"] = left, right
    rows["pl"], rows["pr"] = rng.integers(0, len(PROVIDERS), (2, n))
    # outcome codes: 0 left, 1 right, 2 tie, 3 both_bad (~20% ties, ~10% both_bad)
    rows["o"] = np.where(draw < 0.2, 2, np.where(draw < 0.3, 3, np.where(left_wins, 0, 1)))
    rows["c"] = rng.integers(0, CHALLENGES, n)
    rows["f"] = rng.random(n) < FLAGGED_SHARE
    rows["k"] = rng.random(n) < JUDGE_SHARE
    rows["t"] = np.sort(rng.integers(0, 365 * 86_400, n))
    return rows


def _text_array(values) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def load_votes(url: str, n_votes: int, n_models: int, seed: int = 0) -> dict:
    """Fill the (empty, migrated) votes table of `url`; timings and sizes."""
    rng = np.random.default_rng(seed)
    strengths = rng.normal(0.0, 0.6, n_models)
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        # Indexes are built once at the end, far faster than kept up row by row.
        indexes = [
            definition
            for (definition,) in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'votes' "
                "AND indexname NOT IN ('votes_pkey', 'votes_battle_id_key')"
            ).fetchall()
        ]
        names = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'votes' "
            "AND indexname NOT IN ('votes_pkey', 'votes_battle_id_key')"
        ).fetchall()
        conn.execute("ALTER TABLE votes DROP CONSTRAINT votes_battle_id_key")
        for (name,) in names:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(
            "CREATE UNLOGGED TABLE bench_staged (n bigint, l smallint, r smallint, pl smallint, "
            "pr smallint, o smallint, c smallint, f boolean, k smallint, t integer)"
        )
        with conn.cursor().copy("COPY bench_staged FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(_COPY_HEADER)
            for first in range(0, n_votes, CHUNK_VOTES):
                size = min(CHUNK_VOTES, n_votes - first)
                copy.write(_staged_rows(rng, strengths, first, size).tobytes())
            copy.write((-1).to_bytes(2, "big", signed=True))
        copied = time.perf_counter()
        models = _text_array(model_names(n_models))
        providers = _text_array(PROVIDERS)
        outcomes = _text_array(("left", "right", "tie", "both_bad"))
        half = CHALLENGES // 2
        # OFFSET 0 keeps the subquery whole, so each row's md5 is computed once, not per use.
        conn.execute(
            f"""
            INSERT INTO votes (id, battle_id, created_at, challenge, task, category, model_left,
                model_right, provider_left, provider_right, image_left, image_right, outcome,
                voter, ip_hash, dwell_ms, flagged, flag_reason, voter_kind)
            SELECT n + 1, h, timestamptz '2026-01-01 00:00:00+00' + t * interval '1 second',
                'challenge-' || c, CASE WHEN c < {half} THEN 'text-to-image' ELSE 'edit' END,
                'category-' || (c % 5), ({models})[l + 1], ({models})[r + 1],
                ({providers})[pl + 1], ({providers})[pr + 1], h || h, reverse(h) || h,
                ({outcomes})[o + 1], left(h, 16), h || reverse(h), 1000 + n % 9000, f,
                CASE WHEN f THEN 'too fast' END,
                CASE WHEN k = 1 THEN 'judge:lens' ELSE 'human' END
            FROM (SELECT *, md5(n::text) AS h FROM bench_staged OFFSET 0) AS staged
            """
        )
        conn.execute("DROP TABLE bench_staged")
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('votes', 'id'), (SELECT max(id) FROM votes))"
        )
        inserted = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("ALTER TABLE votes ADD CONSTRAINT votes_battle_id_key UNIQUE (battle_id)")
        for definition in indexes:
            conn.execute(definition)
        conn.execute("VACUUM ANALYZE votes")  # what autovacuum does to a table that stops growing
        table_mb, index_mb = conn.execute(
            "SELECT pg_relation_size('votes'), pg_relation_size('ix_votes_pair_counts')"
        ).fetchone()
    done = time.perf_counter()
    return {
        "load_s": round(done - start, 1),
        "copy_s": round(copied - start, 1),
        "insert_s": round(inserted - copied, 1),
        "index_s": round(done - inserted, 1),
        "table_mb": round(table_mb / 2**20),
        "pair_index_mb": round(index_mb / 2**20),
    }

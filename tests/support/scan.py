"""A whole database as text, for scans that must not find a secret in any row."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


def database_dump(url: str) -> str:
    """Every table's schema and rows: sqlite3's dump (and the file's raw bytes, WAL included), or
    pg_dump of the test's PostgreSQL schema (the search_path the db_url fixture set)."""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        with sqlite3.connect(path) as conn:
            text = "\n".join(conn.iterdump())
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        return text + "\n" + raw.decode("latin-1")
    parts = urlsplit(url)
    options = unquote(parse_qs(parts.query).get("options", [""])[0])
    schema = options.split("search_path=", 1)[1] if "search_path=" in options else "public"
    base = parts._replace(query="").geturl()
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is needed for the PostgreSQL scan"
    done = subprocess.run(
        [pg_dump, base, "--schema", schema, "--inserts"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "gateway_keys" in done.stdout, "the dump holds no gateway_keys table"
    return done.stdout

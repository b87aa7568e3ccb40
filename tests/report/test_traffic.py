"""The gateway's attempts (source traffic) beside the benchmark's: shown apart, captioned, never mixed in."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import replace
from datetime import timedelta

import pytest
from support.store import add_attempts, attempt_row, traffic_row

from arena import store
from arena.config import GatewaySettings
from arena.report import build_site
from arena.store import votepath
from arena.store.tables import StoredImage

from .conftest import STAMP

TRAFFIC_SECTION = re.compile(
    r'<section class="traffic" data-source="traffic">.*?</section>\n', re.S
)


def _copy_with_traffic(golden, path, rows_for) -> object:
    """The golden store copied to `path`, with the traffic rows rows_for(engine) returns added."""
    with (
        sqlite3.connect(golden.database_url.split("///", 1)[1]) as source,
        sqlite3.connect(path) as copy,
    ):
        source.backup(copy)  # the WAL's pages too, which a file copy would miss
    url = f"sqlite:///{path}"
    engine = store.open_engine(url)
    add_attempts(engine, rows_for(engine))
    engine.dispose()
    return replace(golden, database_url=url)


def _traffic_rows(engine) -> list[dict]:
    """Three requests for cartoon-filter through local (one fell back) just after the benchmark's
    newest attempt and one ten days before, each carrying an image the benchmark made for another
    model: were traffic read as benchmark output, galleries, challenge pages, battles and
    generations.csv would all change."""
    newest = store.read_attempts(engine, source="benchmark")
    borrowed = str(newest[newest["model"] == "identity"]["image_sha256"].iloc[0])
    at = newest["started_at"].max().to_pydatetime() + timedelta(minutes=5)
    rows = [
        traffic_row("gw-1", model="cartoon-filter", provider="local", generation_ms=5000.0),
        traffic_row(
            "gw-2", model="cartoon-filter", provider="local", ok=False,
            failure_class="server_error", generation_ms=None, error="server_error: HTTP 503",
        ),
        traffic_row("gw-2", model="cartoon-filter", provider="local", generation_ms=7000.0),
        traffic_row("gw-3", key="other", model="cartoon-filter", provider="local", generation_ms=6000.0),
    ]  # fmt: skip
    for k, row in enumerate(rows):
        row.update(
            started_at=at + timedelta(seconds=k), image_sha256=borrowed if row["ok"] else None
        )
    old = traffic_row("gw-0", model="cartoon-filter", provider="local", generation_ms=1.0)
    old.update(started_at=at - timedelta(days=10), image_sha256=borrowed)
    return [old, *rows]


def _files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow  # a second build of the golden store
def test_traffic_changes_no_benchmark_page_chart_or_download(golden, golden_site, tmp_path):
    with_traffic = _copy_with_traffic(golden, tmp_path / "traffic.db", _traffic_rows)
    result = build_site(with_traffic, tmp_path / "site", stamp=STAMP)
    before, after = _files(golden_site.out_dir), _files(result.out_dir)
    assert before.keys() == after.keys()  # no page, picture or download more or less
    differ = sorted(name for name in before if before[name] != after[name])
    assert differ == ["models/cartoon-filter.html", "providers/local.html"]
    for name in differ:
        page = after[name].decode()
        assert TRAFFIC_SECTION.search(page), name
        assert TRAFFIC_SECTION.sub("", page) == TRAFFIC_SECTION.sub("", before[name].decode())
    # The traffic table says what it is: its own rows, the request count and the window.
    page = after["models/cartoon-filter.html"].decode()
    section = TRAFFIC_SECTION.search(page).group(0)
    assert "Aggregated from 4 real API requests over the last 30 days" in section
    cells = dict(
        (field, value)
        for value, field in re.findall(r'data-value="([^"]*)" data-field="([^"]+)"', section)
    )
    assert (cells["n"], cells["successes"], cells["p50_ms"]) == ("5", "4", "5500.0")
    provider = TRAFFIC_SECTION.search(after["providers/local.html"].decode()).group(0)
    assert "Aggregated from 4 real API requests over the last 30 days" in provider
    assert "5 attempts through the gateway, 80.0% success" in provider
    # The benchmark's table on the same page is captioned as the benchmark's.
    assert '<table class="sortable numbers provider-table" data-source="benchmark">' in page
    assert "The benchmark's own requests" in page


@pytest.mark.slow  # a build of the golden store
def test_the_traffic_window_is_the_gateways(golden, tmp_path):
    with_traffic = _copy_with_traffic(golden, tmp_path / "traffic.db", _traffic_rows)
    narrow = replace(with_traffic, gateway=GatewaySettings(window_days=7))
    result = build_site(narrow, tmp_path / "site", stamp=STAMP)
    section = TRAFFIC_SECTION.search(
        (result.out_dir / "models" / "cartoon-filter.html").read_text()
    )
    assert "Aggregated from 3 real API requests over the last 7 days" in section.group(0)
    single = _copy_with_traffic(golden, tmp_path / "one.db", lambda e: _traffic_rows(e)[1:2])
    result = build_site(single, tmp_path / "one", stamp=STAMP)
    page = (result.out_dir / "models" / "cartoon-filter.html").read_text()
    assert "Aggregated from 1 real API request over the last 30 days" in page


def test_the_blind_pool_never_takes_traffic_outputs(db_url):
    engine = store.open_engine(db_url)
    images = [
        {"sha256": c * 64, "path": f"images/{c}.png", "format": "png", "width": 8, "height": 8, "size_bytes": 1}
        for c in "ab"
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(StoredImage.__table__.insert(), images)
    add_attempts(
        engine,
        [
            attempt_row(challenge="t2i", model="card", image_sha256="a" * 64),
            traffic_row("gw-1", model="card", image_sha256="b" * 64),
            traffic_row("gw-2", model="card", image_sha256="a" * 64, challenge="t2i"),
        ],
    )
    outputs = votepath.successful_outputs(engine)
    assert [(o["challenge"], o["image_sha256"]) for o in outputs] == [("t2i", "a" * 64)]
    engine.dispose()


def test_an_empty_traffic_store_reads_and_digests_to_nothing(golden):
    from arena.report import reads
    from arena.report.digest import digest_traffic

    engine = store.open_engine(golden.database_url)
    traffic = reads.read_traffic(engine)
    assert traffic.empty and list(traffic.columns) == list(reads.TRAFFIC_COLUMNS)
    digest = digest_traffic(traffic)
    assert digest.provider_rows.empty and digest.requests_by_model == {}
    assert len(reads.read_attempts(engine)) == len(store.read_attempts(engine))
    engine.dispose()

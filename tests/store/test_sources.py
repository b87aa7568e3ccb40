"""Attempts of two sources in one table: reads and `arena stats --source` keep each to its own rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from support import write_config
from support.store import add_attempts, attempt_row, traffic_row

from arena import stats, store
from arena.cli import main

# The benchmark: 3 attempts of card@faulty (one failed); the gateway: 4 requests, one of which fell
# back from faulty (a server error) to faulty again, so 5 traffic attempts in all, and a slower p50.
BENCHMARK = [
    attempt_row(model="card", provider="faulty", generation_ms=100.0),
    attempt_row(model="card", provider="faulty", generation_ms=120.0),
    attempt_row(
        model="card", provider="faulty", ok=False, failure_class="timeout", generation_ms=None
    ),
]
TRAFFIC = [
    traffic_row("req-1", model="card", provider="faulty", generation_ms=900.0),
    traffic_row("req-2", model="card", provider="faulty", generation_ms=1100.0),
    traffic_row(
        "req-3", model="card", provider="faulty", ok=False, failure_class="server_error",
        generation_ms=None,
    ),
    traffic_row("req-3", model="card", provider="faulty", generation_ms=1000.0),
    traffic_row("req-4", key="other", model="card", provider="faulty", generation_ms=950.0),
]  # fmt: skip


@pytest.fixture
def two_sources(db_url):
    engine = store.open_engine(db_url)
    add_attempts(engine, BENCHMARK + TRAFFIC)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("lean", [False, True])
def test_read_attempts_filters_by_source_in_sql(two_sources, lean):
    read = lambda **kw: store.read_attempts(two_sources, labels_as_categories=lean, **kw)  # noqa: E731
    benchmark, traffic, both = read(source="benchmark"), read(source="traffic"), read()
    assert len(benchmark) == 3 and set(benchmark["source"].astype(str)) == {"benchmark"}
    assert len(traffic) == 5 and set(traffic["source"].astype(str)) == {"traffic"}
    assert len(both) == 8
    assert set(traffic["run_id"].astype(str)) == {"traffic"} and traffic["job_id"].isna().all()
    assert set(traffic["gateway_key"].astype(str)) == {"app", "other"}
    assert benchmark["gateway_key"].isna().all()
    picked = read(source="traffic", columns=["model", "gateway_request_id"])
    assert list(picked.columns) == ["model", "gateway_request_id"] and len(picked) == 5
    assert stats.request_count(traffic) == 4


def test_an_unknown_source_is_refused(two_sources):
    with pytest.raises(ValueError, match="source must be one of benchmark, traffic"):
        store.read_attempts(two_sources, source="Traffic")


def test_request_count_counts_fallbacks_once():
    frame = pd.DataFrame({"gateway_request_id": ["a", "a", "b", None, None]})
    assert stats.request_count(frame) == 4  # a, b and two attempts without a request id
    assert stats.request_count(frame.iloc[:0]) == 0
    assert stats.request_count(pd.DataFrame({"model": ["x", "y"]})) == 2


def _config(tmp_path, db_url):
    return write_config(
        tmp_path / "arena.toml",
        base_url="http://127.0.0.1:9",
        models={"card": ["text-to-image"]},
        challenges_dir=tmp_path,
        db_url=db_url,
        data_dir=tmp_path / "data",
    )


def _stats_json(capsys, config, *extra) -> dict:
    assert main(["stats", "--config", str(config), "--json", *extra]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    return row


def test_stats_source_shows_just_its_rows_figures(two_sources, db_url, tmp_path, capsys):
    config = _config(tmp_path, db_url)
    default = _stats_json(capsys, config)
    benchmark = _stats_json(capsys, config, "--source", "benchmark")
    assert default == benchmark  # the benchmark is the default: today's figures, unchanged
    assert benchmark["source"] == "benchmark"
    assert (benchmark["n"], benchmark["successes"], benchmark["p50_ms"]) == (3, 2, 110.0)
    assert benchmark["failures"]["timeout"] == 1 and benchmark["failures"]["server_error"] == 0
    traffic = _stats_json(capsys, config, "--source", "traffic")
    assert (traffic["n"], traffic["successes"], traffic["p50_ms"]) == (5, 4, 975.0)
    assert traffic["failures"]["server_error"] == 1 and traffic["failures"]["timeout"] == 0
    both = _stats_json(capsys, config, "--source", "all")
    assert (both["n"], both["successes"]) == (8, 6) and both["source"] == "all"
    assert both["p50_ms"] == pytest.approx(
        float(pd.Series([100, 120, 900, 1100, 1000, 950]).median())
    )


def test_stats_heading_names_the_source_and_window(two_sources, db_url, tmp_path, capsys):
    config = _config(tmp_path, db_url)
    assert main(["stats", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "provider performance over the last 30 days, from the benchmark's attempts (--source benchmark):"
    )
    assert "success rate over 3 attempts" in out
    assert main(["stats", "--config", str(config), "--source", "traffic", "--window", "12h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "provider performance over the last 12 hours, aggregated from 4 real API requests "
        "through the gateway (--source traffic):"
    )
    assert "success rate over 5 attempts" in out
    assert main(["stats", "--config", str(config), "--source", "all"]) == 0
    assert "from the benchmark's attempts and 4 real API requests" in capsys.readouterr().out


def test_stats_source_with_nothing_says_what_to_do(db_url, tmp_path, capsys):
    engine = store.open_engine(db_url)
    add_attempts(engine, BENCHMARK)
    engine.dispose()
    config = _config(tmp_path, db_url)
    assert main(["stats", "--config", str(config), "--source", "traffic"]) == 0
    out = capsys.readouterr().out
    assert "aggregated from 0 real API requests" in out and "start `arena gateway`" in out
    assert main(["stats", "--config", str(config), "--source", "traffic", "--model", "card"]) == 2
    assert "no gateway traffic for that model in the last 30 days" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["stats", "--config", str(config), "--source", "nope"])
    assert info.value.code == 2 and "--source: invalid choice: 'nope'" in capsys.readouterr().err

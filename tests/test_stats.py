"""Provider statistics: success rate over attempts, percentiles over successes, ranking, windows."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.errors import ArenaError
from arena.stats import headline, parse_window, provider_table, records


def _attempts(rows):
    frame = pd.DataFrame(
        rows, columns=["model", "provider", "ok", "generation_ms", "ttfb_ms", "failure_class"]
    )
    frame["warmup"] = False
    frame["download_ms"] = None
    frame["cost_usd"] = np.where(frame["ok"], 0.04, 0.0)
    return frame


def test_table_ranks_by_median_and_counts_failures():
    frame = _attempts(
        [("m", "fast", True, ms, ms / 2, None) for ms in (100, 200, 300)]
        + [("m", "fast", False, None, None, "timeout")]
        + [("m", "slow", True, ms, ms, None) for ms in (1000, 2000)]
        + [("m", "dead", False, None, None, "server_error")] * 2
    )
    table = provider_table(frame)
    assert table["provider"].tolist() == ["fast", "slow", "dead"] and table["rank"].tolist() == [
        1,
        2,
        3,
    ]
    fast = table.iloc[0]
    assert fast["n"] == 4 and fast["successes"] == 3 and fast["success_rate"] == 0.75
    assert (
        fast["p50_ms"] == 200
        and fast["p95_ms"] == pytest.approx(290)
        and fast["ttfb_p50_ms"] == 100
    )
    assert fast["failures_timeout"] == 1 and fast["cost_per_image_usd"] == pytest.approx(0.04)
    assert table.iloc[2]["p50_ms"] is None or np.isnan(table.iloc[2]["p50_ms"])
    assert headline(table) == "fastest through fast at 200 ms median with 75.0% success (n=4)"
    rec = records(table)
    assert (
        rec[2]["p50_ms"] is None
        and rec[2]["failures"]["server_error"] == 2
        and rec[0]["success_rate"] == 0.75
    )


def test_warmups_are_excluded():
    frame = _attempts([("m", "p", True, 100, 50, None), ("m", "p", True, 5000, 50, None)])
    frame.loc[1, "warmup"] = True
    assert (
        provider_table(frame).iloc[0]["n"] == 1 and provider_table(frame).iloc[0]["p50_ms"] == 100
    )


def test_empty_is_explained():
    assert provider_table(pd.DataFrame()).empty


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("all", None),
    ],
)
def test_windows(text, expected):
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["30", "0d", "1w", "-3d", "d"])
def test_bad_windows(text):
    with pytest.raises(ArenaError, match="--window"):
        parse_window(text)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(1, 1e6)), min_size=1, max_size=60))
def test_success_rate_and_percentiles_match_their_definitions(samples):
    frame = _attempts(
        [
            ("m", "p", ok, ms if ok else None, ms if ok else None, None if ok else "timeout")
            for ok, ms in samples
        ]
    )
    row = provider_table(frame).iloc[0]
    oks = [ms for ok, ms in samples if ok]
    assert row["success_rate"] == pytest.approx(len(oks) / len(samples))
    if oks:
        assert row["p50_ms"] == pytest.approx(np.percentile(oks, 50))
        assert min(oks) <= row["p50_ms"] <= row["p95_ms"] <= max(oks)


def _reference_table(frame: pd.DataFrame) -> pd.DataFrame:
    """provider_table's definitions group by group, the slow obvious way."""
    from arena.errors import FAILURE_CLASSES

    def pct(values, q):
        values = values.dropna()
        return float(np.percentile(values.to_numpy(dtype=float), q)) if len(values) else None

    rows = []
    for (model, provider), group in frame[~frame["warmup"]].groupby(
        ["model", "provider"], sort=True
    ):
        ok = group[group["ok"].astype(bool)]
        cost = float(group["cost_usd"].fillna(0).sum())
        row = {
            "model": model,
            "provider": provider,
            "n": len(group),
            "successes": len(ok),
            "success_rate": len(ok) / len(group),
            "p50_ms": pct(ok["generation_ms"], 50),
            "p95_ms": pct(ok["generation_ms"], 95),
            "ttfb_p50_ms": pct(ok["ttfb_ms"], 50),
            "download_p50_ms": pct(ok["download_ms"], 50),
            "cost_usd": cost,
            "cost_per_image_usd": cost / len(ok) if len(ok) else None,
        }
        counts = group["failure_class"].value_counts()
        row.update({f"failures_{c}": int(counts.get(c, 0)) for c in FAILURE_CLASSES})
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_key"] = table["p50_ms"].fillna(np.inf)
    table = table.sort_values(["model", "_key", "success_rate"], ascending=[True, True, False])
    table["rank"] = table.groupby("model").cumcount() + 1
    return table.drop(columns="_key")[list(provider_table(frame).columns)].reset_index(drop=True)


def test_table_equals_its_group_by_group_definition():
    rng = np.random.default_rng(4)
    n = 3000
    ok = rng.random(n) < 0.8
    frame = pd.DataFrame(
        {
            "model": rng.choice(["a", "b", "c", "d"], n),
            "provider": rng.choice(["p", "q", "r"], n),
            "ok": ok,
            "generation_ms": np.where(ok & (rng.random(n) < 0.95), rng.lognormal(7, 1, n), np.nan),
            "ttfb_ms": np.where(ok, rng.lognormal(6, 1, n), np.nan),
            "download_ms": np.where(ok, 40.0, np.nan),
            "failure_class": np.where(
                ok, None, rng.choice(["timeout", "rate_limited", "refused"], n)
            ),
            "cost_usd": np.where(ok, 0.02, np.where(rng.random(n) < 0.5, 0.0, np.nan)),
            "warmup": rng.random(n) < 0.05,
        }
    )
    frame.loc[(frame["model"] == "d") & (frame["provider"] == "r"), "ok"] = (
        False  # a provider with no success
    )
    pd.testing.assert_frame_equal(provider_table(frame), _reference_table(frame), check_exact=True)

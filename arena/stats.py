"""Provider performance from attempts: p50/p95 generation time, TTFB, success rate, failures, cost;
and the counts behind the checks and a judge's calls.

Definitions (the README's methodology says the same):
- attempts: every request sent, warm-ups excluded; a rate-limited reply that was retried counts.
- success rate = successes / attempts.
- percentiles are over successful attempts only (numpy's linear interpolation), always with their count.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from arena.config import CHECK_NAMES
from arena.errors import FAILURE_CLASSES, ArenaError

WINDOW_RE = re.compile(r"^(\d+)([dhm])$")


def parse_window(text: str | None) -> timedelta | None:
    """'30d', '12h', '90m' -> timedelta; 'all' or None -> no window."""
    if text is None or text == "all":
        return None
    match = WINDOW_RE.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ArenaError(f"--window: {text!r} is not a window like 30d, 12h, 90m or 'all'")
    number, unit = int(match.group(1)), match.group(2)
    return {
        "d": timedelta(days=number),
        "h": timedelta(hours=number),
        "m": timedelta(minutes=number),
    }[unit]


def window_start(window: timedelta | None, now: datetime) -> datetime | None:
    return None if window is None else now - window


def _pct(values: np.ndarray, q: float) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if len(values) else None


def provider_table(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, provider), ranked within each model by p50 generation time."""
    columns = [
        "model",
        "provider",
        "rank",
        "n",
        "successes",
        "success_rate",
        "p50_ms",
        "p95_ms",
        "ttfb_p50_ms",
        "download_p50_ms",
        "cost_usd",
        "cost_per_image_usd",
        *[f"failures_{c}" for c in FAILURE_CLASSES],
    ]
    if attempts.empty:
        return pd.DataFrame(columns=columns)
    frame = attempts[~attempts["warmup"].astype(bool)] if "warmup" in attempts else attempts
    # Each column once as a numpy array, then each group's rows by position: slicing a DataFrame
    # per group costs milliseconds, and a report groups hundreds of thousands of attempts.
    ok = frame["ok"].astype(bool).to_numpy()
    timings = {
        name: frame[name].to_numpy(dtype=float, na_value=np.nan)
        for name in ("generation_ms", "ttfb_ms", "download_ms")
    }
    cost = frame["cost_usd"].fillna(0).to_numpy(dtype=float)
    failure = pd.Categorical(frame["failure_class"], categories=FAILURE_CLASSES).codes
    rows = []
    for (model, provider), at in sorted(
        frame.groupby(["model", "provider"], sort=True).indices.items()
    ):
        good = at[ok[at]]
        n, successes = len(at), len(good)
        total = float(cost[at].sum())
        row = {
            "model": model,
            "provider": provider,
            "n": n,
            "successes": successes,
            "success_rate": successes / n if n else 0.0,
            "p50_ms": _pct(timings["generation_ms"][good], 50),
            "p95_ms": _pct(timings["generation_ms"][good], 95),
            "ttfb_p50_ms": _pct(timings["ttfb_ms"][good], 50),
            "download_p50_ms": _pct(timings["download_ms"][good], 50),
            "cost_usd": total,
            "cost_per_image_usd": total / successes if successes else None,
        }
        counts = np.bincount(failure[at][failure[at] >= 0], minlength=len(FAILURE_CLASSES))
        for k, cls in enumerate(FAILURE_CLASSES):
            row[f"failures_{cls}"] = int(counts[k])
        rows.append(row)
    table = pd.DataFrame(rows)
    # Rank by median speed; providers with no success rank last, by success rate.
    table["_key"] = table["p50_ms"].fillna(np.inf)
    table = table.sort_values(["model", "_key", "success_rate"], ascending=[True, True, False])
    table["rank"] = table.groupby("model").cumcount() + 1
    return table.drop(columns="_key")[columns].reset_index(drop=True)


def request_count(attempts: pd.DataFrame) -> int:
    """How many gateway requests traffic attempts answer: a request's attempts (its fallbacks) share
    one gateway_request_id and count once; an attempt without one counts on its own."""
    if attempts.empty:
        return 0
    if "gateway_request_id" not in attempts:
        return len(attempts)
    ids = attempts["gateway_request_id"]
    known = ids.notna().to_numpy()
    return int(pd.unique(ids[known].astype(str)).size + (~known).sum())


def headline(rows: pd.DataFrame) -> str:
    """'fastest through P at N ms median with S% success' for one model's provider rows."""
    ranked = rows.dropna(subset=["p50_ms"]).sort_values("p50_ms")
    if ranked.empty:
        return "no successful generation in this window"
    best = ranked.iloc[0]
    return (
        f"fastest through {best['provider']} at {best['p50_ms']:,.0f} ms median "
        f"with {best['success_rate'] * 100:.1f}% success (n={int(best['n'])})"
    )


def records(table: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN becomes null, numpy scalars become Python numbers."""
    out = []
    for row in table.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, float) and np.isnan(value):
                value = None
            elif isinstance(value, np.integer):
                value = int(value)
            elif isinstance(value, np.floating):
                value = float(value)
            clean[key] = value
        failures = {c: clean.pop(f"failures_{c}") for c in FAILURE_CLASSES}
        clean["failures"] = failures
        out.append(clean)
    return out


MESSAGE_CHARS = 200  # a provider's message is its own text: shown capped, never in full
TOP_MESSAGES = 3  # per failure class
_CLASS_PREFIX = re.compile(rf"^(?:{'|'.join(FAILURE_CLASSES)}): ")


def short_message(text) -> str:
    """A stored failure message as shown: one line, without its class prefix, capped."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return "(no message)"
    text = _CLASS_PREFIX.sub("", " ".join(str(text).split()))
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def failure_messages(
    attempts: pd.DataFrame, by: tuple[str, ...] = ("model", "provider"), top: int = TOP_MESSAGES
) -> pd.DataFrame:
    """The commonest messages of each failure class per group: *by, failure_class, message, count.

    Rows come in group order, then in the failure classes' order, then by count (most first) and
    message; `top` messages per group and class.
    """
    columns = [*by, "failure_class", "message", "count"]
    if attempts.empty or "error" not in attempts:
        return pd.DataFrame(columns=columns)
    frame = attempts[~attempts["warmup"].astype(bool)] if "warmup" in attempts else attempts
    failed = frame[~frame["ok"].astype(bool) & frame["failure_class"].notna()]
    if failed.empty:
        return pd.DataFrame(columns=columns)
    # Each distinct stored text shortened once: a store repeats the same few messages many times.
    codes, distinct = pd.factorize(failed["error"].astype(object), use_na_sentinel=False)
    shortened = np.array([short_message(t) for t in distinct], dtype=object)
    rows = pd.DataFrame(
        {
            **{key: failed[key].astype(str).to_numpy() for key in by},
            "failure_class": failed["failure_class"].astype(str).to_numpy(),
            "message": shortened[codes],
        }
    )
    counted = rows.groupby([*by, "failure_class", "message"], sort=False).size()
    counted = counted.reset_index(name="count")
    order = {c: k for k, c in enumerate(FAILURE_CLASSES)}
    counted["_class"] = counted["failure_class"].map(order)
    counted["_count"] = -counted["count"]
    counted = counted.sort_values([*by, "_class", "_count", "message"], kind="stable")
    counted = counted.groupby([*by, "failure_class"], sort=False).head(top)
    return counted[columns].reset_index(drop=True)


def messages_by_class(messages: pd.DataFrame, **where) -> dict[str, list[dict]]:
    """{failure class: [{message, count}, ...]} for the rows matching `where` (e.g. provider="fal")."""
    rows = messages
    for key, value in where.items():
        rows = rows[rows[key] == value]
    out: dict[str, list[dict]] = {}
    for row in rows.itertuples(index=False):
        out.setdefault(row.failure_class, []).append(
            {"message": row.message, "count": int(row.count)}
        )
    return out


WINDOW_UNITS = {"d": "day", "h": "hour", "m": "minute"}


def describe_window(text: str | None) -> str:
    """'30d' -> 'the last 30 days', '1h' -> 'the last hour', 'all' -> 'all time'."""
    if text is None or text == "all":
        return "all time"
    match = WINDOW_RE.match(text.strip())
    if not match:
        return text
    number, unit = int(match.group(1)), WINDOW_UNITS[match.group(2)]
    return f"the last {unit}" if number == 1 else f"the last {number} {unit}s"


def count_flagged(frame: pd.DataFrame, by: tuple[str, ...] = ("model", "provider")) -> pd.DataFrame:
    """Per `by` and check: outputs checked and flagged, from store.read_checks' rows (one per
    output), in the checks' order (config.CHECK_NAMES); columns *by, check, outputs, flagged."""
    columns = [*by, "check", "outputs", "flagged"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    counted = (
        frame.assign(flagged=frame["flagged"].astype(int))
        .groupby([*by, "check"], as_index=False, observed=True)
        .agg(outputs=("flagged", "size"), flagged=("flagged", "sum"))
    )
    order = {name: k for k, name in enumerate(CHECK_NAMES)}
    counted["_order"] = counted["check"].map(order).fillna(len(CHECK_NAMES))
    counted = counted.sort_values(["_order", *by]).drop(columns="_order")
    return counted[columns].reset_index(drop=True)


def judge_call_figures(calls: pd.DataFrame) -> dict:
    """A judge's calls (store.read_judge_calls' rows): how many, answered, failed per class, the
    cost, the median duration of the answered ones (ms) and the judge model ids used."""
    if calls.empty:
        return {"calls": 0, "ok": 0, "failures": {}, "cost_usd": 0.0, "p50_ms": None, "models": []}
    ok = calls["ok"].astype(bool).to_numpy()
    failures = calls.loc[~ok, "failure_class"].fillna("unknown").astype(str).value_counts()
    return {
        "calls": len(calls),
        "ok": int(ok.sum()),
        "failures": {str(k): int(v) for k, v in sorted(failures.items())},
        "cost_usd": float(calls["cost_usd"].fillna(0.0).sum()),
        "p50_ms": _pct(calls.loc[ok, "duration_ms"].to_numpy(dtype=float), 50),
        "models": sorted({str(m) for m in calls["model_id"].dropna() if str(m)}),
    }

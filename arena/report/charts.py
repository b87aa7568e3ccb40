"""SVG charts with matplotlib (figures without pyplot): Elo vs cost and vs speed with their Pareto fronts, latency, history.

Every chart comes back as SVG text whose element ids carry the chart's key, so several charts can
be inlined in one page. In the scatter charts each model's point and label are groups with ids
(`KEY-pt-SLUG`, `KEY-label-SLUG`): one rendering serves every model page, which highlights its
own model with a line of CSS instead of a chart of its own. Output is byte-stable: fixed hash
salt, no date, text kept as text.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure

# Applied per chart (matplotlib.rc_context), never to the process: a program that imports the
# report keeps its own matplotlib settings. Figures are built without pyplot, so no backend is
# chosen either (matplotlib's own advice for servers and libraries).
STYLE = {
    "svg.hashsalt": "arena-report",
    "svg.fonttype": "none",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _styled(chart):
    """Run a chart function under the report's style."""

    @functools.wraps(chart)
    def styled(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return chart(*args, **kwargs)

    return styled


_VERSION = tuple(int(part) for part in matplotlib.__version__.split(".")[:2])
POINT = "#4c72b0"
BASELINE = "#8c8c8c"
FRONT = "#dd8452"


@dataclass(frozen=True)
class Point:
    """One model on a rating scatter."""

    slug: str
    label: str
    x: float
    rating: float
    lower: float | None
    upper: float | None
    baseline: bool


def plain(text: str) -> str:
    """Text shown as written: a '$' would otherwise start matplotlib's math mode."""
    return str(text).replace("$", r"\$")


def pareto_front(points: list[Point]) -> list[Point]:
    """Points no other point beats on both axes (lower x, higher rating), by increasing x."""
    front, best = [], -np.inf
    for point in sorted(points, key=lambda p: (p.x, -p.rating)):
        if point.rating > best:
            front.append(point)
            best = point.rating
    return front


def _svg(fig, key: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # inlined into HTML: no XML declaration or doctype
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{key}-{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{key}-{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{key}-{m.group(1)}"', text)
    return text


@_styled
def rating_scatter(
    key: str, points: list[Point], x_label: str, title: str, log_x: bool = False
) -> str:
    """Rating (with 95% interval) against x, baselines in grey, the Pareto front as a step line."""
    fig = Figure(figsize=(7.6, 4.6))
    ax = fig.subplots()
    fig.subplots_adjust(
        left=0.1, right=0.97, bottom=0.25, top=0.92
    )  # fixed: a tight bbox costs a second draw
    bounded = [p for p in points if p.lower is not None and p.upper is not None]
    ax.vlines(
        [p.x for p in bounded],
        [p.lower for p in bounded],
        [p.upper for p in bounded],
        colors=[BASELINE if p.baseline else POINT for p in bounded],
        alpha=0.35,
        lw=1.2,
    )
    for p in points:
        ax.plot(
            [p.x],
            [p.rating],
            ls="",
            ms=6,
            zorder=3,
            gid=f"pt-{p.slug}",
            markerfacecolor="white" if p.baseline else POINT,
            markeredgecolor=BASELINE if p.baseline else POINT,
            marker="s" if p.baseline else "o",
        )
    front = pareto_front(points)
    if len(front) > 1:
        ax.step(
            [p.x for p in front],
            [p.rating for p in front],
            where="post",
            color=FRONT,
            lw=1.5,
            zorder=2,
            label="Pareto front: no other model is both better and cheaper/faster",
        )
    elif front:
        ax.scatter([], [], color=FRONT, label="Pareto front")
    on_front = {p.slug for p in front}
    for p in points:
        ax.annotate(
            plain(p.label) + (" (baseline)" if p.baseline else ""),
            (p.x, p.rating),
            xytext=(5, 4),
            textcoords="offset points",
            fontsize=8,
            gid=f"label-{p.slug}",
            color=FRONT if p.slug in on_front else "#333333",
        )
    ax.scatter([], [], facecolors="white", edgecolors=BASELINE, marker="s", label="baseline model")
    if log_x and all(p.x > 0 for p in points):
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.margins(x=0.3, y=0.08)  # room for the labels of points at the right edge
    ax.set_ylabel("rating (Elo scale, 95% interval)")
    ax.set_title(plain(title))
    # Below the axes, where long labels have the whole width (beside them they were cut off).
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8, frameon=False)
    return _svg(fig, key)


@_styled
def latency_distribution(key: str, latencies: dict[str, np.ndarray], title: str) -> str:
    """Generation time of successful attempts per provider: box (quartiles) and whiskers (5th–95th)."""
    names = sorted(latencies)
    fig = Figure(figsize=(7.6, 0.5 * len(names) + 1.6))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.3, right=0.97, bottom=1.0 / (0.5 * len(names) + 1.6), top=0.9)
    data = [np.asarray(latencies[n], dtype=float) / 1000.0 for n in names]
    # `orientation` replaced `vert` in matplotlib 3.10.
    horizontal = {"orientation": "horizontal"} if _VERSION >= (3, 10) else {"vert": False}
    ax.boxplot(
        data,
        **horizontal,
        whis=(5, 95),
        showfliers=False,
        tick_labels=[f"{plain(n)} (n={len(d):,})" for n, d in zip(names, data, strict=True)],
    )
    ax.set_xscale("log")
    ax.set_xlabel(
        "generation time, seconds (log scale; box: quartiles, whiskers: 5th–95th percentile)"
    )
    ax.set_title(plain(title))
    return _svg(fig, key)


@_styled
def provider_over_time(
    key: str, nights: list[str], p50_s: list, p95_s: list, success: list, title: str
) -> str:
    """Median and p95 generation time and success rate per night, for one provider."""
    fig = Figure(figsize=(7.6, 5.2))
    top, bottom = fig.subplots(2, 1, sharex=True)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.2, top=0.93)
    x = np.arange(len(nights))
    top.plot(x, [np.nan if v is None else v for v in p50_s], marker="o", ms=3, label="p50")
    top.plot(x, [np.nan if v is None else v for v in p95_s], marker="o", ms=3, label="p95")
    top.set_ylabel("generation time, s")
    top.set_ylim(bottom=0)
    top.legend(fontsize=8, frameon=False)
    top.set_title(plain(title))
    bottom.plot(x, [100 * v for v in success], marker="o", ms=3, color="#55a868")
    bottom.set_ylabel("success rate, %")
    bottom.set_ylim(0, 102)
    step = max(1, len(nights) // 8)
    bottom.set_xticks(
        x[::step], [nights[i] for i in range(0, len(nights), step)], rotation=30, ha="right"
    )
    bottom.set_xlabel("night (UTC date of the attempts)")
    return _svg(fig, key)


@_styled
def rating_history(key: str, series: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> str:
    """Online Elo after each vote for the leading models, against vote time."""
    fig = Figure(figsize=(7.6, 4.2))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.1, right=0.72, bottom=0.2, top=0.92)
    for label, (times, ratings) in series.items():
        ax.plot(times, ratings, lw=1.2, label=plain(label))
    ax.set_xlabel("vote time (UTC)")
    ax.set_ylabel("online Elo (K=4)")
    ax.set_title(plain(title))
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for tick in ax.get_xticklabels():
        tick.set_rotation(30)
        tick.set_horizontalalignment("right")
    return _svg(fig, key)

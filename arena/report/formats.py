"""How the pages spell things: slugs, numbers with their units, exact sort values, the jinja environment."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from arena.errors import FAILURE_CLASSES

TEMPLATES_DIR = Path(__file__).parent / "templates"
TASK_TITLES = {"text-to-image": "Text to image", "edit": "Image editing"}


def slugify(name: str) -> str:
    """A file-name-safe slug; names that are not already slugs get a short hash so two never collide."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")[:60] or "x"
    if slug != name:
        slug += "-" + hashlib.sha1(str(name).encode()).hexdigest()[:8]
    return slug


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def fmt_ms(value) -> str:
    return "—" if missing(value) else f"{value:,.0f} ms"


def fmt_pct(value, digits: int = 1) -> str:
    return "—" if missing(value) else f"{100 * value:.{digits}f}%"


def fmt_usd(value) -> str:
    if missing(value):
        return "—"
    return f"${value:.4f}" if 0 < value < 0.01 else f"${value:.3f}"


def fmt_rating(value) -> str:
    return "—" if missing(value) else f"{value:.0f}"


def fmt_count(value) -> str:
    return "—" if missing(value) else f"{int(value):,}"


def fmt_days(value: float) -> str:
    """30.0 -> '30 days', 1 -> '1 day', 0.5 -> '0.5 days'."""
    number = f"{value:g}"
    return f"{number} day" if number == "1" else f"{number} days"


def sort_value(value) -> str:
    """The exact number behind a cell (sorting and tests read it); empty when there is none."""
    if missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def when(value) -> str:
    if value is None:
        return "—"
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        ms=fmt_ms,
        pct=fmt_pct,
        usd=fmt_usd,
        rating=fmt_rating,
        count=fmt_count,
        sv=sort_value,
        when=when,
    )
    env.globals.update(task_title=lambda t: TASK_TITLES.get(t, t), failure_classes=FAILURE_CLASSES)
    return env

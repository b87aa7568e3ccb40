"""Read a request's size / aspect_ratio / resolution as the shapes providers ask for (ratio, tier, pixels).

This is the plain reading of what was asked; mapping to the values a model supports is params.py's job.
"""

from __future__ import annotations

import math
import re

from arena.providers.base import ImageRequest

# Ratios most image APIs accept; a WxH size is sent as the nearest of them (on a log scale).
COMMON_RATIOS = (
    "1:1",
    "2:3",
    "3:2",
    "3:4",
    "4:3",
    "4:5",
    "5:4",
    "9:16",
    "16:9",
    "21:9",
    "9:21",
    "1:2",
    "2:1",
)
TIER_SIDE_PX = {"0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}


def pixel_size(request: ImageRequest) -> tuple[int, int] | None:
    """(width, height) when the request names pixels ("1536x1024"), else None."""
    match = re.fullmatch(r"(\d+)x(\d+)", (request.size or "").strip().lower())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _ratio_value(ratio: str) -> float:
    w, _, h = ratio.partition(":")
    return float(w) / float(h)


def aspect_ratio(request: ImageRequest) -> str | None:
    """The requested shape as "W:H": a W:H size, else aspect_ratio, else the nearest common ratio of a WxH size."""
    size = (request.size or "").strip()
    if ":" in size:
        return size
    if request.aspect_ratio:
        return request.aspect_ratio
    pixels = pixel_size(request)
    if pixels is None:
        return None
    target = math.log(pixels[0] / pixels[1])
    return min(COMMON_RATIOS, key=lambda r: abs(math.log(_ratio_value(r)) - target))


def tier(request: ImageRequest) -> str | None:
    """The scale tier ("1K", "2K", ...): the resolution asked for, else the nearest to a WxH size's area."""
    if request.resolution and request.resolution.lower() != "auto":
        return request.resolution.upper()
    pixels = pixel_size(request)
    if pixels is None:
        return None
    side = math.sqrt(pixels[0] * pixels[1])
    return min(TIER_SIDE_PX, key=lambda t: abs(math.log(TIER_SIDE_PX[t] / side)))


def dimensions(request: ImageRequest, multiple_px: int = 16) -> tuple[int, int] | None:
    """(width, height) in pixels: a WxH size, else the ratio at the tier's area (1K = 1024x1024 pixels)."""
    pixels = pixel_size(request)
    if pixels:
        return pixels
    ratio = aspect_ratio(request)
    if ratio is None:
        return None
    side = TIER_SIDE_PX.get(tier(request) or "1K", 1024)
    value = _ratio_value(ratio)
    width, height = side * math.sqrt(value), side / math.sqrt(value)
    return (
        max(multiple_px, round(width / multiple_px) * multiple_px),
        max(multiple_px, round(height / multiple_px) * multiple_px),
    )

"""Intervals for shares: Wilson's score interval for one proportion, Newcombe's for a difference."""

from __future__ import annotations

import math
from functools import lru_cache

from scipy.stats import norm


@lru_cache(maxsize=16)
def _z(confidence: float) -> float:
    """The two-sided normal quantile (scipy's ppf costs ~0.1 ms a call; a report asks thousands)."""
    return float(norm.ppf(1 - (1 - confidence) / 2))


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for successes / n (ties may count as half successes); NaNs when n is 0.

    Chosen over the normal ("Wald") interval because it stays inside [0, 1] and keeps its coverage
    at the small counts a self-hosted arena has (a share of 9 out of 10 still gets a real interval).
    """
    if n <= 0:
        return math.nan, math.nan
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half_width = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # The interval holds p itself (rounding puts the bound of 0 of n a hair above 0 otherwise).
    return max(0.0, min(centre - half_width, p)), min(1.0, max(centre + half_width, p))


def difference_interval(
    successes_a: float, n_a: float, successes_b: float, n_b: float, confidence: float = 0.95
) -> tuple[float, float, float]:
    """p_a − p_b and Newcombe's hybrid score interval for it (his method 10, from two Wilson intervals).

    NaNs when either side has no trials.
    """
    if n_a <= 0 or n_b <= 0:
        return math.nan, math.nan, math.nan
    p_a, p_b = successes_a / n_a, successes_b / n_b
    low_a, high_a = wilson_interval(successes_a, n_a, confidence)
    low_b, high_b = wilson_interval(successes_b, n_b, confidence)
    difference = p_a - p_b
    lower = difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    upper = difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return difference, max(-1.0, lower), min(1.0, upper)

"""Which battle to show next: a pure choice from the pool, the vote counts and the ratings' uncertainty.

The rule, published in the README: pick a challenge with probability mixing 1/(1 + its votes) (fewer
votes first) with a uniform floor; inside it, pick a pair of models with probability mixing how
uncertain their order is with a uniform floor; then one unseen output of each model at random.
Images this voter has already seen are never eligible. The weights used are returned for the log.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations

FLOOR = 0.25  # the share of draws that ignores the weights: every challenge and pair keeps getting votes
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Output:
    """One successful output that can be shown: the original's hash and the derivative served."""

    challenge: str
    model: str
    provider: str
    image: str  # sha256 of the original output
    view: str  # sha256 of its blind derivative


@dataclass(frozen=True)
class Choice:
    """A battle to issue: two outputs of different models (not yet sided) and the weights used."""

    challenge: str
    first: Output
    second: Output
    weights: dict


def order_uncertainty(
    ratings: Mapping[str, tuple[float, float, float]], confidence: float = 0.95
) -> dict:
    """P(the two models' order is wrong) for every pair of rated models: 0.5 is a coin flip.

    `ratings` maps a model to (rating, lower, upper) of its interval at `confidence`; the rating
    difference over the combined standard error gives the chance that the sign is wrong.
    """
    z = Z_95 if confidence == 0.95 else _z(confidence)
    result = {}
    for (a, (ra, la, ua)), (b, (rb, lb, ub)) in combinations(sorted(ratings.items()), 2):
        se = math.hypot((ua - la) / (2 * z), (ub - lb) / (2 * z))
        result[(a, b)] = 0.5 if se <= 0 else 0.5 * math.erfc(abs(ra - rb) / se / math.sqrt(2))
    return result


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _mix(weights: list[float], floor: float) -> list[float]:
    """Probabilities: `floor` spread evenly, the rest in proportion to the weights."""
    total = sum(weights)
    n = len(weights)
    if total <= 0:
        return [1.0 / n] * n
    return [floor / n + (1 - floor) * w / total for w in weights]


def choose_battle(
    outputs: Iterable[Output],
    *,
    challenge_votes: Mapping[str, int],
    uncertainty: Mapping[str, Mapping[tuple[str, str], float]],
    seen: set[str],
    rng: random.Random,
    floor: float = FLOOR,
) -> Choice | None:
    """The next battle for a voter who has seen the images in `seen` (original hashes); None if none is left.

    `uncertainty` maps a challenge to P(order wrong) by pair in name order (from the board of the
    challenge's task); a pair missing from it (a model without a rating yet) counts as 0.5.
    """
    by_challenge: dict[str, dict[str, list[Output]]] = {}
    for output in outputs:
        if output.image not in seen:
            by_challenge.setdefault(output.challenge, {}).setdefault(output.model, []).append(
                output
            )
    eligible = sorted(c for c, models in by_challenge.items() if len(models) >= 2)
    if not eligible:
        return None
    challenge_p = _mix([1.0 / (1 + challenge_votes.get(c, 0)) for c in eligible], floor)
    index = rng.choices(range(len(eligible)), weights=challenge_p)[0]
    challenge = eligible[index]
    models = by_challenge[challenge]
    pairs = list(combinations(sorted(models), 2))
    pair_u = [uncertainty.get(challenge, {}).get(pair, 0.5) for pair in pairs]
    pair_p = _mix(pair_u, floor)
    pick = rng.choices(range(len(pairs)), weights=pair_p)[0]
    a, b = pairs[pick]
    first, second = rng.choice(models[a]), rng.choice(models[b])
    weights = {
        "rule": "challenge ~ floor/n + (1-floor)*(1/(1+votes)); pair ~ floor/n + (1-floor)*P(order wrong)",
        "floor": floor,
        "challenge_votes": challenge_votes.get(challenge, 0),
        "challenge_p": round(challenge_p[index], 6),
        "challenges_eligible": len(eligible),
        "pair_uncertainty": round(pair_u[pick], 6),
        "pair_p": round(pair_p[pick], 6),
        "pairs_eligible": len(pairs),
    }
    return Choice(challenge=challenge, first=first, second=second, weights=weights)


def counterbalanced_side(issued: int, a_left: int, coin: bool) -> bool:
    """Whether the name-first model of a pair goes left: the side shown less often so far, else the coin.

    This is the rule the store applies atomically (arena.votepath.VotePath.issue_battle); kept here so it can
    be tested and read in one place.
    """
    if 2 * a_left < issued:
        return True
    if 2 * a_left > issued:
        return False
    return coin

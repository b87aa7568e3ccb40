"""Which battle to show next, and which comparisons a judge is asked next: pure choices from the
pool, the vote counts and the ratings' uncertainty.

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


# --- judges: which comparisons to ask next ------------------------------------------------------
#
# A judge is asked where its own board is least certain: pairs of units (models, or routes of one
# model) ordered by how much their intervals overlap, unrated units first; a pair stops being asked
# once the interval of its rating difference is narrower than the judge's stop_interval_elo
# (GenArena's rule, 15 Elo). Within a pair, output pairs humans voted on come first (so the judge's
# agreement with them can be measured), then the rest in a seeded random order.


@dataclass(frozen=True)
class Comparison:
    """Two outputs of one challenge a judge may be asked about, named by the units rated.

    `board` says which board rates the units: "model" (two different models) or "route" (one model
    on two providers: units are "model@provider"). `key` is the caller's id for the comparison.
    """

    key: str
    task: str
    board: str
    unit_a: str
    unit_b: str
    human_voted: bool = False

    @property
    def pair(self) -> tuple[str, str, str, str]:
        """(board, task, unit, unit) with the units in name order: the pair the board rates."""
        low, high = sorted((self.unit_a, self.unit_b))
        return (self.board, self.task, low, high)


Ratings = Mapping[tuple[str, str], Mapping[str, tuple[float, float, float]]]


def difference_interval_elo(
    a: tuple[float, float, float], b: tuple[float, float, float], confidence: float = 0.95
) -> float:
    """The width of the interval of a - b: the two half-widths combined as standard errors
    (as order_uncertainty does), `a` and `b` being (rating, lower, upper) at `confidence`."""
    z = Z_95 if confidence == 0.95 else _z(confidence)
    se = math.hypot((a[2] - a[1]) / (2 * z), (b[2] - b[1]) / (2 * z))
    return 2 * z * se


def pair_priority(ratings: Ratings, pair: tuple[str, str, str, str]) -> float:
    """How uncertain a pair's order is on its board: the overlap of the two intervals in Elo
    (negative when they are apart); infinity when either unit has no rating yet."""
    board, task, a, b = pair
    table = ratings.get((board, task), {})
    if a not in table or b not in table:
        return math.inf
    (_, la, ua), (_, lb, ub) = table[a], table[b]
    return min(ua, ub) - max(la, lb)


def pair_settled(
    ratings: Ratings, pair: tuple[str, str, str, str], stop_interval_elo: float
) -> bool:
    """Whether a pair needs no more verdicts: both rated and the interval of their difference
    narrower than `stop_interval_elo`."""
    board, task, a, b = pair
    table = ratings.get((board, task), {})
    if a not in table or b not in table:
        return False
    values = (table[a], table[b])
    if not all(math.isfinite(v) for rating in values for v in rating):
        return False
    return difference_interval_elo(*values) < stop_interval_elo


def choose_comparisons(
    candidates: Iterable[Comparison],
    ratings: Ratings,
    *,
    stop_interval_elo: float,
    limit: int,
    rng: random.Random,
) -> list[Comparison]:
    """Up to `limit` comparisons to ask next, from the unsettled pairs, most uncertain first.

    Pairs take turns in priority order (one comparison each per turn), so a batch spreads over the
    least certain pairs instead of spending itself on one. Within a pair: human-voted comparisons
    first, then the others, each group in a random order drawn from `rng`.
    """
    groups: dict[tuple[str, str, str, str], list[Comparison]] = {}
    for comparison in sorted(candidates, key=lambda c: c.key):
        groups.setdefault(comparison.pair, []).append(comparison)
    queues = []
    for pair in sorted(groups):
        if pair_settled(ratings, pair, stop_interval_elo):
            continue
        voted = [c for c in groups[pair] if c.human_voted]
        others = [c for c in groups[pair] if not c.human_voted]
        rng.shuffle(voted)
        rng.shuffle(others)
        queues.append((-pair_priority(ratings, pair), pair, voted + others))
    queues.sort(key=lambda item: (item[0], item[1]))
    chosen: list[Comparison] = []
    turn = 0
    while len(chosen) < limit and any(turn < len(queue) for _, _, queue in queues):
        for _, _, queue in queues:
            if turn < len(queue) and len(chosen) < limit:
                chosen.append(queue[turn])
        turn += 1
    return chosen


def unsettled_pairs(
    candidates: Iterable[Comparison], ratings: Ratings, stop_interval_elo: float
) -> int:
    """How many pairs among the candidates still need verdicts."""
    pairs = {c.pair for c in candidates}
    return sum(not pair_settled(ratings, pair, stop_interval_elo) for pair in pairs)

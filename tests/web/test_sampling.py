"""The sampling rule: fewer-voted challenges and uncertain pairs first, a uniform floor, never a seen image."""

from __future__ import annotations

import random
from collections import Counter

from arena.sampling import Output, choose_battle, counterbalanced_side, order_uncertainty


def _outputs(challenges=("c1", "c2"), models=("m1", "m2", "m3"), samples=2) -> list[Output]:
    return [
        Output(challenge=c, model=m, provider="p", image=f"{c}-{m}-{s}", view=f"v-{c}-{m}-{s}")
        for c in challenges
        for m in models
        for s in range(samples)
    ]


def _draw(n: int, **kwargs) -> list:
    rng = random.Random(7)
    outputs = kwargs.pop("outputs", None) or _outputs()
    options = {"challenge_votes": {}, "uncertainty": {}, "seen": set(), **kwargs}
    return [choose_battle(outputs, rng=rng, **options) for _ in range(n)]


def test_challenges_with_fewer_votes_come_first_but_none_starves():
    choices = Counter(c.challenge for c in _draw(4000, challenge_votes={"c1": 0, "c2": 99}))
    # weights 1 and 1/100, floor 0.25 over two: p(c2) = 0.125 + 0.75 * 0.0099 ≈ 0.132
    assert 0.11 < choices["c2"] / 4000 < 0.155


def test_pairs_whose_order_is_uncertain_are_drawn_more_and_the_floor_keeps_the_rest():
    uncertain = {"c1": {("m1", "m2"): 0.5, ("m1", "m3"): 0.001, ("m2", "m3"): 0.001}}
    draws = _draw(4000, outputs=_outputs(challenges=("c1",)), uncertainty=uncertain)
    pairs = Counter(tuple(sorted((c.first.model, c.second.model))) for c in draws)
    share = pairs[("m1", "m3")] / 4000  # floor/3 + 0.75 * 0.001/0.502 ≈ 0.085
    assert 0.07 < share < 0.10
    assert pairs[("m1", "m2")] / 4000 > 0.75


def test_seen_images_are_never_drawn_and_an_exhausted_pool_gives_none():
    outputs = _outputs(challenges=("c1",), samples=2)
    seen = {"c1-m1-0", "c1-m2-0", "c1-m3-1"}
    for choice in _draw(50, outputs=outputs, seen=seen):
        assert {choice.first.image, choice.second.image}.isdisjoint(seen)
        assert choice.first.model != choice.second.model
    assert _draw(1, outputs=outputs, seen=seen | {"c1-m1-1", "c1-m2-1"}) == [
        None
    ]  # only m3 is left
    only_one_model = [o for o in outputs if o.model == "m1"]
    assert _draw(1, outputs=only_one_model) == [None]


def test_the_weights_used_are_returned_for_the_log():
    choice = _draw(1, challenge_votes={"c1": 3})[0]
    assert choice.weights["floor"] == 0.25 and 0 < choice.weights["challenge_p"] <= 1
    assert choice.weights["pairs_eligible"] == 3 and choice.weights["pair_uncertainty"] == 0.5


def test_order_uncertainty_is_a_half_for_equal_ratings_and_vanishes_for_distant_ones():
    u = order_uncertainty({"a": (1000, 950, 1050), "b": (1000, 950, 1050), "c": (1400, 1390, 1410)})
    assert u[("a", "b")] == 0.5
    assert u[("a", "c")] < 1e-6
    # one standard error apart: P(wrong sign) = Phi(-1) ≈ 0.1587
    se = 50 / 1.959963984540054
    one_se = order_uncertainty(
        {"a": (0, -50, 50), "b": (se * 2**0.5, se * 2**0.5 - 50, se * 2**0.5 + 50)}
    )
    assert abs(one_se[("a", "b")] - 0.158655) < 1e-4


def test_counterbalancing_takes_the_side_shown_less_often_else_the_coin():
    assert counterbalanced_side(issued=3, a_left=1, coin=False) is True
    assert counterbalanced_side(issued=3, a_left=2, coin=True) is False
    assert counterbalanced_side(issued=2, a_left=1, coin=True) is True
    assert counterbalanced_side(issued=2, a_left=1, coin=False) is False

"""sampling.choose_comparisons: least certain pairs first, settled pairs never, human-voted first."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from arena.sampling import (
    Z_95,
    Comparison,
    choose_comparisons,
    difference_interval_elo,
    pair_priority,
    pair_settled,
    unsettled_pairs,
)

UNITS = ["m0", "m1", "m2", "m3", "m4"]


@st.composite
def scenarios(draw):
    """Candidates over a few models of one task, and a board rating some of them."""
    n = draw(st.integers(0, 30))
    candidates = []
    for i in range(n):
        a, b = draw(st.lists(st.sampled_from(UNITS), min_size=2, max_size=2, unique=True))
        candidates.append(
            Comparison(
                key=f"k{i:03d}",
                task="edit",
                board="model",
                unit_a=a,
                unit_b=b,
                human_voted=draw(st.booleans()),
            )
        )
    table = {}
    for unit in draw(st.lists(st.sampled_from(UNITS), unique=True)):
        rating = draw(st.floats(800, 1200))
        half = draw(st.floats(0.5, 200))
        table[unit] = (rating, rating - half, rating + half)
    stop = draw(st.floats(1, 300))
    limit = draw(st.integers(0, 40))
    return candidates, {("model", "edit"): table}, stop, limit


@given(scenarios(), st.integers(0, 2**32 - 1))
@settings(max_examples=300)
def test_a_batch_is_distinct_unsettled_candidates_up_to_the_limit(scenario, seed):
    candidates, ratings, stop, limit = scenario
    chosen = choose_comparisons(
        candidates, ratings, stop_interval_elo=stop, limit=limit, rng=random.Random(seed)
    )
    open_ = [c for c in candidates if not pair_settled(ratings, c.pair, stop)]
    assert len({c.key for c in chosen}) == len(chosen) <= limit
    assert set(chosen) <= set(open_)
    assert len(chosen) == min(limit, len(open_))  # nothing open is held back while room is left
    assert chosen == choose_comparisons(
        candidates, ratings, stop_interval_elo=stop, limit=limit, rng=random.Random(seed)
    )


@given(scenarios(), st.integers(0, 2**32 - 1))
@settings(max_examples=300)
def test_the_least_certain_pair_goes_first_and_human_voted_lead_within_a_pair(scenario, seed):
    candidates, ratings, stop, limit = scenario
    chosen = choose_comparisons(
        candidates, ratings, stop_interval_elo=stop, limit=limit, rng=random.Random(seed)
    )
    open_ = [c for c in candidates if not pair_settled(ratings, c.pair, stop)]
    if chosen:
        top = max(pair_priority(ratings, c.pair) for c in open_)
        assert pair_priority(ratings, chosen[0].pair) == top  # unrated (inf) pairs first
    for pair in {c.pair for c in chosen}:
        taken = [c for c in chosen if c.pair == pair]
        voted = sum(c.human_voted for c in open_ if c.pair == pair)
        assert all(c.human_voted for c in taken[:voted])


@given(scenarios())
def test_pairs_take_turns_so_a_batch_spreads_over_the_open_pairs(scenario):
    candidates, ratings, stop, limit = scenario
    chosen = choose_comparisons(
        candidates, ratings, stop_interval_elo=stop, limit=limit, rng=random.Random(0)
    )
    counts = {}
    for c in chosen:
        counts[c.pair] = counts.get(c.pair, 0) + 1
    available = {}
    for c in candidates:
        if not pair_settled(ratings, c.pair, stop):
            available[c.pair] = available.get(c.pair, 0) + 1
    if counts:
        # a pair gets a second turn only once every open pair had its first
        most = max(counts.values())
        assert all(counts.get(p, 0) >= min(n, most - 1) for p, n in available.items())


@given(st.floats(0.1, 500), st.floats(0.1, 500), st.floats(700, 1300), st.floats(700, 1300))
def test_the_difference_interval_combines_half_widths_as_standard_errors(ha, hb, ra, rb):
    width = difference_interval_elo((ra, ra - ha, ra + ha), (rb, rb - hb, rb + hb))
    assert math.isclose(width, 2 * math.hypot(ha, hb), rel_tol=1e-9)
    assert (
        max(2 * ha, 2 * hb) <= width + 1e-9 <= 2 * (ha + hb) + 1e-6
    )  # wider than either, not the sum
    se = math.hypot(ha / Z_95, hb / Z_95)
    assert math.isclose(width, 2 * Z_95 * se, rel_tol=1e-9)


def test_a_pair_stops_once_its_difference_interval_is_under_the_stop_width():
    pair = ("model", "edit", "a", "b")
    wide = {("model", "edit"): {"a": (1000, 990, 1010), "b": (1000, 990, 1010)}}  # width 28.3
    narrow = {("model", "edit"): {"a": (1000, 995, 1005), "b": (1000, 995, 1005)}}  # 14.1
    assert not pair_settled(wide, pair, 15) and pair_settled(narrow, pair, 15)
    assert not pair_settled({("model", "edit"): {"a": (1000, 995, 1005)}}, pair, 15)  # b unrated
    assert pair_priority(wide, pair) == 20 and pair_priority({}, pair) == math.inf
    apart = {("model", "edit"): {"a": (1200, 1190, 1210), "b": (1000, 990, 1010)}}
    assert pair_priority(apart, pair) == -180  # disjoint intervals: negative overlap
    c = Comparison("k", "edit", "model", "b", "a")
    assert unsettled_pairs([c], narrow, 15) == 0 and unsettled_pairs([c], wide, 15) == 1
    assert (
        choose_comparisons([c], narrow, stop_interval_elo=15, limit=5, rng=random.Random(0)) == []
    )


def test_route_pairs_are_rated_on_the_route_board_only():
    c = Comparison("k", "edit", "route", "m@p1", "m@p2")
    model_board = {("model", "edit"): {"m@p1": (1000, 999, 1001), "m@p2": (1000, 999, 1001)}}
    assert not pair_settled(model_board, c.pair, 15)
    route_board = {("route", "edit"): model_board[("model", "edit")]}
    assert pair_settled(route_board, c.pair, 15)

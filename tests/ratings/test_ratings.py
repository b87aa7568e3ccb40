"""Leaderboards: options, the issue's edge cases, ranks, boards per task/category, text and JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from arena.cli.tables import board_table, boards_renderables, plain
from arena.errors import VoteDataError
from arena.ratings import (
    BOARD_COLUMNS,
    RatingOptions,
    board_records,
    boards_records,
    compute_board,
    compute_boards,
    tally_votes,
)
from arena.ratings.frames import read_votes_file
from ratings.synth import draw_votes, votes_frame

CLOSED = RatingOptions(intervals="closed_form")


def ratings_of(board: pd.DataFrame) -> dict[str, float]:
    return dict(zip(board["model"], board["rating"], strict=True))


def cycle_votes() -> list[tuple[str, str, str]]:
    """Three models that each beat the next more often than not: every MLE is finite."""
    return (
        [("a", "b", "left")] * 6
        + [("a", "b", "right")] * 3
        + [("b", "c", "left")] * 5
        + [("b", "c", "right")] * 4
        + [("c", "a", "left")] * 2
        + [("c", "a", "right")] * 5
        + [("a", "c", "tie")] * 3
        + [("b", "a", "both_bad")] * 2
    )


def test_board_columns_order_and_centre():
    board = compute_board(votes_frame(cycle_votes()), RatingOptions(bootstrap_rounds=200))
    assert tuple(board.columns) == BOARD_COLUMNS
    assert board["rating"].is_monotonic_decreasing
    assert board["rating"].mean() == pytest.approx(1000.0)
    assert (board["lower"] <= board["rating"]).all() and (board["rating"] <= board["upper"]).all()
    assert board.loc[
        board["model"] == "a", ["wins", "losses", "ties", "both_bad", "votes"]
    ].values.tolist() == [[6 + 5, 3 + 2, 3, 2, 21]]
    assert board.attrs["votes"] == len(cycle_votes()) and board.attrs["comparable"]


def test_anchor_pins_the_model_and_shifts_the_rest():
    votes = votes_frame(cycle_votes())
    centred = compute_board(votes, CLOSED)
    anchored = compute_board(
        votes, RatingOptions(intervals="closed_form", anchor="b", anchor_rating=1200.0)
    )
    row = anchored.set_index("model").loc["b"]
    assert row["rating"] == pytest.approx(1200.0) and row["lower"] == row["upper"] == pytest.approx(
        1200.0
    )
    gaps = {m: r - ratings_of(centred)["b"] for m, r in ratings_of(centred).items()}
    for model, rating in ratings_of(anchored).items():
        assert rating == pytest.approx(1200.0 + gaps[model])
    with pytest.raises(VoteDataError, match="anchor model 'zeta' has no votes"):
        compute_board(votes, RatingOptions(anchor="zeta"))


def test_no_ties_at_all_davidson_equals_plain_bradley_terry():
    rows = [(left, right, o) for left, right, o in cycle_votes() if o in ("left", "right")]
    half = compute_board(votes_frame(rows), CLOSED)
    davidson = compute_board(
        votes_frame(rows), RatingOptions(ties="davidson", intervals="closed_form")
    )
    assert half["ties"].sum() == 0
    for model, rating in ratings_of(half).items():
        assert ratings_of(davidson)[model] == pytest.approx(rating, abs=1e-6)


def test_both_tie_spellings_from_a_file_give_the_canonical_board(tmp_path):
    lines = ["model_a,model_b,winner"]
    spelled = {"left": "model_a", "right": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}
    lines += [f"{left},{right},{spelled[o]}" for left, right, o in cycle_votes()]
    (tmp_path / "v.csv").write_text("\n".join(lines) + "\n")
    from_file = compute_board(read_votes_file(tmp_path / "v.csv"), CLOSED)
    canonical = compute_board(votes_frame(cycle_votes()), CLOSED)
    pd.testing.assert_frame_equal(from_file, canonical)
    both_bad_as_word = (tmp_path / "v.csv").read_text().replace("tie (bothbad)", "both_bad")
    (tmp_path / "w.csv").write_text(both_bad_as_word)
    pd.testing.assert_frame_equal(
        compute_board(read_votes_file(tmp_path / "w.csv"), CLOSED), canonical
    )


def test_tie_options_change_what_the_fit_sees():
    rows = cycle_votes()
    dropped = compute_board(votes_frame(rows), RatingOptions(ties="drop", intervals="closed_form"))
    decisive_only = compute_board(
        votes_frame([v for v in rows if v[2] in ("left", "right")]), CLOSED
    )
    assert ratings_of(dropped) == pytest.approx(ratings_of(decisive_only))
    as_tie = compute_board(votes_frame(rows), CLOSED)
    no_both_bad = compute_board(
        votes_frame(rows), RatingOptions(both_bad="drop", intervals="closed_form")
    )
    without = compute_board(votes_frame([v for v in rows if v[2] != "both_bad"]), CLOSED)
    assert ratings_of(no_both_bad) == pytest.approx(ratings_of(without))
    assert ratings_of(no_both_bad) != pytest.approx(ratings_of(as_tie))


def test_model_seen_only_on_one_side():
    rows = [("solo", "a", "left")] * 4 + [("solo", "a", "right")] * 3 + [("solo", "b", "tie")] * 2
    rows += [("solo", "b", "right")] + [("a", "b", "left")] * 3 + [("b", "a", "left")] * 2
    board = compute_board(votes_frame(rows), CLOSED)
    swapped = compute_board(
        votes_frame(
            [(right, left, {"left": "right", "right": "left"}.get(o, o)) for left, right, o in rows]
        ),
        CLOSED,
    )
    assert np.isfinite(board["rating"]).all() and np.isfinite(board["lower"]).all()
    assert ratings_of(board) == pytest.approx(ratings_of(swapped))
    assert board.set_index("model").loc["solo", "votes"] == 10


def test_disconnected_groups_are_reported_separately():
    rows = (
        cycle_votes() + [("x", "y", "left")] * 5 + [("x", "y", "right")] * 2 + [("y", "x", "tie")]
    )
    board = compute_board(votes_frame(rows), RatingOptions(bootstrap_rounds=100))
    groups = board.groupby("group")["model"].apply(set).to_dict()
    assert groups == {0: {"a", "b", "c"}, 1: {"x", "y"}}
    assert not board.attrs["comparable"] and board.attrs["groups"] == 2
    assert (
        "never met" in board.attrs["message"]
        and "not" not in board.attrs["message"].split(";")[0][:0]
    )
    for _, group in board.groupby("group"):
        assert group["rating"].mean() == pytest.approx(1000.0)
        assert group["rank"].min() == 1
    assert "never met" in plain(board_table(board))


@pytest.mark.parametrize("outcome", ["left", "right"])
def test_model_that_never_lost_or_never_won_is_finite_and_flagged(outcome):
    rows = (
        cycle_votes()
        + [("champ", "a", outcome)] * 6
        + [("b", "champ", {"left": "right", "right": "left"}[outcome])] * 4
    )
    board = compute_board(votes_frame(rows), RatingOptions(bootstrap_rounds=200)).set_index("model")
    champ = board.loc["champ"]
    assert np.isfinite([champ["rating"], champ["lower"], champ["upper"]]).all()
    assert champ["note"].startswith("never lost" if outcome == "left" else "never won")
    assert "prior" in champ["note"] and champ["preliminary"]
    others = board.drop(index="champ")
    extreme = (
        champ["rating"] > others["rating"].max()
        if outcome == "left"
        else champ["rating"] < others["rating"].min()
    )
    assert extreme


def test_one_vote():
    board = compute_board(votes_frame([("a", "b", "left")]), RatingOptions(bootstrap_rounds=50))
    assert board["model"].tolist() == ["a", "b"]
    assert np.isfinite(board["rating"]).all() and board["rating"].iloc[0] > board["rating"].iloc[1]
    assert board["preliminary"].all() and board["votes"].tolist() == [1, 1]


def test_only_ties_dropped_leaves_models_without_an_interval():
    board = compute_board(votes_frame([("a", "b", "tie")] * 3), RatingOptions(ties="drop"))
    assert board["rating"].tolist() == [1000.0, 1000.0] and board["lower"].isna().all()
    assert board["note"].eq("no decisive votes").all() and board.attrs["groups"] == 2
    assert json.dumps(board_records(board), allow_nan=False)


def test_no_votes_is_a_clear_error():
    empty = pd.DataFrame(columns=["model_left", "model_right", "outcome"])
    with pytest.raises(VoteDataError, match=r"^no votes to rate$"):
        compute_board(empty)
    flagged = votes_frame([("a", "b", "left")], flagged=True)
    with pytest.raises(VoteDataError, match=r"no votes to rate \(1 flagged votes excluded\)"):
        compute_board(flagged)
    with pytest.raises(VoteDataError, match=r"no votes to rate"):
        compute_boards(empty)


def test_unknown_outcome_names_the_row():
    rows = votes_frame([("a", "b", "left"), ("a", "b", "right"), ("a", "b", "win")])
    with pytest.raises(VoteDataError, match=r"row 3: unknown outcome 'win'"):
        compute_board(rows)


def test_flagged_votes_are_excluded():
    rows = cycle_votes()
    noise = [("c", "a", "left")] * 20
    flagged = votes_frame(rows + noise, flagged=[False] * len(rows) + [True] * len(noise))
    board = compute_board(flagged, CLOSED)
    pd.testing.assert_frame_equal(
        board.drop(columns=[]), compute_board(votes_frame(rows), CLOSED), check_like=True
    )
    assert board.attrs["flagged_excluded"] == 20


def test_rank_is_one_plus_models_clearly_above():
    strengths = np.array([1.5, 1.45, 0.6, 0.0, -0.02, -1.0])
    board = compute_board(draw_votes(strengths, 3000, seed=3), CLOSED)
    for row in board.itertuples():
        clearly_above = (board["lower"] > row.upper).sum()
        assert row.rank == 1 + clearly_above
    assert (
        board["rank"].iloc[0] == 1 and board["rank"].iloc[1] == 1
    )  # an overlapping pair shares rank 1
    assert board["rank"].is_monotonic_increasing and board["rank"].iloc[-1] > 3


def test_preliminary_below_min_votes():
    board = compute_board(
        votes_frame(cycle_votes()), RatingOptions(intervals="closed_form", min_votes=20)
    )
    assert dict(zip(board["model"], board["preliminary"], strict=True)) == {
        "a": False,
        "b": False,
        "c": True,
    }
    assert (board.set_index("model")["votes"] == pd.Series({"a": 21, "b": 20, "c": 19})).all()


def test_bootstrap_is_seeded():
    votes = draw_votes(np.array([0.4, 0.0, -0.4, 0.1]), 400, seed=1)
    first = compute_board(votes, RatingOptions(bootstrap_rounds=300, seed=7))
    again = compute_board(votes, RatingOptions(bootstrap_rounds=300, seed=7))
    other = compute_board(votes, RatingOptions(bootstrap_rounds=300, seed=8))
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["lower"], other["lower"])
    assert np.allclose(first["rating"], other["rating"])


def test_bootstrap_and_closed_form_intervals_agree_on_a_large_arena():
    votes = draw_votes(np.linspace(-1, 1, 8), 40_000, seed=5)
    boot = compute_board(votes, RatingOptions(bootstrap_rounds=1000)).set_index("model")
    closed = compute_board(votes, CLOSED).set_index("model")
    width_ratio = (boot["upper"] - boot["lower"]) / (closed["upper"] - closed["lower"])
    assert width_ratio.between(0.85, 1.15).all(), width_ratio


def test_davidson_reports_on_the_same_scale():
    votes = draw_votes(np.linspace(-1, 1, 5), 5000, seed=2)
    half = compute_board(votes, CLOSED).set_index("model")
    davidson = compute_board(
        votes, RatingOptions(ties="davidson", intervals="closed_form")
    ).set_index("model")
    assert (davidson["rating"].rank() == half["rating"].rank()).all()
    assert np.abs(davidson["rating"] - half["rating"]).max() < 60


def test_boards_per_task_and_category():
    t2i = draw_votes(np.array([0.5, 0.0, -0.5]), 300, seed=1)
    edit = draw_votes(np.array([0.3, -0.3]), 200, seed=2).assign(task="edit")
    edit.loc[:99, "category"] = "portrait"
    votes = pd.concat([t2i, edit], ignore_index=True)
    boards = compute_boards(votes, CLOSED)
    assert list(boards) == [("text-to-image", None), ("edit", None)]
    assert len(boards[("edit", None)]) == 2 and boards[("edit", None)]["votes"].sum() == 2 * 200
    by_category = compute_boards(votes, CLOSED, by="category")
    assert list(by_category) == [
        ("text-to-image", "general"),
        ("edit", "general"),
        ("edit", "portrait"),
    ]
    assert by_category[("edit", "portrait")].attrs["votes"] == 100
    by_challenge = compute_boards(votes, CLOSED, by="challenge")
    assert list(by_challenge) == [("text-to-image", "synthetic"), ("edit", "synthetic")]
    with pytest.raises(ValueError, match="by must be one of"):
        compute_boards(votes, CLOSED, by="voter")


def test_text_and_json_output():
    votes = votes_frame(cycle_votes())
    board = compute_board(votes, CLOSED)
    text = plain(board_table(board))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["rank", "model", "rating"]
    for model in board["model"]:
        assert any(f" {model} " in line for line in lines)
    assert len({line.index("rating") if "rating" in line else None for line in lines[:1]}) == 1
    records = board_records(board)
    assert [r["model"] for r in records] == board["model"].tolist()
    assert {"model", "rating", "lower", "upper", "rank", "votes"} <= set(records[0])
    assert isinstance(records[0]["rank"], int) and isinstance(records[0]["preliminary"], bool)
    boards = compute_boards(votes, CLOSED, by="category")
    payload = json.loads(json.dumps(boards_records(boards, by="category"), allow_nan=False))
    assert payload[0]["task"] == "text-to-image" and payload[0]["key"] == "uncategorized"
    assert "text-to-image · category: uncategorized" in plain(
        boards_renderables(boards, by="category")
    )


def test_invalid_options_are_rejected():
    with pytest.raises(ValueError, match="ties"):
        RatingOptions(ties="sometimes")
    with pytest.raises(ValueError, match="intervals"):
        RatingOptions(intervals="bayes")


def test_tally_is_unordered_and_counts_flags():
    tally = tally_votes(
        votes_frame(
            [("b", "a", "left"), ("a", "b", "left"), ("a", "b", "tie")],
            flagged=[False, False, True],
        )
    )
    assert tally.models.tolist() == ["a", "b"] and tally.flagged == 1
    assert tally.outcomes.tolist() == [[1.0, 1.0, 0.0, 0.0]]


@pytest.mark.parametrize("n_models", [6, 1100])  # 1,100 models take the sparse counting path
def test_tally_matches_a_plain_count(n_models):
    rng = np.random.default_rng(n_models)
    left = rng.integers(0, n_models, 4000)
    right = (left + rng.integers(1, n_models, 4000)) % n_models
    outcome = rng.choice(["left", "right", "tie", "both_bad"], 4000)
    names = np.array([f"m{k:04d}" for k in range(n_models)], dtype=object)
    votes = votes_frame(list(zip(names[left], names[right], outcome, strict=True)))
    tally = tally_votes(votes)
    expected: dict[tuple[str, str], list[int]] = {}
    for a, b, o in zip(names[left], names[right], outcome, strict=True):
        low, high = sorted((a, b))
        column = {"tie": 2, "both_bad": 3}.get(o, 0 if (o == "left") == (a == low) else 1)
        expected.setdefault((low, high), [0, 0, 0, 0])[column] += 1
    got = {
        (tally.models[i], tally.models[j]): row.astype(int).tolist()
        for i, j, row in zip(tally.i, tally.j, tally.outcomes, strict=True)
    }
    assert got == expected


def test_categorical_model_columns_give_the_same_board():
    votes = votes_frame(cycle_votes())
    categorical = votes.assign(
        model_left=pd.Categorical(votes["model_left"], categories=["a", "b", "c", "unused"]),
        model_right=pd.Categorical(votes["model_right"], categories=["c", "b", "a", "unused"]),
    )
    pd.testing.assert_frame_equal(compute_board(categorical, CLOSED), compute_board(votes, CLOSED))


def test_missing_model_name_names_the_row():
    votes = votes_frame([("a", "b", "left"), (None, "b", "left")])
    with pytest.raises(VoteDataError, match=r"row 2: missing model name in model_left"):
        compute_board(votes)


def test_votes_without_a_category_land_on_the_default_board():
    votes = votes_frame(cycle_votes(), category=None)
    votes.loc[:4, "category"] = "art"
    boards = compute_boards(votes, CLOSED, by="category")
    assert sorted(key for _, key in boards) == ["art", "uncategorized"]
    assert sum(board.attrs["votes"] for board in boards.values()) == len(votes)


def test_tally_counts_exactly_from_text_and_categorical_columns():
    """Equal strings held by different objects, missing names in flagged rows and categorical
    columns (how the store hands large tables over) all count exactly as by value."""
    rng = np.random.default_rng(5)
    n = 20_000
    names = np.array([f"model-{k}" for k in range(6)], dtype=object)
    left = rng.integers(0, 6, n)
    right = (left + rng.integers(1, 6, n)) % 6
    outcome_names = np.array(["left", "right", "tie", "both_bad"], dtype=object)
    outcome = rng.integers(0, 4, n)
    left_labels, right_labels = names[left], names[right]
    copies = rng.random(n) < 0.02  # the same names as new str objects
    left_labels[copies] = ["".join(list(name)) for name in left_labels[copies]]
    flagged = rng.random(n) < 0.05
    right_labels[np.flatnonzero(flagged)[:3]] = None
    votes = pd.DataFrame(
        {
            "model_left": left_labels,
            "model_right": right_labels,
            "outcome": outcome_names[outcome],
            "flagged": flagged,
        }
    )
    tally = tally_votes(votes)
    expected: dict[tuple[str, str], list[int]] = {}
    for a, b, o in zip(
        names[left][~flagged], names[right][~flagged], outcome[~flagged], strict=True
    ):
        low, high = sorted((a, b))
        column = o if o >= 2 else (o if a == low else 1 - o)
        expected.setdefault((low, high), [0, 0, 0, 0])[column] += 1
    got = {
        (tally.models[i], tally.models[j]): row.astype(int).tolist()
        for i, j, row in zip(tally.i, tally.j, tally.outcomes, strict=True)
    }
    assert got == expected and tally.flagged == flagged.sum()
    as_strings = votes.astype(
        {"model_left": "string", "model_right": "string", "outcome": "string"}
    )
    assert tally_votes(as_strings).outcomes.tolist() == tally.outcomes.tolist()
    as_categories = votes.astype(
        {"model_left": "category", "model_right": "category", "outcome": "category"}
    )
    assert tally_votes(as_categories).outcomes.tolist() == tally.outcomes.tolist()


def test_missing_outcome_names_the_row():
    votes = votes_frame([("a", "b", "left"), ("a", "b", "left")])
    votes.loc[1, "outcome"] = None
    with pytest.raises(VoteDataError, match=r"row 2: (missing|unknown) outcome"):
        compute_board(votes)

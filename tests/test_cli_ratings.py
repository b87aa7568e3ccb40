"""`arena ratings` from a released votes file and from the store."""

from __future__ import annotations

import json

import numpy as np
from support.judged import add_judge_calls, human_vote, judge_call, judge_vote
from support.store import add_votes

from arena import store
from arena.cli import main


def _votes_csv(path, n=400, seed=1):
    rng = np.random.default_rng(seed)
    strengths = {"alpha": 1.0, "beta": 0.0, "gamma": -1.0}
    names = list(strengths)
    lines = ["model_a,model_b,winner,task,challenge"]
    for _ in range(n):
        a, b = rng.choice(names, 2, replace=False)
        p = 1 / (1 + np.exp(strengths[b] - strengths[a]))
        r = rng.random()
        winner = "tie" if r < 0.15 else ("model_a" if r < 0.15 + 0.85 * p else "model_b")
        lines.append(f"{a},{b},{winner},edit,bald-man")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ratings_from_a_votes_file_rank_the_strongest_first(tmp_path, capsys):
    path = _votes_csv(tmp_path / "votes.csv")
    assert main(["ratings", "--votes", str(path), "--json", "--rounds", "200"]) == 0
    (board,) = json.loads(capsys.readouterr().out)
    assert board["task"] == "edit" and board["votes"] == 400
    models = {m["model"]: m for m in board["models"]}
    assert (
        models["alpha"]["rank"] == 1
        and models["alpha"]["rating"] > models["beta"]["rating"] > models["gamma"]["rating"]
    )
    for m in models.values():
        assert m["lower"] <= m["rating"] <= m["upper"] and {"votes", "rank"} <= set(m)
    assert main(["ratings", "--votes", str(path), "--rounds", "100"]) == 0
    text = capsys.readouterr().out
    assert "alpha" in text and "95%" in text


def test_ratings_with_no_votes_is_a_clear_message(tmp_path, capsys, monkeypatch):
    """No votes yet is not bad input (the README's next step after the demo): say so, exit 0."""
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "d"))
    assert main(["ratings"]) == 0
    captured = capsys.readouterr()
    assert "no votes yet" in captured.out and "arena serve" in captured.out and not captured.err


def test_ratings_from_the_store_by_challenge(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "d"))
    engine = store.open_engine(f"sqlite:///{tmp_path / 'd' / 'arena.db'}")
    rows = []
    for i in range(60):
        rows.append(
            {
                "battle_id": f"b{i}",
                "challenge": "night-sky" if i % 2 else "bald-man",
                "task": "edit",
                "category": "scene-edit",
                "model_left": "identity",
                "model_right": "night-grade",
                "outcome": "right" if i % 3 else "left",
                "voter": "v",
            }
        )
    add_votes(engine, rows)
    assert main(["ratings", "--by", "challenge", "--json", "--rounds", "100"]) == 0
    boards = json.loads(capsys.readouterr().out)
    assert {b["key"] for b in boards} == {"bald-man", "night-sky"} and all(
        b["by"] == "challenge" for b in boards
    )
    for b in boards:
        top = min(b["models"], key=lambda m: m["rank"])
        assert top["model"] == "night-grade"


def test_unknown_outcome_names_the_row(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("model_a,model_b,winner\na,b,model_a\na,b,maybe\n")
    assert main(["ratings", "--votes", str(path)]) == 2
    err = capsys.readouterr().err
    assert "maybe" in err and ("row 2" in err or "line 3" in err)


# --- whose votes, route boards, agreement ------------------------------------------------------

IDENTITY = ("identity", "local", "identity-out")
NIGHT = ("night-grade", "local", "night-out")


def _store(tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "d"))
    return store.open_engine(f"sqlite:///{tmp_path / 'd' / 'arena.db'}")


def _outputs(k):
    """The k-th pair of outputs of the two baselines (one per sample)."""
    return (IDENTITY[0], IDENTITY[1], f"identity-{k}"), (NIGHT[0], NIGHT[1], f"night-{k}")


def _known_answer_store(engine):
    """10 decisive human votes (night-grade wins 8); the judge agrees on 7, ties 1, disagrees on 2.

    The judge always prefers the image shown first, so each comparison's two asks disagree; its
    stored vote is whatever the scripted winner is (as if its final verdict came from elsewhere).
    """
    humans, judged, calls = [], [], []
    for k in range(10):
        identity, night = _outputs(k)
        human_winner = "right" if k < 8 else "left"  # night-grade (right) wins 8 of 10
        # Half the battles showed night-grade on the left: sides swapped, same verdicts.
        if k % 2:
            humans.append(human_vote(k, night, identity, "left" if k < 8 else "right"))
        else:
            humans.append(human_vote(k, identity, night, human_winner))
        human_pick = "other" if k < 8 else "one"  # in judge_vote's (identity, night) terms
        if k < 7:
            verdict = human_pick
        elif k == 7:
            verdict = "tie"
        else:
            verdict = "one" if human_pick == "other" else "other"
        judged.append(judge_vote("scripty", identity, night, verdict))
        for order in ("ab", "ba"):
            calls.append(judge_call("scripty", judged[-1]["battle_id"], order, order[0]))
    add_votes(engine, humans + judged)
    add_judge_calls(engine, calls)
    return humans, judged


def test_agreement_on_a_known_answer(tmp_path, capsys, monkeypatch):
    engine = _store(tmp_path, monkeypatch)
    _known_answer_store(engine)
    assert main(["ratings", "--agreement", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["human_votes"] == 10 and found["message"] == ""
    (judge,) = found["judges"]
    assert judge["judge"] == "judge:scripty" and judge["judge_votes"] == 10
    (row,) = judge["agreement"]
    assert (row["task"], row["human_decisive"], row["matched"], row["exact"]) == (
        "edit",
        10,
        10,
        10,
    )
    assert (row["agree"], row["disagree"], row["judge_tie"]) == (7, 2, 1)
    assert row["agreement"] == 0.7 and row["lower"] < 0.7 < row["upper"]
    (bias,) = judge["position_bias"]
    assert bias["first_share"] == 1.0 and bias["consistency"] == 0.0 and bias["comparisons"] == 10
    assert main(["ratings", "--agreement", "--by", "category"]) == 0
    text = capsys.readouterr().out
    assert (
        "judge:scripty" in text and "70%" in text and "Kendall" in text and "portrait-edit" in text
    )


def test_a_judge_board_that_rates_every_model_alike_has_no_tau(tmp_path, capsys, monkeypatch):
    engine = _store(tmp_path, monkeypatch)
    humans = [human_vote(k, *_outputs(k), "right") for k in range(6)]
    # one win each: the judge's board rates the two models alike, so no order to correlate
    judged = [
        judge_vote("scripty", *_outputs(0), "one"),
        judge_vote("scripty", *_outputs(1), "other"),
    ]
    add_votes(engine, humans + judged)
    assert main(["ratings", "--agreement"]) == 0
    text = capsys.readouterr().out
    (row,) = [
        line.split() for line in text.splitlines() if line.startswith("edit") and "all" in line
    ]
    assert row[:5] == ["edit", "all", "2", "-", "-"] and "nan" not in text


JUDGE_CONFIG = """
[providers.local]
protocol = "local"

[models.identity]
tasks = ["edit"]
providers.local = { model_id = "identity", price_usd = 0.0 }

[judges.scripty]
protocol = "openai-chat"
base_url = "http://127.0.0.1:9/v1"
model_id = "scripted-vlm"
"""


def test_voters_pick_whose_board(tmp_path, capsys, monkeypatch):
    engine = _store(tmp_path, monkeypatch)
    _known_answer_store(engine)
    assert main(["ratings", "--json", "--rounds", "50"]) == 0
    (humans,) = json.loads(capsys.readouterr().out)
    wins = {m["model"]: m["wins"] for m in humans["models"]}
    assert humans["votes"] == 10 and wins == {"night-grade": 8, "identity": 2}
    assert main(["ratings", "--voters", "judge:scripty", "--json", "--rounds", "50"]) == 0
    (judged,) = json.loads(capsys.readouterr().out)
    models = {m["model"]: m for m in judged["models"]}
    assert judged["votes"] == 10 and models["night-grade"]["ties"] == 1
    assert main(["ratings", "--voters", "all", "--json", "--rounds", "50"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["votes"] == 20


def test_voters_that_mean_nothing_are_one_line_each(tmp_path, capsys, monkeypatch):
    engine = _store(tmp_path, monkeypatch)
    _known_answer_store(engine)
    path = _votes_csv(tmp_path / "votes.csv", n=20)
    cases = [
        (["--voters", "judge:nobody"], ["judge:nobody", "human, judge:scripty"]),
        (["--voters", "robots"], ["--voters 'robots'", "judge:NAME"]),
        (["--votes", str(path), "--voters", "judges"], ["does not say who voted"]),
        (["--judge", "scripty"], ["goes with --agreement", "--voters judge:scripty"]),
        (["--agreement", "--by", "route"], ["not route"]),
        (["--agreement", "--votes", str(path)], ["holds no judge votes"]),
        (["--agreement", "--judge", "nobody"], ["judge:nobody", "human, judge:scripty"]),
        (["--votes", str(path), "--by", "route"], ["released votes file has none"]),
    ]
    for extra, words in cases:
        assert main(["ratings", *extra]) == 2, extra
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and not captured.out, (extra, captured)
        assert all(word in lines[0] for word in words), (extra, lines)


def test_no_votes_yet_names_the_voters_asked_for(tmp_path, capsys, monkeypatch):
    _store(tmp_path, monkeypatch)
    config = tmp_path / "arena.toml"
    config.write_text(JUDGE_CONFIG)
    expected = {
        "humans": "no votes yet from humans",
        "judges": "no votes yet from judges",
        "all": "no votes yet from anyone",
        "judge:scripty": "no votes yet from judge:scripty",
    }
    for voters, words in expected.items():
        assert main(["ratings", "--config", str(config), "--voters", voters]) == 0
        out = capsys.readouterr().out
        assert words in out, (voters, out)
    assert "arena judge --judge scripty" in out
    assert main(["ratings", "--config", str(config), "--agreement"]) == 0
    assert "no human votes to compare" in capsys.readouterr().out


def test_agreement_without_judge_votes_says_so(tmp_path, capsys, monkeypatch):
    engine = _store(tmp_path, monkeypatch)
    humans = [human_vote(k, *_outputs(k), "right") for k in range(5)]
    add_votes(engine, humans)
    assert main(["ratings", "--agreement"]) == 0
    captured = capsys.readouterr()
    assert (
        "no judge votes to compare with the humans" in captured.out
        and "arena judge" in captured.out
    )
    assert main(["ratings", "--agreement", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (
        found["judges"] == [] and found["human_votes"] == 5 and "no judge votes" in found["message"]
    )


def test_route_boards_and_the_route_test(tmp_path, capsys, monkeypatch):
    engine = _store(tmp_path, monkeypatch)
    rows = []
    for k in range(40):
        provider = "fal" if k % 2 else "xai"
        grok = ("grok-imagine-image", provider, f"grok-{k}")
        rival = ("gpt-image-1", "openai", f"gpt-{k}")
        outcome = "left" if k % 4 < 2 else "right"  # each route wins half against the rival
        rows.append(human_vote(k, grok, rival, outcome, task="text-to-image", challenge="fox"))
    add_votes(engine, rows)
    assert main(["ratings", "--by", "route", "--json", "--rounds", "50"]) == 0
    found = json.loads(capsys.readouterr().out)
    (board,) = found["boards"]
    assert board["by"] == "route" and {m["model"] for m in board["models"]} == {
        "grok-imagine-image@fal",
        "grok-imagine-image@xai",
        "gpt-image-1@openai",
    }
    (route,) = found["routes"]
    assert (route["route_a"], route["route_b"], route["n_a"], route["n_b"]) == (
        "fal",
        "xai",
        20,
        20,
    )
    assert route["verdict"] == "indistinguishable" and route["score_a"] == 0.5
    assert main(["ratings", "--by", "route", "--rounds", "50"]) == 0
    text = capsys.readouterr().out
    assert "text-to-image · routes (40 votes)" in text and "grok-imagine-image@fal" in text
    assert (
        "fal's grok-imagine-image is indistinguishable from xai's (50% vs 50% against "
        "1 common opponent, n=20 and 20)" in text
    )
    assert main(["ratings", "--by", "route", "--anchor", "gpt-image-1@openai", "--json"]) == 0
    anchored = json.loads(capsys.readouterr().out)["boards"][0]["models"]
    assert {m["model"]: m["rating"] for m in anchored}["gpt-image-1@openai"] == 1000.0


def test_the_store_s_boards_are_the_boards_of_its_vote_rows(tmp_path, capsys, monkeypatch):
    """`arena ratings` fits the votes the database counted; the same filters on the rows give
    the same JSON (flagged votes, a judge's votes and the other task left out alike)."""
    from arena.ratings import RatingOptions, boards_records, compute_boards

    engine = _store(tmp_path, monkeypatch)
    rng = np.random.default_rng(4)
    models = ["alpha", "beta", "gamma", "delta"]
    rows = []
    for k in range(600):
        left, right = rng.choice(models, 2, replace=False)
        rows.append(
            {
                "battle_id": f"b{k}",
                "challenge": "bald-man" if k % 2 else "night-sky",
                "task": "edit" if k % 3 else "text-to-image",
                "category": "portrait",
                "model_left": str(left),
                "model_right": str(right),
                "outcome": str(
                    rng.choice(["left", "right", "tie", "both_bad"], p=[0.45, 0.3, 0.15, 0.1])
                ),
                "voter": "v",
                "flagged": bool(k % 17 == 0),
                "voter_kind": "judge:lens" if k % 7 == 0 else "human",
            }
        )
    add_votes(engine, rows)
    args = [
        "--task",
        "edit",
        "--by",
        "challenge",
        "--anchor",
        "beta",
        "--rounds",
        "200",
        "--seed",
        "3",
    ]
    assert main(["ratings", *args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    votes = store.read_votes(engine)
    options = RatingOptions(anchor="beta", bootstrap_rounds=200, seed=3)
    expected = boards_records(
        compute_boards(votes[votes["task"] == "edit"], options, by="challenge"), by="challenge"
    )
    assert printed == expected
    assert sum(b["votes"] for b in printed) == sum(
        r["task"] == "edit" and not r["flagged"] and r["voter_kind"] == "human" for r in rows
    )

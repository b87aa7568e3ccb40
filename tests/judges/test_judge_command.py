"""`arena judge` end to end: the local pipeline's outputs, the loopback judge, votes of voter kind
judge:NAME beside (never in) the human board, budgets, resumes, retries and the judge's limits."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa
from support.processes import wait_until

from arena import store
from arena.app.judge import build_comparisons
from arena.cli import main
from arena.config import project_root
from arena.store.tables import JudgeCall

CHALLENGES = ["bald-man", "vintage-cafe-logo"]  # 3 edit models, 2 text-to-image models: 4 pairs
MODELS = {
    "identity": ("edit", "identity"),
    "cartoon-filter": ("edit", "cartoon"),
    "night-grade": ("edit", "night"),
    "prompt-card": ("text-to-image", "prompt-card"),
    "palette-gradient": ("text-to-image", "palette"),
}


def _config(tmp_path, db_url, judges: dict[str, dict], challenges=CHALLENGES) -> str:
    lines = [
        f'data_dir = "{tmp_path / "data"}"',
        f'database_url = "{db_url}"',
        f'challenges_dir = "{project_root() / "challenges"}"',
        f"challenges = {json.dumps(challenges)}",
        "",
        "[providers.local]",
        'protocol = "local"',
        "rate_limit_per_s = 50",
        "max_concurrency = 4",
        "",
    ]
    for model, (task, model_id) in MODELS.items():
        lines += [
            f'[models."{model}"]',
            f'tasks = ["{task}"]',
            f'[models."{model}".providers.local]',
            f'model_id = "{model_id}"',
            "",
        ]
    for name, values in judges.items():
        lines.append(f"[judges.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    path = tmp_path / "arena.toml"
    path.write_text("\n".join(lines))
    return str(path)


def _judge(server, model="consistent", protocol="openai-chat", **extra) -> dict:
    return {
        "protocol": protocol,
        "base_url": server.chat_url if protocol == "openai-chat" else server.url,
        "model_id": model,
        "rate_limit_per_s": 100,
        "max_concurrency": 2,
        "timeout_s": 5,
        **extra,
    }


@pytest.fixture
def pipeline(tmp_path, db_url, capsys):
    """A store holding one local run's outputs of CHALLENGES; returns a function writing a config."""
    config = _config(tmp_path, db_url, {})
    assert main(["run", "--config", config]) == 0
    capsys.readouterr()

    def configure(judges: dict[str, dict]) -> str:
        return _config(tmp_path, db_url, judges)

    return configure


def _judge_json(config: str, *extra: str, capsys) -> dict:
    assert main(["judge", "--config", config, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _calls(db_url: str) -> list:
    engine = store.open_engine(db_url)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(JudgeCall.__table__).order_by(JudgeCall.__table__.c.id)))


@pytest.mark.parametrize("protocol", ["openai-chat", "gemini"])
def test_a_consistent_judge_fills_its_own_board_with_wins(
    pipeline, judge_server, db_url, capsys, protocol
):
    config = pipeline({"lens": _judge(judge_server, protocol=protocol, price_usd_per_call=0.01)})
    summary = _judge_json(config, capsys=capsys)
    assert summary["comparisons"] == summary["candidates"] == 4 and summary["calls"] == 8
    assert summary["succeeded"] == 8 and summary["failures"] == {}
    assert summary["cost_usd"] == pytest.approx(0.08)
    assert summary["stopped"] == "every comparison is judged"
    engine = store.open_engine(db_url)
    votes = store.read_votes(engine, voters="judge:lens", extra_columns=True)
    assert len(votes) == 4 and set(votes["outcome"]) <= {
        "left",
        "right",
    }  # swapped twice, same winner
    assert set(votes["challenge"]) == set(CHALLENGES)
    assert store.read_votes(engine).empty  # the human board stays human
    # every edit call showed the challenge's source, labelled, before the two candidates
    edit_calls = [e for e in judge_server.log if "Source 1 (the image to edit):" in e.labels]
    assert len(edit_calls) == 6
    calls = _calls(db_url)
    assert {(c.order, c.ok) for c in calls} == {("ab", True), ("ba", True)}
    assert all(c.duration_ms > 0 and c.ttfb_ms > 0 and c.cost_usd == 0.01 for c in calls)
    # the board the brief promises: the judge's votes rate the models
    from arena.ratings import compute_boards

    boards = compute_boards(votes)
    assert set(boards[("edit", None)]["model"]) == {"identity", "cartoon-filter", "night-grade"}
    # a rerun has nothing left to ask
    again = _judge_json(config, capsys=capsys)
    assert again["calls"] == 0 and again["comparisons"] == 0 and again["judged_total"] == 4


def test_a_judge_that_always_picks_the_first_image_produces_only_ties(
    pipeline, judge_server, db_url, capsys
):
    config = pipeline({"biased": _judge(judge_server, model="first")})
    assert _judge_json(config, capsys=capsys)["comparisons"] == 4
    votes = store.read_votes(store.open_engine(db_url), voters="judge:biased")
    assert votes["outcome"].tolist() == ["tie"] * 4


def test_a_budget_stops_before_the_call_that_would_pass_it_and_a_rerun_asks_nothing_twice(
    pipeline, judge_server, db_url, capsys
):
    config = pipeline({"lens": _judge(judge_server, price_usd_per_call=0.01, max_concurrency=1)})
    first = _judge_json(config, "--max-cost", "0.035", capsys=capsys)
    assert first["calls"] == 3 and first["cost_usd"] == pytest.approx(0.03)
    assert first["stopped"] == "--max-cost $0.035 reached" and first["comparisons"] == 1
    second = _judge_json(config, capsys=capsys)
    assert second["calls"] == 5 and second["comparisons"] == 3  # the paid "ab" is not asked again
    asked = [(c.comparison, c.order) for c in _calls(db_url)]
    assert len(asked) == len(set(asked)) == 8
    assert len(store.read_votes(store.open_engine(db_url), voters="judge:lens")) == 4


def test_pairs_limits_the_comparisons_of_one_invocation(pipeline, judge_server, capsys):
    config = pipeline({"lens": _judge(judge_server)})
    summary = _judge_json(config, "--pairs", "1", capsys=capsys)
    assert summary["comparisons"] == 1 and summary["calls"] == 2
    assert summary["stopped"] == "--pairs 1 reached"
    # unrated pairs come first: the second batch takes the other task's pair, not a rated one
    assert _judge_json(config, "--pairs", "1", capsys=capsys)["judged_total"] == 2


def test_a_429_is_retried_after_retry_after_and_every_attempt_is_recorded(
    pipeline, judge_server, db_url, capsys
):
    judge_server.limited_times = 2
    judge_server.retry_after = "0.3"
    config = pipeline(
        {"lens": _judge(judge_server, model="limited", max_retries=2, max_concurrency=1)}
    )
    summary = _judge_json(config, "--pairs", "1", capsys=capsys)
    assert summary["calls"] == 4 and summary["succeeded"] == 2
    assert summary["failures"] == {"rate_limited": 2} and summary["comparisons"] == 1
    calls = _calls(db_url)
    assert [(c.failure_class, c.status_code, c.attempt) for c in calls[:2]] == [
        ("rate_limited", 429, 1),
        ("rate_limited", 429, 2),
    ]
    assert calls[2].ok and calls[2].attempt == 3 and calls[2].cost_usd == 0.0 == calls[0].cost_usd
    gaps = [b.arrived_s - a.arrived_s for a, b in itertools.pairwise(judge_server.log)]
    assert gaps[0] >= 0.29 and gaps[1] >= 0.29  # Retry-After honoured


def test_other_failures_are_recorded_once_not_retried_and_left_for_a_rerun(
    pipeline, judge_server, db_url, capsys
):
    config = pipeline({"lens": _judge(judge_server, model="malformed", max_retries=3)})
    summary = _judge_json(config, capsys=capsys)
    assert summary["calls"] == 8 and summary["failures"] == {"bad_response": 8}
    assert summary["comparisons"] == 0 and "rerun to retry" in summary["stopped"]
    assert len(_calls(db_url)) == 8
    assert store.read_votes(store.open_engine(db_url), voters="judges").empty


def test_timeouts_and_refusals_get_their_classes(pipeline, judge_server, capsys):
    judge_server.slow_s = 1.0
    config = pipeline(
        {
            "slow": _judge(judge_server, model="slow", timeout_s=0.2),
            "prude": _judge(judge_server, model="refuse", protocol="gemini"),
        }
    )
    slow = _judge_json(config, "--judge", "slow", "--pairs", "1", capsys=capsys)
    assert slow["failures"] == {"timeout": 2}
    prude = _judge_json(config, "--judge", "prude", "--pairs", "1", capsys=capsys)
    assert prude["failures"] == {"refused": 2}
    assert prude["messages"] == {"refused": "prompt blocked: PROHIBITED_CONTENT"}
    # in words: each class of failure once, with what the judge (or the network) said
    assert main(["judge", "--config", config, "--judge", "slow", "--pairs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (said,) = [line for line in lines if line.startswith("first timeout failure: ")]
    assert "judge slow" in said and "0.2 s" in said


def test_the_judge_s_concurrency_and_rate_hold(pipeline, judge_server, capsys):
    config = pipeline({"lens": _judge(judge_server, max_concurrency=2, rate_limit_per_s=20)})
    judge_server.slow_s = 0.0
    assert _judge_json(config, capsys=capsys)["calls"] == 8
    assert judge_server.peak_in_flight() <= 2
    arrivals = [e.arrived_s for e in judge_server.log]
    assert arrivals[-1] - arrivals[0] >= 7 / 20 - 0.02  # 8 calls at 20/s take 7 intervals at least


def test_no_judge_several_judges_and_an_unknown_one_are_one_clear_line(
    pipeline, judge_server, capsys
):
    assert main(["judge", "--config", pipeline({})]) == 2
    assert "no judge configured" in capsys.readouterr().err
    two = pipeline({"a": _judge(judge_server), "b": _judge(judge_server)})
    assert main(["judge", "--config", two]) == 2
    err = capsys.readouterr().err
    assert "several judges" in err and "--judge NAME" in err and len(err.strip().splitlines()) == 1
    assert main(["judge", "--config", two, "--judge", "c"]) == 2
    assert "no such judge" in capsys.readouterr().err
    assert main(["judge", "--config", two, "--judge", "a", "--run", "nope"]) == 2
    assert "no run with id 'nope'" in capsys.readouterr().err


def test_the_text_summary_says_how_to_see_the_board(pipeline, judge_server, capsys):
    config = pipeline({"lens": _judge(judge_server)})
    assert main(["judge", "--config", config, "--run", "last"]) == 0
    out = capsys.readouterr().out
    assert "judge lens: 4 comparisons judged, 8 calls (8 succeeded)" in out
    assert "arena ratings --voters judge:lens" in out


def test_route_pairs_and_model_pairs_are_built_but_never_a_route_against_itself():
    def output(model, provider, image, challenge="c"):
        return {
            "challenge": challenge,
            "task": "edit",
            "category": "x",
            "model": model,
            "provider": provider,
            "image_sha256": image,
            "path": f"images/{image}.png",
        }

    outputs = [
        output("m", "p1", "1" * 64),
        output("m", "p1", "2" * 64),  # a second sample of the same route: not compared
        output("m", "p2", "3" * 64),  # the same model elsewhere: a route pair
        output("n", "p1", "1" * 64),  # identical bytes to m@p1's: nothing to compare
        output("n", "p1", "4" * 64, challenge="gone"),
    ]
    comparisons = build_comparisons("j", outputs, {"c"})
    pairs = sorted(
        (c["model_a"], c["provider_a"], c["model_b"], c["provider_b"]) for c in comparisons.values()
    )
    # n@p1's image 1 against m@p2's image 3 is the comparison m@p1 (the same bytes) already is:
    # a comparison is of two images, asked once, labelled by the first outputs found with them.
    assert pairs == [
        ("m", "p1", "m", "p2"),
        ("m", "p1", "m", "p2"),
        ("n", "p1", "m", "p1"),
    ]
    assert all(c["image_a"] < c["image_b"] for c in comparisons.values())


@pytest.mark.slow  # a subprocess
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_keeps_every_finished_call_and_a_rerun_continues(
    pipeline, judge_server, db_url, tmp_path, sig
):
    judge_server.slow_s = 0.4
    config = pipeline({"lens": _judge(judge_server, model="slowok", max_concurrency=1)})
    log_path = tmp_path / "judge.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arena.cli", "judge", "--config", config],
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        wait_until(lambda: len(_calls(db_url)) >= 3, what="three judge calls stored")
        proc.send_signal(sig)
        assert proc.wait(60) == (130 if sig == signal.SIGINT else 143), log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    err = log_path.read_text()
    assert "Traceback" not in err
    assert "interrupted; every finished call is stored; run `arena judge` again" in err
    before = _calls(db_url)
    assert 3 <= len(before) < 8 and all(c.ok for c in before)
    judge_server.slow_s = 0.0
    assert main(["judge", "--config", config]) == 0
    asked = [(c.comparison, c.order) for c in _calls(db_url)]
    assert len(asked) == len(set(asked)) == 8  # nothing asked twice
    assert len(store.read_votes(store.open_engine(db_url), voters="judge:lens")) == 4


def test_a_rejected_key_stops_the_judge_and_never_reaches_the_store_or_the_output(
    pipeline, judge_server, db_url, capsys, monkeypatch
):
    from support.scan import database_dump

    secret = "sk-judge-SECRET-do-not-leak-0987654321"
    monkeypatch.setenv("LENS_KEY", secret)
    config = pipeline({"lens": _judge(judge_server, model="echo-auth", api_key_env="LENS_KEY")})
    assert main(["judge", "--config", config]) == 0
    captured = capsys.readouterr()
    assert "stopped: the judge rejected the key" in captured.out and "$LENS_KEY" in captured.out
    assert secret in judge_server.log[0].headers["authorization"]  # it was sent, to the judge only
    calls = _calls(db_url)
    assert 1 <= len(calls) <= 2 and {c.failure_class for c in calls} == {"auth"}  # then it stops
    assert secret not in captured.out + captured.err
    assert secret not in database_dump(db_url)
    monkeypatch.delenv("LENS_KEY")
    assert main(["judge", "--config", config]) == 2
    assert "LENS_KEY is not set" in capsys.readouterr().err


def test_sampling_stops_once_every_pair_s_interval_is_narrower_than_the_stop_width(
    tmp_path, db_url, judge_server, capsys
):
    """Every shipped challenge: several comparisons per pair of models. With a stop width no
    interval can miss, one verdict per pair settles it: the first batch takes one comparison of
    each pair (pairs take turns), and the next choice finds nothing unsettled."""
    assert main(["run", "--config", _config(tmp_path, db_url, {}, challenges=[])]) == 0
    capsys.readouterr()
    judge = _judge(judge_server, stop_interval_elo=1e9, max_concurrency=2)
    config = _config(tmp_path, db_url, {"lens": judge}, challenges=[])
    summary = _judge_json(config, capsys=capsys)
    assert summary["stopped"] == "every pair is settled (its interval is under 1e+09 Elo)"
    assert summary["comparisons"] == 4 and summary["candidates"] > 8  # one per pair, of many
    votes = store.read_votes(store.open_engine(db_url), voters="judge:lens")
    pairs = {tuple(sorted(p)) for p in zip(votes["model_left"], votes["model_right"], strict=True)}
    assert len(pairs) == 4  # 3 edit pairs and 1 text-to-image pair, one comparison each
    assert summary["unsettled_pairs"] == 0

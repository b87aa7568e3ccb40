"""The report's quality page from a real store: the local pipeline through two providers, human
votes on its outputs, `arena judge` against the loopback judge and `arena check`, then `arena
report`: route boards and the route test, the judge's board and agreement, the checks, per model."""

from __future__ import annotations

import json
import re

import pytest
from support.browser import launch
from support.judged import human_vote

from arena import store
from arena.checks import CHECKS
from arena.cli import main
from arena.config import project_root
from arena.ratings import compare_routes, judge_agreement
from arena.report.quality import CHECK_KINDS
from arena.store.tables import Vote
from arena.store.votepath import successful_outputs

MODELS = {"identity": "identity", "night-grade": "night", "cartoon-filter": "cartoon"}
ROUTES = {
    "identity": ("local", "mirror"),
    "night-grade": ("local", "mirror"),
    "cartoon-filter": ("local",),
}


def _config(tmp_path, db_url, judge_url: str) -> str:
    lines = [
        f'data_dir = "{tmp_path / "data"}"',
        f'database_url = "{db_url}"',
        f'challenges_dir = "{project_root() / "challenges"}"',
        'challenges = ["bald-man"]',
        "",
    ]
    for provider in ("local", "mirror"):
        lines += [f"[providers.{provider}]", 'protocol = "local"', "rate_limit_per_s = 50", ""]
    for model, model_id in MODELS.items():
        lines += [f'[models."{model}"]', 'tasks = ["edit"]']
        for provider in ROUTES[model]:
            lines += [f'[models."{model}".providers.{provider}]', f'model_id = "{model_id}"']
        lines.append("")
    lines += [
        "[judges.lens]",
        'protocol = "openai-chat"',
        f'base_url = "{judge_url}"',
        'model_id = "consistent"',
        "rate_limit_per_s = 100",
        "price_usd_per_call = 0.01",
        "",
    ]
    path = tmp_path / "arena.toml"
    path.write_text("\n".join(lines))
    return str(path)


def _human_votes(engine, count: int) -> None:
    """`count` votes between every pair of routes, the night grade always preferred, the identity
    always last: what a crowd that judges edits would say."""
    outputs = {(o["model"], o["provider"]): o["image_sha256"] for o in successful_outputs(engine)}
    rank = {"night-grade": 2, "cartoon-filter": 1, "identity": 0}
    routes = sorted(outputs)
    rows = []
    number = 0
    for i, left in enumerate(routes):
        for right in routes[i + 1 :]:
            if left[0] == right[0]:
                continue
            for k in range(count):
                number += 1
                a, b = (left, right) if k % 2 == 0 else (right, left)  # both sides shown
                outcome = "left" if rank[a[0]] > rank[b[0]] else "right"
                row = human_vote(number, (*a, "x"), (*b, "y"), outcome)
                row["image_left"], row["image_right"] = outputs[a], outputs[b]
                rows.append(row)
    with engine.begin() as conn:
        conn.execute(Vote.__table__.insert(), rows)


@pytest.fixture
def built(tmp_path, db_url, judge_server, capsys):
    config = _config(tmp_path, db_url, judge_server.chat_url)
    assert main(["run", "--config", config]) == 0
    engine = store.open_engine(db_url)
    _human_votes(engine, 6)
    assert main(["judge", "--config", config]) == 0
    assert main(["check", "--config", config]) == 0
    site = tmp_path / "site"
    assert main(["report", "--config", config, "--out", str(site)]) == 0
    capsys.readouterr()
    return engine, site


def test_the_quality_page_shows_routes_the_judge_and_the_checks_from_the_store(built):
    engine, site = built
    page = (site / "quality.html").read_text()
    # route boards: one row per model and provider, from the human votes
    rows = re.findall(r'<tr data-route="([^"]+)"', page)
    assert sorted(rows) == sorted(f"{m}@{p}" for m, ps in ROUTES.items() for p in ps)
    # the route test: each two-route model in one sentence, as compare_routes says it
    humans = store.read_votes(engine, include_flagged=False, extra_columns=True)
    comparisons = compare_routes(humans)
    assert sorted(comparisons["model"]) == ["identity", "night-grade"]
    for sentence in comparisons["sentence"]:
        assert sentence.replace("'", "&#39;") in page
    # the judge: its calls, its agreement with the humans as judge_agreement computes it
    judge_votes = store.read_votes(engine, extra_columns=True, voters="judge:lens")
    assert len(judge_votes) > 0
    agreement = judge_agreement(humans, judge_votes).iloc[0]
    match = re.search(r'<td data-field="agreement">([^<]+)</td>', page)
    assert match and match.group(1) == f"{100 * agreement['agreement']:.1f}%"
    assert 'data-judge="lens"' in page and "Kendall" in page
    by_challenge = judge_agreement(humans, judge_votes, by="challenge").iloc[0]
    assert by_challenge["group"] == "bald-man" and by_challenge["matched"] == agreement["matched"]
    assert '<details class="agreement-by" data-by="challenge">' in page
    assert '<tr data-group="bald-man">' in page and '<tr data-group="portrait-edit">' in page
    calls = store.read_judge_calls(engine, "lens")
    assert f"with {len(calls)} calls" in page
    # the checks: the identity edit returned its source, from either provider
    checks = store.read_checks(engine)
    unchanged = checks[(checks["check"] == "unchanged") & (checks["model"] == "identity")]
    assert len(unchanged) == 2 and unchanged["flagged"].all()
    assert re.search(
        r'<tr data-check="unchanged" data-model="identity">.*?data-field="flagged">1</td>', page
    )
    # a page with no image: nothing on it can give a battle image away
    assert "<img" not in page


def test_the_model_page_and_quality_json_carry_the_same_figures(built):
    engine, site = built
    model_page = (site / "models" / "identity.html").read_text()
    assert 'id="quality"' in model_page
    assert "lens ranks it" in model_page
    assert re.search(r'Check "unchanged": 2 of 2 outputs flagged', model_page)
    data = json.loads((site / "downloads" / "quality.json").read_text())
    assert [j["name"] for j in data["judges"]] == ["lens"]
    assert {r["route"] for b in data["route_boards"].values() for r in b} >= {
        "identity@local",
        "identity@mirror",
    }
    assert {c["model"] for c in data["route_comparisons"]} == {"identity", "night-grade"}
    flagged = {(c["check"], c["model"], c["provider"]): c["flagged"] for c in data["checks"]}
    assert flagged[("unchanged", "identity", "local")] == 1
    assert flagged[("unchanged", "night-grade", "mirror")] == 0
    manifest = json.loads((site / "downloads" / "manifest.json").read_text())
    assert "quality.json" in {f["name"] for f in manifest["files"]}


def test_the_page_names_every_check_arena_runs():
    assert tuple(CHECK_KINDS) == CHECKS


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", [1440, 390])
def test_the_quality_page_in_a_browser_fits_and_sorts(built, width):
    from playwright.sync_api import sync_playwright

    _, site = built
    shots = project_root() / "test-output" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site / "quality.html").as_uri())
        page.wait_for_load_state("load")
        # wide tables scroll in their own box; the page itself never scrolls sideways
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        board = page.locator("table.route-board")
        board.locator("th", has_text="votes").click()  # the sortable board still sorts
        votes = board.locator("tbody tr td:nth-child(6)").evaluate_all(
            "c => c.map(x => Number(x.dataset.value))"
        )
        assert votes == sorted(votes) and len(votes) == 5
        page.screenshot(path=str(shots / f"report-quality-{width}.png"), full_page=True)
        browser.close()
    assert errors == []


def test_arena_ratings_shows_the_judges_board_and_its_agreement_after_arena_judge(
    built, db_url, tmp_path, capsys
):
    engine, _ = built
    config = str(tmp_path / "arena.toml")
    assert main(["ratings", "--config", config, "--voters", "judge:lens", "--json"]) == 0
    boards = json.loads(capsys.readouterr().out)
    judged = store.read_votes(engine, voters="judge:lens", extra_columns=True)
    assert [b["task"] for b in boards] == ["edit"]
    assert sum(m["votes"] for m in boards[0]["models"]) == 2 * len(judged)
    assert main(["ratings", "--config", config, "--json"]) == 0  # the humans' board is apart
    human = json.loads(capsys.readouterr().out)[0]
    assert sum(m["votes"] for m in human["models"]) == 2 * len(store.read_votes(engine))
    assert main(["ratings", "--config", config, "--agreement", "--json"]) == 0
    agreement = json.loads(capsys.readouterr().out)
    (judge,) = agreement["judges"]
    expected = judge_agreement(
        store.read_votes(engine, include_flagged=False, extra_columns=True), judged
    ).iloc[0]
    assert judge["judge"] == "judge:lens"
    assert (judge["agreement"][0]["matched"], judge["agreement"][0]["agree"]) == (
        expected["matched"],
        expected["agree"],
    )

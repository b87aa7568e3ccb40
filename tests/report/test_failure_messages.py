"""When attempts fail, the provider's own words: in `arena stats`, on the report's provider page and
in generations.csv; escaped, capped, and free of keys. The failures are real: a local provider
asked for models it does not serve answers 404 with its own message."""

from __future__ import annotations

import csv
import json
import re

import markupsafe
import pytest
from support.browser import launch

from arena import stats
from arena.app.runs import run_benchmark
from arena.cli import main
from arena.config import load_settings
from arena.providers import protocol_facts
from arena.report import build_site

pytestmark = pytest.mark.slow

EVIL_ID = "<script>alert('x')</script>"
LONG_ID = "m" * 200  # the longest model_id the store takes; its 404 message is longer still
KEY = "sk-local-secret-4242"


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    from support.images import make_png

    root = tmp_path_factory.mktemp("failures")
    challenges = root / "challenges"
    (challenges / "images").mkdir(parents=True)
    (challenges / "images" / "face.png").write_bytes(make_png(40, 40, (90, 80, 70)))
    (challenges / "t2i.toml").write_text(
        'slug = "t2i"\ntitle = "A cat"\nkind = "text-to-image"\nprompt = "a cat"\n'
        'category = "photo"\n'
    )
    config = root / "arena.toml"
    config.write_text(
        f'data_dir = "{root / "data"}"\nchallenges_dir = "{challenges}"\nsamples = 2\n'
        '[providers.local]\nprotocol = "local"\napi_key_env = "LOCAL_TEST_KEY"\n'
        "rate_limit_per_s = 50\n"
        '[models.ghost]\ntasks = ["text-to-image"]\n'
        f"[models.ghost.providers.local]\nmodel_id = {json.dumps(EVIL_ID)}\n"
        '[models.long]\ntasks = ["text-to-image"]\n'
        f'[models.long.providers.local]\nmodel_id = "{LONG_ID}"\n'
        '[models.card]\ntasks = ["text-to-image"]\n'
        '[models.card.providers.local]\nmodel_id = "prompt-card"\n'
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("LOCAL_TEST_KEY", KEY)
    settings = load_settings(config, protocols=protocol_facts())
    report = run_benchmark(settings)
    site = build_site(settings, root / "site")
    yield settings, config, report, site
    mp.undo()


EVIL_MESSAGE = f"HTTP 404 model_not_found: model {EVIL_ID!r} does not exist"


def test_the_run_failed_as_the_provider_said(failed_run):
    _, _, report, _ = failed_run
    assert report.outcome.failed == 4 and report.outcome.succeeded == 2
    assert report.outcome.failures == {"client_error": 4}


def test_stats_names_the_commonest_message_per_class_with_its_count(failed_run, capsys):
    _, config, _, _ = failed_run
    assert main(["stats", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "provider performance over the last 30 days, from the benchmark's attempts" in out
    lines = out.splitlines()
    start = lines.index("ghost: no successful generation in this window")
    block = lines[start : start + 8]
    assert "most common failure messages:" in block
    (row,) = [line for line in block if line.startswith("local ") and "client_error" in line]
    assert re.split(r"\s{2,}", row.strip()) == ["local", "client_error", "2", EVIL_MESSAGE]
    assert "(percentiles over 2 successes; success rate over 2 attempts)" in out  # card
    assert KEY not in out
    assert main(["stats", "--config", str(config), "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ghost"]["failure_messages"] == {
        "client_error": [{"message": EVIL_MESSAGE, "count": 2}]
    }
    (long,) = rows["long"]["failure_messages"]["client_error"]
    assert len(long["message"]) == stats.MESSAGE_CHARS and long["message"].endswith("…")
    assert rows["card"]["failure_messages"] == {}


def test_the_provider_page_shows_the_messages_escaped_and_capped(failed_run):
    _, _, _, site = failed_run
    html = (site.out_dir / "providers" / "local.html").read_text()
    row = re.search(r'<tr data-class="client_error">(.*?)</tr>', html, re.S).group(1)
    assert "<script>alert" not in html
    escaped = str(markupsafe.escape(EVIL_MESSAGE))
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in escaped
    assert f"2×</span> <q>{escaped}</q>" in row
    assert "4" in re.findall(r'data-value="(\d+)"', row)
    shown = re.findall(r"<q>(.*?)</q>", row)
    assert len(shown) == 2 and max(len(m) for m in shown) <= stats.MESSAGE_CHARS + 40
    assert any(m.endswith("…") for m in shown)
    assert KEY not in html


def test_generations_csv_carries_each_failures_message(failed_run):
    _, _, _, site = failed_run
    with open(site.out_dir / "downloads" / "generations.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and rows and "failure_message" in rows[0]
    ghost = [r for r in rows if r["model"] == "ghost"]
    assert [r["failure_message"] for r in ghost] == [EVIL_MESSAGE, EVIL_MESSAGE]
    assert all(r["failure_class"] == "client_error" for r in ghost)
    card = [r for r in rows if r["model"] == "card"]
    assert [r["failure_message"] for r in card] == ["", ""] and all(r["ok"] == "True" for r in card)
    long = [r["failure_message"] for r in rows if r["model"] == "long"]
    assert all(len(m) == stats.MESSAGE_CHARS for m in long)
    manifest = json.loads((site.out_dir / "downloads" / "manifest.json").read_text())
    (generations,) = [f for f in manifest["files"] if f["name"] == "generations.csv"]
    assert generations["columns"][-2:] == ["failure_message", "client_wait_ms"]  # added at the end
    waits = [float(r["client_wait_ms"]) for r in rows]  # every attempt went out, so each has one
    assert len(waits) == 6 and all(w >= 0 for w in waits)


@pytest.mark.browser
@pytest.mark.slow
def test_in_a_browser_the_message_is_text_and_runs_nothing(failed_run):
    from playwright.sync_api import sync_playwright

    _, _, _, site = failed_run
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto((site.out_dir / "providers" / "local.html").as_uri())
        page.wait_for_load_state("load")
        row = page.locator('table.failures tr[data-class="client_error"]')
        items = row.locator("td.messages li").all_inner_texts()
        browser.close()
    assert items[0] == f"2× {EVIL_MESSAGE}"
    assert dialogs == []  # the script in the provider's text was shown, never run

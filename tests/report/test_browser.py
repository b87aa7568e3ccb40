"""The report in a real browser: Debian's chromium through Playwright, pages opened from file://."""

from __future__ import annotations

import shutil

import pytest
from support.browser import launch

from arena.report.formats import slugify

from .conftest import EVIL_MODEL, ROOT

SHOTS = ROOT / "test-output" / "screenshots"


@pytest.mark.browser
@pytest.mark.slow
def test_index_and_model_page_from_file_urls_with_a_sortable_board(golden_site, tmp_path):
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
        )

        page.goto(golden_site.index.as_uri())
        page.wait_for_load_state("load")
        board = page.locator('table.board[data-task="edit"]')
        models = board.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.model)")
        assert models[0] == "night-grade"  # best first as built
        votes_header = board.locator("th", has_text="votes")
        votes_header.click()
        ascending = board.locator("tbody tr td:nth-child(5)").evaluate_all(
            "c => c.map(x => Number(x.dataset.value))"
        )
        assert ascending == sorted(ascending) and ascending != sorted(ascending, reverse=True)
        assert votes_header.get_attribute("aria-sort") == "ascending"
        votes_header.click()
        descending = board.locator("tbody tr td:nth-child(5)").evaluate_all(
            "c => c.map(x => Number(x.dataset.value))"
        )
        assert descending == sorted(ascending, reverse=True)
        assert page.locator("text=No votes yet").count() == 0  # both boards have votes
        assert page.locator("figure.chart svg").count() >= 5
        images = page.locator("img").evaluate_all(
            "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)"
        )
        assert all(images)
        index_shot = tmp_path / "index.png"
        page.screenshot(path=str(index_shot), full_page=True)

        page.goto((golden_site.out_dir / "models" / f"{slugify(EVIL_MODEL)}.html").as_uri())
        page.wait_for_load_state("load")
        assert page.locator("h1").inner_text().startswith('<script>alert("model")</script>')
        assert page.evaluate("window.__xss === undefined")
        highlighted = page.locator(f'[id="cost-text-to-image-label-{slugify(EVIL_MODEL)}"]')
        assert highlighted.is_visible()  # this model's label shown in its own charts, others hidden
        assert not page.locator('[id="cost-text-to-image-label-prompt-card"]').is_visible()
        page.locator(".gallery").scroll_into_view_if_needed()  # its images load lazily
        page.wait_for_function(
            "[...document.querySelectorAll('.gallery img')].every(i => i.complete)"
        )
        gallery = page.locator(".gallery img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
        assert gallery and all(width > 0 for width in gallery)
        model_shot = tmp_path / "model.png"
        page.screenshot(path=str(model_shot), full_page=True)

        page.goto((golden_site.out_dir / "challenges" / "bald-man.html").as_uri())
        page.wait_for_load_state("load")
        challenge_shot = tmp_path / "challenge.png"
        page.screenshot(path=str(challenge_shot), full_page=True)
        browser.close()
    assert problems == []
    for shot in (index_shot, model_shot, challenge_shot):
        assert shot.stat().st_size > 10_000
        shutil.copy(shot, SHOTS / f"report-{shot.name}")
    assert (SHOTS / "report-index.png").is_file()


@pytest.mark.browser
@pytest.mark.slow
def test_the_api_examples_read_and_copy_as_runnable_text(golden, golden_site):
    from playwright.sync_api import sync_playwright

    from arena.report.examples import api_examples

    expected = api_examples(golden.models[EVIL_MODEL], golden.gateway.public_url)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto((golden_site.out_dir / "models" / f"{slugify(EVIL_MODEL)}.html").as_uri())
        page.wait_for_load_state("load")
        section = page.locator("section#api")
        assert section.locator("h2").inner_text() == "Use it through the API"
        for key in ("curl", "python", "javascript"):
            code = section.locator(f'figure[data-example="{key}"] pre code')
            assert code.text_content() == expected[key]  # the model's name unescaped, as typed
        button = section.locator('figure[data-example="python"] button.copy')
        if page.evaluate("!!navigator.clipboard"):
            button.click()
            page.wait_for_function(
                "document.querySelector('figure[data-example=python] button.copy').textContent === 'copied'"
            )
            assert page.evaluate("navigator.clipboard.readText()") == expected["python"]
        else:
            assert not button.is_visible()  # no clipboard: no button that cannot work
        assert page.evaluate("window.__xss === undefined")
        browser.close()
    assert problems == []

"""The page in a real browser (Debian's chromium through Playwright): load gate, click and key votes, reveal, next."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from support.browser import launch
from support.servers import serve_in_thread

from arena import store
from arena.web import create_app

from .factory import SCREENSHOTS, TEST_OPTIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DEMO_MODELS = ("identity", "cartoon-filter", "night-grade", "prompt-card", "palette-gradient")


def _shot(page, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)


def _wait_ready(page) -> str:
    page.wait_for_selector("#choices button[data-choice=a]:not([disabled])", timeout=15_000)
    loaded = page.evaluate("""() => ['img-a', 'img-b'].map((id) => {
        const img = document.getElementById(id); return img.complete && img.naturalWidth > 0; })""")
    assert loaded == [True, True]
    return page.get_attribute("#arena", "data-battle")


def test_vote_by_click_and_by_key_with_reveal_and_next_battle(demo_settings_copy, tmp_path):
    from playwright.sync_api import sync_playwright

    app = create_app(demo_settings_copy, replace(TEST_OPTIONS, box_px=768))
    errors: list[str] = []
    with serve_in_thread(app, name="arena-web") as server, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        held = []
        page.route("**/img/**", lambda route: held.append(route))  # hold every image back
        page.goto(server.url + "/", wait_until="domcontentloaded")
        while len(held) < 2:
            page.wait_for_timeout(20)
        page.wait_for_timeout(200)
        assert (
            page.eval_on_selector_all("#choices button", "bs => bs.map(b => b.disabled)")
            == [True] * 4
        )
        for route in held:
            route.continue_()
        page.unroute("**/img/**")
        first = _wait_ready(page)
        _shot(page, tmp_path, "battle")

        page.click("#choices button[data-choice=a]")
        page.wait_for_selector("#reveal-a:not(:empty)")
        reveal = page.inner_text("#side-a figcaption") + " " + page.inner_text("#side-b figcaption")
        assert (
            any(model in reveal for model in DEMO_MODELS)
            and "local" in reveal
            and "baseline" in reveal
        )
        assert (
            page.eval_on_selector_all("#choices button", "bs => bs.map(b => b.disabled)")
            == [True] * 4
        )
        _shot(page, tmp_path, "reveal")

        page.click("#next")
        second = _wait_ready(page)
        assert second != first and page.inner_text("#reveal-a") == ""
        page.keyboard.press("t")
        page.wait_for_selector("#reveal-b:not(:empty)")
        page.keyboard.press("Enter")
        third = _wait_ready(page)
        assert third not in (first, second)
        page.keyboard.press("n")
        page.wait_for_selector("#reveal-a:not(:empty)")

        page.set_viewport_size({"width": 390, "height": 844})  # a phone: the two images stack
        boxes = [page.locator(f"#img-{side}").bounding_box() for side in "ab"]
        assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"] - 1
        _shot(page, tmp_path, "reveal-phone")
        browser.close()

    assert errors == []
    engine = store.open_engine(demo_settings_copy.database_url)
    votes = store.read_votes(engine)
    engine.dispose()
    assert list(votes["battle_id"]) == [first, second, third]
    assert list(votes["outcome"]) == ["left", "tie", "both_bad"]

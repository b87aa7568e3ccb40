"""The playground: visitor tokens and their daily allowance (VisitorKeyRing), the page, and the page in a browser."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from pathlib import Path

import httpx
import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from support.browser import launch
from support.images import make_png
from support.servers import serve_in_thread

from arena import store
from arena.gateway.auth import Grant
from arena.gateway.playground import (
    TOKEN_PREFIX,
    ClientAddress,
    VisitorKeyRing,
    VisitorPass,
    playground_routes,
)
from arena.gateway.replies import GatewayError
from arena.store.keys import create_key, find_key
from arena.store.tables import GatewayKey

SECRET = "test-secret-" + "0" * 20
SHOTS = Path("/work/shots")
DAY = "2026-12-01"


class InnerKeyRing:
    """A stand-in for the KEYS helper's KeyRing: one known key, and a record of every call."""

    KEY = "arena-test-key"

    def __init__(self, engine=None) -> None:
        self.engine = engine
        self.authorized: list[str | None] = []
        self.charged: list[tuple[str, float | None]] = []
        self.closed = False

    async def authorize(self, authorization, *, expected_cost_usd=None):
        self.authorized.append(authorization)
        if authorization != f"Bearer {self.KEY}":
            raise GatewayError(401, "invalid or revoked gateway key", code="invalid_api_key")
        return Grant(key_name="test")

    def charge(self, grant, cost_usd) -> None:
        self.charged.append((grant.key_name, cost_usd))

    async def aclose(self) -> None:
        self.closed = True


def settings_with(tmp_path, db_url, allowance_usd: float):
    from arena.config import demo_settings
    from arena.providers import protocol_facts

    base = demo_settings(protocol_facts())
    return replace(
        base,
        data_dir=tmp_path / "data",
        database_url=db_url,
        gateway=replace(base.gateway, playground_budget_usd=allowance_usd),
    )


@pytest.fixture
def ring_for(tmp_path, db_url):
    """VisitorKeyRing(s) on one store, with an allowance and a day of the test's choosing."""
    made: list[VisitorKeyRing] = []
    engine = store.open_engine(db_url)

    def build(allowance_usd: float = 0.05, day: list[str] | None = None) -> VisitorKeyRing:
        day = day if day is not None else [DAY]
        ring = VisitorKeyRing(
            InnerKeyRing(engine),
            settings_with(tmp_path, db_url, allowance_usd),
            SECRET,
            today=lambda: day[0],
        )
        made.append(ring)
        return ring

    yield build
    for ring in made:
        asyncio.run(ring.aclose())
    engine.dispose()


def bearer(ip: str = "203.0.113.7", day: str = DAY, secret: str = SECRET) -> str:
    return f"Bearer {TOKEN_PREFIX}{VisitorPass(secret).token(ip, day)}"


def visitor_row(ring: VisitorKeyRing, name: str):
    table = GatewayKey.__table__
    with ring.engine.connect() as conn:
        return conn.execute(sa.select(table).where(table.c.name == name)).mappings().first()


def refused(ring, authorization, ip="203.0.113.7", expected_cost_usd=None) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        asyncio.run(
            ring.authorize(authorization, expected_cost_usd=expected_cost_usd, client_ip=ip)
        )
    return caught.value


ADDRESSES = st.one_of(
    st.ip_addresses().map(str), st.text(min_size=1, max_size=40)
)  # what scope["client"] may hold
DAYS = st.dates().map(lambda d: d.isoformat())


@hypothesis.settings(max_examples=200, deadline=None)
@given(ip=ADDRESSES, other_ip=ADDRESSES, day=DAYS, other_day=DAYS, cut=st.integers(0, 60))
def test_a_token_is_good_for_its_own_address_and_day_only(ip, other_ip, day, other_day, cut):
    passes = VisitorPass(SECRET)
    token = passes.token(ip, day)
    assert passes.check(token, ip, day) == passes.visitor(ip)
    if other_day != day or passes.visitor(other_ip) != passes.visitor(ip):
        assert passes.check(token, other_ip, other_day) is None
    if cut < len(token):
        assert passes.check(token[:cut], ip, day) is None  # any shortened token
    assert VisitorPass("another secret").check(token, ip, day) is None


def test_a_visitor_token_gets_a_playground_grant_and_its_spend_is_kept_in_the_store(ring_for):
    ring = ring_for(0.05)

    async def visit():
        grant = await ring.authorize(bearer(), expected_cost_usd=0.01, client_ip="203.0.113.7")
        ring.charge(grant, 0.02)
        await ring.aclose()  # the write is off the loop: wait for it
        return grant

    grant = asyncio.run(visit())
    assert grant.playground and grant.key_name.startswith("playground:")
    visitor = grant.key_name.removeprefix("playground:")
    assert len(visitor) == 12 and "203.0.113.7" not in grant.key_name
    row = visitor_row(ring, f"playground:{visitor}-{DAY}")
    assert row["spent_usd"] == pytest.approx(0.02) and row["requests"] == 1
    assert row["budget_usd"] == pytest.approx(0.05)
    assert ring.inner.authorized == [] and ring.inner.charged == []
    # the row's key hash belongs to no key: presenting its name as a key finds nothing
    assert find_key(ring.engine, row["name"]) is None


def test_forged_tokens_are_refused_with_401(ring_for):
    ring = ring_for(0.05)
    genuine = bearer()
    day, mac = genuine.removeprefix(f"Bearer {TOKEN_PREFIX}").split(".")
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    forgeries = [
        f"Bearer {TOKEN_PREFIX}{day}.{flipped}",  # one hex digit changed
        bearer(secret="another-secret-entirely"),  # signed with another secret
        f"Bearer {TOKEN_PREFIX}{day}",  # no signature
        f"Bearer {TOKEN_PREFIX}",
        f"Bearer {TOKEN_PREFIX}{'x' * 500}",
        f"Bearer {TOKEN_PREFIX}2026-12-02.{mac}",  # another day's label on today's signature
    ]
    for forged in forgeries:
        error = refused(ring, forged)
        assert (error.status, error.code) == (401, "invalid_api_key"), forged
        assert mac not in error.message and "reload /playground" in error.message
    assert ring.inner.authorized == []


def test_a_token_from_another_ip_or_another_day_is_refused(ring_for):
    day = [DAY]
    ring = ring_for(0.05, day)
    token = bearer(ip="203.0.113.7")
    assert asyncio.run(ring.authorize(token, client_ip="203.0.113.7")).playground
    assert refused(ring, token, ip="203.0.113.8").status == 401
    assert refused(ring, token, ip=None).status == 401  # no address known: nothing to bind to
    day[0] = "2026-12-02"  # midnight UTC passed
    assert refused(ring, token).status == 401
    assert asyncio.run(ring.authorize(bearer(day="2026-12-02"), client_ip="203.0.113.7"))


def test_the_allowance_runs_out_with_402_shared_by_processes_and_renewed_the_next_day(ring_for):
    day = [DAY]
    first, second = ring_for(0.05, day), ring_for(0.05, day)  # two gateway processes, one store

    async def spend(ring, cost):
        grant = await ring.authorize(bearer(), expected_cost_usd=cost, client_ip="203.0.113.7")
        ring.charge(grant, cost)
        await asyncio.gather(*ring._writes)

    asyncio.run(spend(first, 0.02))
    asyncio.run(spend(second, 0.02))
    # 0.04 spent: one more at 0.02 would pass the allowance, which the other process knows
    error = refused(first, bearer(), expected_cost_usd=0.02)
    assert (error.status, error.code) == (402, "budget_exceeded")
    assert "($0.05 per visitor per day)" in error.message and "$0.04 spent" in error.message
    assert "00:00 UTC" in error.message
    asyncio.run(spend(second, 0.01))  # exactly the allowance: allowed
    error = refused(second, bearer())  # nothing left, whatever the expected cost
    assert (error.status, error.code) == (402, "budget_exceeded")
    day[0] = "2026-12-02"
    assert asyncio.run(first.authorize(bearer(day="2026-12-02"), client_ip="203.0.113.7"))


def test_another_visitor_has_an_allowance_of_their_own(ring_for):
    ring = ring_for(0.01)

    async def spend(ip):
        grant = await ring.authorize(bearer(ip=ip), client_ip=ip)
        ring.charge(grant, 0.01)
        await asyncio.gather(*ring._writes)
        return grant

    one, other = asyncio.run(spend("203.0.113.7")), asyncio.run(spend("198.51.100.1"))
    assert one.key_name != other.key_name
    assert refused(ring, bearer(ip="203.0.113.7")).status == 402


def test_zero_allowance_refuses_visitor_tokens_with_401_and_opens_no_store(tmp_path, db_url):
    ring = VisitorKeyRing(InnerKeyRing(), settings_with(tmp_path, db_url, 0.0), SECRET)
    assert ring.engine is None
    error = refused(ring, bearer())
    assert (error.status, error.code) == (401, "invalid_api_key")
    assert "allowance is off" in error.message and "gateway key" in error.message
    assert ring.inner.authorized == []


def test_every_other_header_is_delegated_to_the_inner_keyring(ring_for):
    ring = ring_for(0.05)
    grant = asyncio.run(ring.authorize(f"Bearer {InnerKeyRing.KEY}", expected_cost_usd=0.5))
    assert (grant.key_name, grant.playground) == ("test", False)
    for other in [None, "", "Basic dXNlcjpwdw==", "Bearer arena-wrong", "playground-x"]:
        assert refused(ring, other).status == 401
    assert ring.inner.authorized == [
        f"Bearer {InnerKeyRing.KEY}",
        None,
        "",
        "Basic dXNlcjpwdw==",
        "Bearer arena-wrong",
        "playground-x",
    ]
    ring.charge(grant, 0.04)
    assert ring.inner.charged == [("test", 0.04)]
    assert ring.engine is ring.inner.engine  # the inner ring's engine, not a second one
    asyncio.run(ring.aclose())
    assert ring.inner.closed


# --- the page and its routes, on the real gateway -------------------------------------------
# The gateway of create_app on the demo config (the local provider) plus one provider that always
# answers 500, tried first for prompt-card: that model's replies show a fallback.


def gateway_settings(tmp_path, db_url, allowance_usd: float, flaky_url: str):
    from copy import deepcopy

    from arena.config import DEMO_CONFIG, parse_settings, project_root
    from arena.providers import protocol_facts

    data = deepcopy(DEMO_CONFIG)
    data["providers"]["flaky"] = {
        "protocol": "openai",
        "base_url": flaky_url,
        "api_key_env": "ARENA_TEST_FLAKY_KEY",
        "max_retries": 0,
    }
    data["models"]["prompt-card"]["providers"]["flaky"] = {
        "model_id": "server-error",
        "price_usd": 0.01,
    }
    data["gateway"] = {
        "playground_budget_usd": allowance_usd,
        "models": {"prompt-card": {"order": ["flaky", "local"]}},
    }
    settings = parse_settings(data, "<playground test config>", project_root(), protocol_facts())
    return replace(settings, data_dir=tmp_path / "data", database_url=db_url)


def playground_app(settings, engine):
    """create_app with the playground: wired in here as create_app wires it, until it does."""
    import arena.gateway
    from arena.gateway import create_app
    from arena.gateway.auth import KeyRing

    if hasattr(arena.gateway, "playground_routes"):  # create_app wires it (secret from the env)
        return create_app(settings, keyring=KeyRing(engine))
    keyring = VisitorKeyRing(KeyRing(engine), settings, SECRET)
    app = create_app(settings, keyring=keyring)
    app.router.routes.extend(playground_routes(settings, SECRET))
    app.add_middleware(ClientAddress)
    return app


@pytest.fixture
def gateway(tmp_path, db_url, fault_server, monkeypatch):
    """The gateway with the playground on loopback: gateway(allowance_usd) -> (url, key, engine)."""
    monkeypatch.setenv("ARENA_TEST_FLAKY_KEY", "sk-test-flaky")
    monkeypatch.setenv("ARENA_GATEWAY_SECRET", SECRET)
    servers = []

    def start(allowance_usd: float = 0.0):
        settings = gateway_settings(tmp_path, db_url, allowance_usd, fault_server.base_url)
        engine = store.open_engine(db_url)
        key = create_key(engine, "play-test")
        app = playground_app(settings, engine)
        server = serve_in_thread(app, name="gateway")
        server.__enter__()
        servers.append((server, engine))
        return server.url, key, engine

    yield start
    for server, engine in servers:
        server.__exit__(None, None, None)
        engine.dispose()


def test_the_page_carries_a_visitor_token_only_with_an_allowance(gateway):
    url, _, _ = gateway(0.25)
    page = httpx.get(url + "/playground")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    assert 'data-token="playground-' in page.text and "$0.25" in page.text
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
    token = httpx.get(url + "/playground/token").json()
    assert token["token"].startswith(TOKEN_PREFIX) and token["allowance_usd"] == 0.25
    models = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {token['token']}"})
    assert models.status_code == 200
    for name in ("playground.js", "playground.css"):
        assert httpx.get(f"{url}/playground/static/{name}").status_code == 200


def test_visitor_tokens_on_the_gateway_its_address_and_its_allowance(gateway):
    url, _, _ = gateway(
        0.005
    )  # under prompt-card's first route (0.01), over palette-gradient's (0)
    token = httpx.get(url + "/playground/token").json()["token"]

    def generate(model: str, credential: str) -> httpx.Response:
        return httpx.post(
            url + "/v1/images/generations",
            json={"model": model, "prompt": "three red circles"},
            headers={"Authorization": f"Bearer {credential}"},
            timeout=30,
        )

    served = generate("palette-gradient", token)
    assert served.status_code == 200 and served.json()["metadata"]["provider"] == "local"
    today = token.removeprefix(TOKEN_PREFIX).split(".")[0]
    elsewhere = TOKEN_PREFIX + VisitorPass(SECRET).token("203.0.113.7", today)
    refused = generate("palette-gradient", elsewhere)  # a token of another address, from here
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    over = generate("prompt-card", token)
    assert over.status_code == 402
    assert over.json()["error"]["code"] == "budget_exceeded"
    assert (
        "$0.01" in over.json()["error"]["message"] or "allowance" in over.json()["error"]["message"]
    )


def test_without_an_allowance_the_page_asks_for_a_key(gateway):
    url, _, _ = gateway(0.0)
    page = httpx.get(url + "/playground")
    assert "data-token" not in page.text and "needs a key" in page.text
    assert httpx.get(url + "/playground/token").json()["token"] is None


# --- the page in a browser ------------------------------------------------------------------


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text)
                if msg.type == "error" and "401" not in msg.text  # the 401 test's own reply
                else None
            ),
        )
        page.errors = errors
        yield page
        browser.close()
    assert errors == []


def traffic_keys(engine, within_s: float = 15.0) -> list[str]:
    """The gateway keys the traffic attempts were recorded under (written off the request: waited for)."""
    from arena.store.tables import Attempt

    table = Attempt.__table__
    query = sa.select(table.c.gateway_key).where(table.c.source == "traffic").distinct()
    deadline = time.monotonic() + within_s
    while True:
        with engine.connect() as conn:
            keys = sorted(k for k in conn.execute(query).scalars() if k)
        if keys or time.monotonic() > deadline:
            return keys
        time.sleep(0.05)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"playground-{name}.png"), full_page=True)


def wait_models(page) -> None:
    page.wait_for_selector("#model-a:not([disabled])", timeout=15_000)


def image_shown(page, side: str) -> bool:
    return page.evaluate(
        """(side) => { const img = document.querySelector('#result-' + side + ' .shot img');
        return Boolean(img) && img.complete && img.naturalWidth > 0; }""",
        side,
    )


@pytest.mark.slow
@pytest.mark.browser
def test_browser_with_a_key_typed(gateway, browser_page):
    page = browser_page
    url, key, engine = gateway(0.0)
    page.goto(url + "/playground")
    page.wait_for_selector("#status:has-text('Enter a gateway key to generate')")
    page.fill("#prompt", "a lighthouse at dusk")
    page.click("#generate")  # no key yet: said so, nothing sent
    page.wait_for_selector("#status:has-text('Enter a gateway key first')")
    assert page.evaluate("document.activeElement.id") == "key"
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea'))
            .filter((e) => !e.labels || !e.labels.length).map((e) => e.id)"""
    )
    assert unlabelled == []
    assert page.get_attribute("#status", "aria-live") == "polite"
    page.fill("#key", key)
    page.keyboard.press("Enter")
    wait_models(page)
    assert page.evaluate("sessionStorage.getItem('arena-gateway-key')") == key
    assert page.evaluate("document.cookie") == ""
    page.select_option("#model-a", "palette-gradient")
    page.focus("#prompt")
    page.keyboard.press("Control+Enter")  # from the prompt, by keyboard
    page.wait_for_selector("#result-a .state:has-text('Done')", timeout=15_000)
    assert image_shown(page, "a")
    facts = page.inner_text("#result-a .facts")
    assert "local (palette)" in facts and "$0.0000" in facts
    assert re.search(r"\d+(\.\d+)? m?s generation · \d+(\.\d+)? m?s wall", facts), facts
    assert re.search(r"Request\s+req_", facts), facts
    assert "palette-gradient: done" in page.inner_text("#status")
    shot(page, "key")
    page.reload()  # the key stays for the tab (sessionStorage), never in the URL
    wait_models(page)
    assert key not in page.url
    assert traffic_keys(engine) == ["play-test"]


@pytest.mark.slow
@pytest.mark.browser
def test_browser_generate_uses_a_key_typed_but_not_yet_kept(gateway, browser_page):
    """A person types the key and presses Generate straight away, without "Use key": that key."""
    page = browser_page
    url, key, engine = gateway(0.0)
    page.goto(url + "/playground")
    wait_models(page)
    page.fill("#key", key)
    page.select_option("#model-a", "prompt-card")
    page.fill("#prompt", "a lighthouse at dusk")
    page.click("#generate")
    page.wait_for_selector("#result-a .state:has-text('Done')", timeout=15_000)
    assert image_shown(page, "a")
    assert page.evaluate("sessionStorage.getItem('arena-gateway-key')") == key
    assert traffic_keys(engine) == ["play-test"]


@pytest.mark.slow
@pytest.mark.browser
def test_browser_with_a_free_allowance_and_two_models_side_by_side(gateway, browser_page):
    page = browser_page
    url, _, engine = gateway(0.50)
    page.goto(url + "/playground")
    wait_models(page)
    assert "Free allowance: $0.50" in page.inner_text("#allowance")
    page.select_option("#model-a", "palette-gradient")
    page.select_option("#model-b", "prompt-card")
    page.fill("#prompt", "three red circles")
    page.click("#generate")
    page.wait_for_selector("#result-b .state:has-text('Done')", timeout=15_000)
    page.wait_for_selector("#result-a .state:has-text('Done')", timeout=15_000)
    assert image_shown(page, "a") and image_shown(page, "b")
    boxes = [page.locator(f"#result-{side}").bounding_box() for side in "ab"]
    assert boxes[1]["x"] > boxes[0]["x"] + boxes[0]["width"] - 1  # side by side
    assert "after 1 fallback" in page.inner_text("#result-b .state")
    assert "flaky: server_error" in page.inner_text("#result-b .attempts")
    shot(page, "side-by-side")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the two results stack
    boxes = [page.locator(f"#result-{side}").bounding_box() for side in "ab"]
    assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"] - 1
    shot(page, "phone")
    row = sa.select(GatewayKey.__table__.c.requests).where(
        GatewayKey.__table__.c.name.like("playground:%")
    )
    with engine.connect() as conn:
        assert conn.execute(row).scalar() == 2  # the visitor's two requests, counted for the day
    visitors = traffic_keys(engine)
    assert len(visitors) == 1 and visitors[0].startswith("playground:")


@pytest.mark.slow
@pytest.mark.browser
def test_browser_edit_with_an_uploaded_image(gateway, browser_page, tmp_path):
    page = browser_page
    url, _, _ = gateway(0.50)
    source = tmp_path / "source.png"
    source.write_bytes(make_png(96, 64, (220, 40, 40)))
    page.goto(url + "/playground")
    wait_models(page)
    page.select_option("#model-a", "night-grade")
    page.fill("#prompt", "make it night")
    page.click("#generate")  # an edit model without a source image: not sent, said why
    page.wait_for_selector("#result-a .error:has-text('choose a source image')")
    page.set_input_files("#source", str(source))
    page.wait_for_selector("#source-preview:not([hidden])")
    assert "Edits your source image" in page.inner_text("#hint-a")
    page.click("#generate")
    page.wait_for_selector("#result-a .state:has-text('Done')", timeout=15_000)
    size = page.evaluate(
        "() => { const i = document.querySelector('#result-a .shot img'); return [i.naturalWidth, i.naturalHeight]; }"
    )
    assert size == [96, 64]  # the night grade of the uploaded image itself
    shot(page, "edit")


@pytest.mark.slow
@pytest.mark.browser
def test_browser_shows_a_401_as_its_message(gateway, browser_page):
    page = browser_page
    url, _, _ = gateway(0.0)
    refusal = httpx.post(
        url + "/v1/images/generations",
        json={"model": "palette-gradient", "prompt": "anything"},
        headers={"Authorization": "Bearer arena-not-a-key"},
    )
    assert refusal.status_code == 401
    message = refusal.json()["error"]["message"]
    page.goto(url + "/playground")
    page.fill("#key", "arena-not-a-key")
    page.click("#key-use")
    wait_models(page)
    page.select_option("#model-a", "palette-gradient")
    page.fill("#prompt", "anything")
    page.click("#generate")
    page.wait_for_selector("#result-a .error:not([hidden])", timeout=15_000)
    assert page.inner_text("#result-a .error") == message
    assert "Failed (401)" in page.inner_text("#result-a .state")
    assert message in page.inner_text("#status")
    shot(page, "401")
    page.click("#key-forget")
    page.wait_for_selector("#status:has-text('Enter a gateway key to generate')")
    assert page.evaluate("sessionStorage.getItem('arena-gateway-key')") is None


def test_the_secret_comes_from_the_environment_else_a_file_made_once(tmp_path, monkeypatch):
    from arena.gateway.playground import playground_secret

    settings = settings_with(tmp_path, "sqlite://", 0.0)
    monkeypatch.delenv("ARENA_GATEWAY_SECRET", raising=False)
    made = playground_secret(settings)
    assert len(made) == 64 and playground_secret(settings) == made
    assert (settings.data_dir / "gateway-secret").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("ARENA_GATEWAY_SECRET", "from-the-environment")
    assert playground_secret(settings) == "from-the-environment"


def test_amounts_show_cents_and_smaller_fractions_when_there_are_any():
    from arena.gateway.playground import usd

    assert [usd(x) for x in (0, 0.5, 2, 0.005, 0.1234, 12.3)] == [
        "$0.00",
        "$0.50",
        "$2.00",
        "$0.005",
        "$0.1234",
        "$12.30",
    ]


def test_visitor_days_older_than_a_week_are_forgotten_when_a_new_one_is_made(ring_for):
    from datetime import timedelta

    from arena.store.tables import utcnow
    from arena.store.visitors import visitor_spend

    ring = ring_for(0.05)
    engine = ring.engine
    create_key(engine, "operator-key")  # not a visitor's: kept, however old
    visitor_spend(engine, "playground:aaaaaaaaaaaa-2026-11-01", 0.05)
    visitor_spend(engine, "playground:bbbbbbbbbbbb-2026-11-29", 0.05)
    table = GatewayKey.__table__
    with engine.begin() as conn:
        for name, age_days in [
            ("playground:aaaaaaaaaaaa-2026-11-01", 30),
            ("playground:bbbbbbbbbbbb-2026-11-29", 2),
            ("operator-key", 30),
        ]:
            conn.execute(
                table.update()
                .where(table.c.name == name)
                .values(created_at=utcnow() - timedelta(days=age_days))
            )
    asyncio.run(ring.authorize(bearer(), client_ip="203.0.113.7"))  # a new visitor day
    with engine.connect() as conn:
        names = sorted(conn.execute(sa.select(table.c.name)).scalars())
    assert names == [
        "operator-key",
        f"playground:{VisitorPass(SECRET).visitor('203.0.113.7')}-{DAY}",
        "playground:bbbbbbbbbbbb-2026-11-29",
    ]


def test_an_ipv6_visitor_is_their_slash_64():
    passes = VisitorPass(SECRET)
    token = passes.token("2001:db8:1:2::10", DAY)
    assert passes.check(token, "2001:db8:1:2:abcd::99", DAY)  # a new address in the same /64
    assert passes.check(token, "2001:db8:1:3::10", DAY) is None  # another /64
    assert passes.visitor("::ffff:203.0.113.7") == passes.visitor("203.0.113.7")

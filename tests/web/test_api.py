"""The JSON API in-process: battle and vote rules, blindness, abuse rules, clean 4xx errors."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from arena import store
from arena.ratings import compute_board
from arena.store.tables import Battle

from .factory import (
    BASE,
    BROKEN_MODEL,
    MODELS,
    TEST_OPTIONS,
    Voter,
    fill_store,
    settings_for,
    write_challenges,
)


def _battles(settings) -> list[dict]:
    engine = store.open_engine(settings.database_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(Battle.__table__))]
    engine.dispose()
    return rows


def _votes(settings):
    engine = store.open_engine(settings.database_url)
    try:
        return store.read_votes(engine, extra_columns=True)
    finally:
        engine.dispose()


def test_a_vote_reveals_the_battles_own_models_and_reaches_the_store(make_app, web_settings):
    voter = Voter(make_app())
    battle = voter.battle().json()
    assert (
        len(battle["battle_id"]) == 32 and int(battle["battle_id"], 16) >= 0
    )  # 128 random bits, hex
    reply = voter.vote(battle["battle_id"], "b")
    assert reply.status_code == 200
    stored = {b["id"]: b for b in _battles(web_settings)}[battle["battle_id"]]
    reveal = reply.json()["reveal"]
    assert (reveal["a"]["model"], reveal["a"]["provider"]) == (
        stored["model_left"],
        stored["provider_left"],
    )
    assert (reveal["b"]["model"], reveal["b"]["provider"]) == (
        stored["model_right"],
        stored["provider_right"],
    )
    votes = _votes(web_settings)
    assert len(votes) == 1
    row = votes.iloc[0]
    assert (row.battle_id, row.outcome, row.model_left, row.model_right) == (
        battle["battle_id"],
        "right",
        stored["model_left"],
        stored["model_right"],
    )


def test_a_second_vote_is_409_an_expired_battle_410_and_another_sessions_battle_404(make_app):
    app = make_app(battle_ttl_s=0.4)
    owner, stranger = Voter(app), Voter(app)
    first = owner.battle().json()["battle_id"]
    assert stranger.vote(first).status_code == 404  # and the stranger learns nothing
    assert stranger.client.get(f"/img/{first}/a").status_code == 404
    assert owner.vote(first, "tie").status_code == 200
    again = owner.vote(first, "a")
    assert (
        again.status_code == 409
        and again.json()["error"] == "already_voted"
        and "reveal" not in again.json()
    )
    late = owner.battle().json()["battle_id"]
    time.sleep(0.5)
    expired = owner.vote(late, "a")
    assert expired.status_code == 410 and "reveal" not in expired.json()
    assert owner.vote("0" * 32, "a").status_code == 404


def test_reloading_returns_the_open_battle_instead_of_a_new_pair(make_app):
    voter = Voter(make_app())
    first = voter.battle().json()
    assert voter.battle().json()["battle_id"] == first["battle_id"]
    page = voter.client.get("/")
    assert first["battle_id"] in page.text
    voter.vote(first["battle_id"])
    assert voter.battle().json()["battle_id"] != first["battle_id"]


def _all_text(response) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return headers + "\n" + response.content.decode("latin-1")


def test_nothing_before_the_vote_names_a_model_or_provider(make_app, web_settings):
    """Every response of every battle until the pool runs out, images and static files included."""
    app = make_app()
    voter = Voter(app)
    names = set(web_settings.models) | set(web_settings.providers)
    responses = [
        voter.client.get("/"),
        voter.client.get("/static/arena.js"),
        voter.client.get("/static/arena.css"),
        voter.client.get("/api/session"),
    ]
    battles = 0
    reply = voter.battle()
    while reply.status_code == 200:
        battle = reply.json()
        responses.append(reply)
        responses.append(voter.client.get("/"))  # the page with this battle in it
        for url in filter(None, battle["images"].values()):
            image = voter.client.get(url)
            assert image.status_code == 200
            responses.append(image)
        revealed = voter.vote(battle["battle_id"]).json()["reveal"]
        assert {
            revealed["a"]["model"],
            revealed["b"]["model"],
        } <= names  # names do come back after the vote
        battles += 1
        reply = voter.battle()
    assert battles >= 4 and reply.status_code == 404 and reply.json()["error"] == "no_battle"
    for response in responses:
        text = _all_text(response).lower()
        for name in names:
            assert name.lower() not in text, f"{name!r} leaked in {response.url}"


def test_images_are_uniform_derivatives_with_identical_headers(make_app):
    import io

    from PIL import Image

    voter = Voter(make_app())
    battle = voter.battle().json()
    a, b = (voter.client.get(battle["images"][side]) for side in "ab")
    assert a.content != b.content
    for reply in (a, b):
        assert reply.headers["content-type"] == "image/webp"
        assert reply.headers["cache-control"] == "no-store"
        assert "etag" not in reply.headers and "last-modified" not in reply.headers
        assert (
            reply.content[:4] == b"RIFF" and reply.content[12:16] == b"VP8 "
        )  # plain lossy WebP: no EXIF/XMP/ICC chunk
    assert sorted(k for k in a.headers if k != "content-length") == sorted(
        k for k in b.headers if k != "content-length"
    )
    assert Image.open(io.BytesIO(a.content)).size == Image.open(io.BytesIO(b.content)).size


def test_failed_generations_are_never_shown_and_no_image_is_shown_twice(make_app, web_settings):
    app = make_app()
    for _ in range(3):
        voter = Voter(app)
        while (reply := voter.battle()).status_code == 200:
            voter.vote(reply.json()["battle_id"])
    battles = _battles(web_settings)
    shown = [m for b in battles for m in (b["model_left"], b["model_right"])]
    assert BROKEN_MODEL not in shown and set(MODELS) <= set(shown)
    for session in {b["session"] for b in battles}:
        images = [
            i
            for b in battles
            if b["session"] == session
            for i in (b["image_left"], b["image_right"])
        ]
        assert len(images) == len(set(images))
    assert all(b["model_left"] != b["model_right"] for b in battles)
    weights = json.loads(battles[0]["weights_json"])
    assert {"floor", "challenge_p", "pair_p", "pair_uncertainty", "challenge_votes"} <= set(weights)


def test_sides_are_counterbalanced_per_challenge_and_pair(tmp_path, db_url):

    from arena.web import create_app

    settings = settings_for(
        tmp_path,
        db_url,
        write_challenges(tmp_path / "ch"),
        models={"zephyr-xl-9000": "acme-cloud", "quokka-diffusion": "bluefin-ai"},
    )
    settings = type(settings)(
        **{
            **settings.__dict__,
            "models": {
                k: v
                for k, v in settings.models.items()
                if k in ("zephyr-xl-9000", "quokka-diffusion")
            },
        }
    )
    fill_store(settings, samples=1, challenges=("fox",))
    app = create_app(settings, TEST_OPTIONS)
    for _ in range(21):
        assert Voter(app).battle().status_code == 200
    battles = _battles(settings)
    left = sum(b["model_left"] == "quokka-diffusion" for b in battles)
    assert len(battles) == 21 and left in (10, 11)


def test_session_cookie_is_httponly_lax_and_secure_behind_https(make_app):
    app = make_app()
    plain = TestClient(app, base_url=BASE).get("/api/session").headers["set-cookie"].lower()
    assert "httponly" in plain and "samesite=lax" in plain and "secure" not in plain
    secure = TestClient(app, base_url="https://testserver").get("/").headers["set-cookie"].lower()
    assert "httponly" in secure and "samesite=lax" in secure and "secure" in secure


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"Origin": None}, 403, "origin_required"),
        ({"Origin": "https://evil.example"}, 403, "origin_mismatch"),
        ({"X-CSRF-Token": None}, 403, "bad_csrf_token"),
        ({"X-CSRF-Token": "0" * 40}, 403, "bad_csrf_token"),
    ],
)
def test_every_post_needs_this_origin_and_the_sessions_csrf_token(make_app, change, status, code):
    voter = Voter(make_app())
    battle_id = voter.battle().json()["battle_id"]
    headers = {k: v for k, v in {**voter.headers, **change}.items() if v is not None}
    for path, body in (
        ("/api/battles", None),
        ("/api/votes", {"battle_id": battle_id, "choice": "a"}),
    ):
        reply = voter.client.post(path, headers=headers, json=body)
        assert (reply.status_code, reply.json()["error"]) == (status, code)
    assert voter.vote(battle_id).status_code == 200  # none of the refused posts consumed the battle


def test_a_referer_stands_in_for_a_missing_origin_and_a_cookieless_post_is_401(make_app):
    app = make_app()
    voter = Voter(app)
    headers = {"Referer": BASE + "/", "X-CSRF-Token": voter.csrf}
    assert voter.client.post("/api/battles", headers=headers).status_code == 200
    anonymous = TestClient(app, base_url=BASE).post("/api/battles", headers=voter.headers)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "no_session"


def test_rate_limits_per_session_and_per_ip_answer_429_with_retry_after(make_app):
    app = make_app(session_per_min=6, rate_burst=3)
    voter = Voter(app)
    codes = [voter.battle().status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = voter.battle()
    assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
    assert Voter(app).battle().status_code == 200  # another session still may
    by_ip = make_app(ip_per_min=6, rate_burst=2)
    one, two = Voter(by_ip), Voter(by_ip)
    assert [one.battle().status_code, two.battle().status_code, two.battle().status_code] == [
        200,
        200,
        429,
    ]


def test_fast_burst_and_repeat_votes_are_kept_but_flagged_and_left_out_of_ratings(
    make_app, web_settings
):
    app = make_app(min_dwell_s=0.3, burst_votes=2, burst_window_s=60)
    voter = Voter(app)
    quick = voter.battle().json()["battle_id"]
    fast_reply = voter.vote(quick)
    time.sleep(0.35)
    slow_id = voter.battle().json()["battle_id"]
    time.sleep(0.35)
    slow_reply = voter.vote(slow_id)
    time.sleep(0.35)
    third = voter.battle().json()["battle_id"]
    time.sleep(0.35)
    voter.vote(third)
    assert set(fast_reply.json()) == set(slow_reply.json())  # the voter is not told
    votes = _votes(web_settings).set_index("battle_id")
    assert votes.loc[quick, "flagged"] and "fast" in votes.loc[quick, "flag_reason"]
    slow_reason = (
        votes.loc[slow_id, "flag_reason"] if votes.loc[slow_id, "flagged"] else ""
    )  # may be repeat_pair if the draw repeated a pair
    assert "fast" not in slow_reason and "burst" not in slow_reason
    assert votes.loc[third, "flagged"] and "burst" in votes.loc[third, "flag_reason"]
    assert votes.loc[quick, "dwell_ms"] < 300 <= votes.loc[slow_id, "dwell_ms"]
    engine = store.open_engine(web_settings.database_url)
    clean = store.read_votes(engine, include_flagged=False)
    engine.dispose()
    assert set(clean["battle_id"]) == set(votes.index[votes["flag_reason"].isna()])
    assert quick not in set(clean["battle_id"]) and third not in set(clean["battle_id"])


def test_a_voters_second_vote_on_the_same_challenge_and_pair_is_flagged(make_app, web_settings):
    voter = Voter(make_app())
    pairs = {}
    while (reply := voter.battle()).status_code == 200:
        battle_id = reply.json()["battle_id"]
        voter.vote(battle_id)
    for row in _votes(web_settings).itertuples():
        key = (row.challenge, frozenset((row.model_left, row.model_right)))
        assert row.flagged == (key in pairs), row
        assert (row.flag_reason == "repeat_pair") == (key in pairs)
        pairs.setdefault(key, row.battle_id)


def test_votes_feed_the_ratings_and_the_log_keeps_only_salted_ip_hashes(make_app, web_settings):
    app = make_app()
    for _ in range(4):
        voter = Voter(app)
        while (reply := voter.battle()).status_code == 200:
            voter.vote(reply.json()["battle_id"], "a")
    engine = store.open_engine(web_settings.database_url)
    board = compute_board(store.read_votes(engine, include_flagged=False))
    engine.dispose()
    assert set(board["model"]) >= set(MODELS)
    votes, battles = _votes(web_settings), _battles(web_settings)
    assert len(votes) == len(battles)
    ip = "testclient"  # what the test transport reports as the client address (and as its user agent)
    for row in battles:
        row.pop("user_agent")
        assert ip not in json.dumps(row, default=str) and len(row["ip_hash"]) == 32
    engine = store.open_engine(web_settings.database_url)
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT DISTINCT ip_hash FROM votes")).scalars().all()
    engine.dispose()
    assert hashes == [battles[0]["ip_hash"]]  # one client, one salted hash, the same in both logs


BAD_VOTES = [
    ("text/plain", b'{"battle_id": "x", "choice": "a"}', 415, "json_required"),
    ("application/json", b"{not json", 400, "invalid_json"),
    ("application/json", b"[1, 2]", 422, "invalid_body"),
    ("application/json", b'"a"', 422, "invalid_body"),
    ("application/json", b"", 400, "invalid_json"),
    ("application/json", b'{"battle_id": 5, "choice": "a"}', 422, "invalid_battle_id"),
    (
        "application/json",
        b'{"battle_id": "../../etc/passwd", "choice": "a"}',
        422,
        "invalid_battle_id",
    ),
    (
        "application/json",
        b'{"battle_id": "' + b"a" * 32 + b'", "choice": "left"}',
        422,
        "invalid_choice",
    ),
    (
        "application/json",
        b'{"battle_id": "' + b"a" * 32 + b'", "choice": "a", "model": "x"}',
        422,
        "invalid_body",
    ),
    (
        "application/json",
        b'{"battle_id": "' + b"a" * 32 + b'", "choice": null}',
        422,
        "invalid_choice",
    ),
    ("application/json", b'{"pad": "' + b"x" * 10_000 + b'"}', 413, "body_too_large"),
    ("application/json", b"\xff\xfe", 400, "invalid_json"),
]


@pytest.mark.parametrize("content_type, body, status, code", BAD_VOTES)
def test_bad_votes_get_a_clear_json_4xx(make_app, content_type, body, status, code):
    voter = Voter(make_app())
    reply = voter.client.post(
        "/api/votes", headers={**voter.headers, "Content-Type": content_type}, content=body
    )
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/json" and reply.json()["error"] == code
    assert reply.json()["message"]


def test_unknown_paths_methods_and_images_are_json_4xx(make_app):
    voter = Voter(make_app())
    battle_id = voter.battle().json()["battle_id"]
    for method, path, status in (
        ("GET", "/nowhere", 404),
        ("GET", "/api/votes", 405),
        ("DELETE", "/api/battles", 405),
        ("GET", f"/img/{battle_id}/zz", 404),
        ("GET", "/img/short/a", 404),
        ("GET", "/leaderboard/../../etc/passwd", 404),
    ):
        reply = voter.client.request(method, path)
        assert reply.status_code == status, path
        assert reply.json()["error"]


def test_challenge_text_is_escaped_in_the_page_and_plain_in_json(tmp_path, sqlite_url):

    from arena.web import create_app

    prompt = '<script>alert("pwned")</script> a fox & "friends"'
    settings = settings_for(tmp_path, sqlite_url, write_challenges(tmp_path / "ch", prompt=prompt))
    fill_store(settings, samples=1, challenges=("fox",))
    voter = Voter(create_app(settings, TEST_OPTIONS))
    page = voter.client.get("/").text
    assert (
        "<script>alert" not in page
        and "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    )
    assert "<b>in snow</b>" not in page and "Fox &lt;b&gt;in snow&lt;/b&gt;" in page
    assert voter.battle().json()["challenge"]["prompt"] == prompt  # the JS sets it with textContent


@pytest.mark.slow  # builds the demo store (a session fixture the browser test shares)
def test_the_demo_store_serves_battles_of_baselines_labelled_only_after_the_vote(
    demo_settings_copy,
):
    from arena.web import create_app

    voter = Voter(create_app(demo_settings_copy, TEST_OPTIONS))
    page = voter.client.get("/")
    assert page.status_code == 200 and "baseline" not in page.text.lower()
    battle = voter.battle().json()
    assert "baseline" not in json.dumps(battle)
    reveal = voter.vote(battle["battle_id"]).json()["reveal"]
    assert reveal["a"]["baseline"] is True and reveal["b"]["baseline"] is True
    assert reveal["a"]["provider"] == "local"

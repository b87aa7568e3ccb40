"""The official openai SDK against the gateway on the local baseline provider: generations (b64 and
url, n=2), edits with one and two files, errors as the SDK's own exception types; every exchange
checked against OpenAI's OpenAPI document, every attempt found in the store as traffic."""

from __future__ import annotations

import base64
import hashlib
import io
import time

import httpx
import openai
import pytest
import sqlalchemy as sa
from PIL import Image
from support.images import make_png
from support.processes import wait_until

from arena import store
from arena.store.keys import revoke_key

from .kit import conformance_errors, gateway_settings, make_key, running_gateway, traffic_rows

_CLIENTS: list[openai.OpenAI] = []


def sdk(url: str, key: str) -> openai.OpenAI:
    """The SDK as an application makes it, only pointed at the gateway (closed after the test)."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
    _CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def assert_conforms(recorder) -> None:
    exchanges = recorder.images_exchanges()
    assert exchanges
    for exchange in exchanges:
        assert conformance_errors(exchange) == [], exchange.path


def decoded(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_generate_b64_two_images(gateway):
    url, recorder, settings, key = gateway
    raw = sdk(url, key).images.with_raw_response.generate(
        model="prompt-card", prompt="a red cat on a blue mat", n=2, size="256x256"
    )
    assert raw.headers["x-arena-provider"] == "local"
    request_id = raw.headers["x-arena-request-id"]
    assert request_id.startswith("req_")
    result = raw.parse()
    assert len(result.data) == 2
    for item in result.data:
        assert decoded(item.b64_json).size == (256, 256)
    assert result.output_format == "png" and result.size == "256x256"
    metadata = result.model_extra["metadata"]
    assert metadata["model"] == "prompt-card" and metadata["provider"] == "local"
    assert metadata["model_id"] == "prompt-card" and metadata["cost_usd"] == pytest.approx(0.02)
    assert [a["provider"] for a in metadata["attempts"]] == ["local"]
    assert metadata["attempts"][0]["failure_class"] is None
    assert metadata["attempts"][0]["generation_ms"] > 0
    assert_conforms(recorder)

    wait_until(lambda: traffic_rows(settings), what="the traffic attempt in the store")
    (row,) = traffic_rows(settings)
    assert row["source"] == "traffic" and row["run_id"] == "traffic" and row["job_id"] is None
    assert row["gateway_key"] == "tester" and row["gateway_request_id"] == request_id
    assert row["ok"] and row["model"] == "prompt-card" and row["provider"] == "local"
    assert row["task"] == "text-to-image" and row["challenge"] == ""
    first = base64.b64decode(result.data[0].b64_json)
    assert row["image_sha256"] == hashlib.sha256(first).hexdigest()
    assert (row["width"], row["height"], row["format"]) == (256, 256, "PNG")
    assert row["generation_ms"] > 0 and row["ttfb_ms"] > 0
    assert not (settings.data_dir / "images").exists()  # keep_outputs is off
    assert row["prompt"] is None  # ... and so is the prompt


def test_generate_url_is_served_by_the_gateway(gateway):
    url, recorder, settings, key = gateway
    result = sdk(url, key).images.generate(
        model="prompt-card", prompt="golden sunset", size="128x128", response_format="url"
    )
    (item,) = result.data
    assert item.b64_json is None and item.url.startswith(f"{url}/v1/files/")
    image = httpx.get(item.url, timeout=30)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (128, 128)
    assert (settings.data_dir / "gateway-files").is_dir()
    missing = httpx.get(f"{url}/v1/files/AAAAAAAAAAAAAAAAAAAAAA.png", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "file_not_found"
    assert_conforms(recorder)


def test_url_files_expire(local_settings):
    settings = local_settings(file_ttl_s=0.5)
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        result = sdk(url, key).images.generate(
            model="prompt-card", prompt="x", size="64x64", response_format="url"
        )
        assert httpx.get(result.data[0].url, timeout=30).status_code == 200
        time.sleep(0.8)
        gone = httpx.get(result.data[0].url, timeout=30)
        assert gone.status_code == 404 and "expired" in gone.json()["error"]["message"]


def test_edit_with_one_file_and_with_two(gateway, tmp_path):
    url, recorder, settings, key = gateway
    first, second = make_png(64, 48, (10, 200, 30)), make_png(40, 40, (200, 10, 30))
    (tmp_path / "a.png").write_bytes(first)
    (tmp_path / "b.png").write_bytes(second)
    client = sdk(url, key)
    with open(tmp_path / "a.png", "rb") as f:
        one = client.images.edit(model="identity", image=f, prompt="keep it")
    assert base64.b64decode(one.data[0].b64_json) == first  # identity: the source, unchanged
    with open(tmp_path / "a.png", "rb") as f1, open(tmp_path / "b.png", "rb") as f2:
        two = client.images.edit(model="identity", image=[f1, f2], prompt="keep the first")
    assert base64.b64decode(two.data[0].b64_json) == first
    assert two.model_extra["metadata"]["provider"] == "local"
    forms = [e.form for e in recorder.images_exchanges()]
    assert forms[0]["image"] == "<binary>" and forms[1]["image"] == ["<binary>"] * 2
    assert_conforms(recorder)
    wait_until(lambda: len(traffic_rows(settings)) == 2, what="both edit attempts")
    assert {r["task"] for r in traffic_rows(settings)} == {"edit"}


def test_edit_as_json_with_data_uris(gateway):
    url, recorder, _, key = gateway
    source = make_png(32, 32, (1, 2, 3))
    uri = "data:image/png;base64," + base64.b64encode(source).decode()
    headers = {"Authorization": f"Bearer {key}"}
    reply = httpx.post(
        f"{url}/v1/images/edits",
        json={"model": "identity", "prompt": "same", "images": [{"image_url": uri}]},
        headers=headers,
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert base64.b64decode(reply.json()["data"][0]["b64_json"]) == source
    remote = httpx.post(
        f"{url}/v1/images/edits",
        json={
            "model": "identity",
            "prompt": "same",
            "images": [{"image_url": "https://example.com/a.png"}],
        },
        headers=headers,
        timeout=60,
    )
    assert remote.status_code == 400
    assert remote.json()["error"]["param"] == "images[0].image_url"
    assert "does not fetch" in remote.json()["error"]["message"]
    assert_conforms(recorder)


def test_errors_surface_as_the_sdks_own_types(gateway):
    url, recorder, settings, key = gateway
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(url, "arena-not-a-key").images.generate(model="prompt-card", prompt="x")
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert "arena-not-a-key" not in caught.value.message
    assert caught.value.response.headers["x-arena-request-id"].startswith("req_")
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(url, key).images.generate(model="no-such-model", prompt="x")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(url, key).images.generate(model="prompt-card", prompt="x", size="huge")
    assert caught.value.param == "size" and "huge" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(url, key).images.generate(model="identity", prompt="x")
    assert caught.value.code == "model_not_supported"
    assert "/v1/images/edits" in caught.value.message
    engine = store.open_engine(settings.database_url)
    revoke_key(engine, "tester")
    engine.dispose()
    # a revoke reaches every gateway process within the key cache's few seconds: ask without
    # generating (a dry run) until it is refused, then a real request is refused too
    deadline = time.monotonic() + 15
    while True:
        try:
            sdk(url, key).images.generate(
                model="prompt-card", prompt="x", extra_query={"dry_run": "true"}
            )
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the revoked key was still taken after 15 s"
        time.sleep(0.2)
    with pytest.raises(openai.AuthenticationError):
        sdk(url, key).images.generate(model="prompt-card", prompt="x")
    assert_conforms(recorder)
    assert traffic_rows(settings) == []  # nothing reached a provider


def test_all_routes_down_is_503_for_the_sdk(tmp_path, db_url, fault_server):

    settings = gateway_settings(
        tmp_path,
        db_url,
        providers={
            "one": {"protocol": "openai", "base_url": fault_server.base_url},
            "two": {"protocol": "openai", "base_url": fault_server.base_url},
        },
        models={"m": {"routes": {"one": "server-error", "two": "server-error"}}},
    )
    key = make_key(settings)
    with (
        running_gateway(settings) as (url, recorder),
        pytest.raises(openai.InternalServerError) as caught,
    ):
        sdk(url, key).images.generate(model="m", prompt="x")
    error = caught.value
    assert error.status_code == 503 and error.code == "all_providers_exhausted"
    assert [(a["provider"], a["failure_class"]) for a in error.body["attempts"]] == [
        ("one", "server_error"),
        ("two", "server_error"),
    ]
    assert_conforms(recorder)


def test_keep_outputs_stores_the_images(local_settings):
    settings = local_settings(keep_outputs=True)
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        result = sdk(url, key).images.generate(
            model="prompt-card", prompt="a red kite", size="64x64"
        )
    digest = hashlib.sha256(base64.b64decode(result.data[0].b64_json)).hexdigest()
    (row,) = traffic_rows(settings)  # the lifespan's end flushed the writer
    assert row["image_sha256"] == digest and row["prompt"] == "a red kite"
    engine = store.open_engine(settings.database_url)
    with engine.connect() as conn:
        path = conn.execute(sa.text("SELECT path FROM images WHERE sha256 = :s"), {"s": digest})
        stored = path.scalar()
    engine.dispose()
    assert stored and (settings.data_dir / stored).is_file()


def test_a_store_outage_does_not_fail_replies(gateway, caplog):
    url, _, settings, key = gateway
    engine = store.open_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE attempts RENAME TO attempts_away"))
    try:
        for _ in range(3):
            result = sdk(url, key).images.generate(model="prompt-card", prompt="x", size="64x64")
            assert len(result.data) == 1
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE attempts_away RENAME TO attempts"))
        engine.dispose()
    # Held and tried again (store_retry_s = 1), then spilled: saved, or in the traffic spill file.
    spill = settings.data_dir / "spill"
    wait_until(
        lambda: len(traffic_rows(settings)) == 3 or list(spill.glob("traffic-*.jsonl")),
        what="the held attempts saved or spilled",
    )


def test_a_spill_is_saved_when_a_gateway_starts(local_settings):
    settings = local_settings()
    key = make_key(settings)
    engine = store.open_engine(settings.database_url)
    with running_gateway(settings) as (url, _):
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE attempts RENAME TO attempts_away"))
        sdk(url, key).images.generate(model="prompt-card", prompt="x", size="64x64")
        spill = settings.data_dir / "spill"
        wait_until(lambda: list(spill.glob("traffic-*.jsonl")), what="the attempt spilled")
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE attempts_away RENAME TO attempts"))
    engine.dispose()
    assert traffic_rows(settings) == []
    with running_gateway(settings):  # the next gateway's start saves it
        pass
    (row,) = traffic_rows(settings)
    assert row["source"] == "traffic" and row["ok"]
    assert not list(spill.glob("traffic-*.jsonl"))


def test_concurrent_requests_each_get_their_own_reply(gateway):
    import asyncio

    url, _, settings, key = gateway

    async def swarm():
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
            return await asyncio.gather(
                *(
                    client.images.with_raw_response.generate(
                        model="prompt-card", prompt=f"prompt number {i}", size="64x64"
                    )
                    for i in range(20)
                )
            )

    replies = asyncio.run(swarm())
    ids = [r.headers["x-arena-request-id"] for r in replies]
    assert len(set(ids)) == 20
    digests = {
        hashlib.sha256(base64.b64decode(r.parse().data[0].b64_json)).hexdigest() for r in replies
    }
    assert len(digests) == 20  # every prompt drew its own card
    wait_until(lambda: len(traffic_rows(settings)) == 20, what="all 20 attempts stored")
    rows = traffic_rows(settings)
    assert {r["gateway_request_id"] for r in rows} == set(ids)
    assert {r["image_sha256"] for r in rows} == digests


def test_a_key_over_its_budget_or_rate_is_refused_in_the_sdks_types(local_settings):
    """Through the app and the SDK: a $0.015 budget takes one $0.01 image, then 402; a key of one
    request a minute gets its second refused as a RateLimitError with Retry-After."""
    settings = local_settings()
    budgeted = make_key(settings, "budgeted", budget_usd=0.015)
    paced = make_key(settings, "paced", rate_per_min=1)
    with running_gateway(settings) as (url, _):
        first = sdk(url, budgeted).images.generate(model="prompt-card", prompt="x", size="64x64")
        assert first.model_extra["metadata"]["cost_usd"] == pytest.approx(0.01)

        def refused() -> bool:  # the charge reaches the budget once written (about a second)
            try:
                sdk(url, budgeted).images.generate(
                    model="prompt-card", prompt="x", extra_query={"dry_run": "true"}
                )
            except openai.APIStatusError as exc:
                assert exc.status_code == 402 and exc.code == "budget_exceeded"
                assert "budgeted" in exc.message and "0.015" in exc.message
                return True
            return False

        wait_until(refused, what="the budgeted key refused")
        sdk(url, paced).images.generate(model="prompt-card", prompt="x", size="64x64")
        with pytest.raises(openai.RateLimitError) as caught:
            sdk(url, paced).images.generate(model="prompt-card", prompt="x", size="64x64")
        assert caught.value.code == "rate_limit_exceeded"
        assert int(caught.value.response.headers["retry-after"]) >= 1
    served = [(r["gateway_key"], r["ok"]) for r in traffic_rows(settings)]
    assert served == [("budgeted", True), ("paced", True)]  # the refused ones reached no provider

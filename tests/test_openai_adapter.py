"""The OpenAI-compatible adapter against a loopback server speaking the protocol; every exchange checked
against the shipped OpenAPI document, and so are the replies of arena's own local provider."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fake_openai import (
    PNG,
    FakeOpenAI,
    conformance_errors,
    schema_errors,
    unknown_fields,
)

from arena.config import ProviderConfig
from arena.errors import ProviderError
from arena.harness import make_client, send_with_timeout
from arena.providers.base import ImageRequest, InputImage, Stopwatch
from arena.providers.local import LocalServer
from arena.providers.openai import OpenAIAdapter, sse_events, stream_error

KEY = "sk-test-secret-0123456789"
TRANSPORTS = ["aiohttp", "httpx"]  # the harness's default, and httpx's own pool
SOURCES = (
    InputImage(data=PNG, mime="image/png", name="a.png"),
    InputImage(data=PNG, mime="image/png", name="b.png"),
)


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def every_exchange_conforms(request):
    """After each test, everything the adapter sent and the fake answered must match the spec."""
    if "server" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("server")
    first = len(server.exchanges)
    yield
    for exchange in server.exchanges[first:]:
        assert conformance_errors(exchange) == [], exchange.path


def generate(server, request: ImageRequest, transport: str = "aiohttp", timeout_s: float = 5.0):
    provider = ProviderConfig(
        name="fake", protocol="openai", base_url=server.base_url, timeout_s=timeout_s
    )

    async def go():
        async with make_client(provider, transport) as client:
            watch = Stopwatch()
            reply = await OpenAIAdapter(provider, client, KEY).generate(request, watch)
            return reply, watch

    return asyncio.run(go())


def failure(server, model: str, transport: str = "aiohttp", timeout_s: float = 5.0, **params):
    request = ImageRequest(task="text-to-image", prompt="a red fox", model_id=model, params=params)
    with pytest.raises(ProviderError) as caught:
        generate(server, request, transport, timeout_s)
    assert KEY not in str(caught.value)
    return caught.value


def t2i(model: str, **kwargs) -> ImageRequest:
    return ImageRequest(task="text-to-image", prompt="a red fox", model_id=model, **kwargs)


# --- success --------------------------------------------------------------------------------------


def test_base64_reply_is_decoded_and_timed(server):
    reply, watch = generate(server, t2i("ok", size="1024x1024"))
    assert reply.images == [PNG]
    assert reply.request_id == "req_123" and reply.processing_ms == 4321.0
    assert reply.extra["output_format"] == "png"
    assert 0 < watch.ms("ttfb") <= watch.ms("done")
    assert watch.ms("done", since="download_start") >= 0
    sent = server.exchanges[-1]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "ok", "prompt": "a red fox", "size": "1024x1024"}


def test_n_and_output_format_are_sent_typed_and_every_image_kept(server):
    request = t2i("ok", n=3, params={"output_format": "jpeg", "output_compression": 85})
    reply, _ = generate(server, request)
    assert reply.images == [PNG] * 3
    assert server.exchanges[-1].body["n"] == 3
    assert server.exchanges[-1].body["output_compression"] == 85  # a number, not "85"
    assert reply.extra["output_format"] == "jpeg"


def test_edit_sends_every_image_as_repeated_image_brackets_with_typed_fields(server):
    request = ImageRequest(
        task="edit",
        prompt="swap the sky",
        model_id="ok",
        images=SOURCES,
        n=2,
        params={"output_compression": 70, "input_fidelity": "high"},
    )
    reply, _ = generate(server, request)
    assert reply.images == [PNG, PNG]
    sent = server.exchanges[-1]
    assert sent.path == "/images/edits"
    assert sent.file_parts == [("image[]", "a.png", "image/png"), ("image[]", "b.png", "image/png")]
    assert sent.body["image"] == ["<binary>", "<binary>"]
    assert sent.body["n"] == 2 and sent.body["output_compression"] == 70


def test_url_reply_is_downloaded_at_once_and_the_download_timed(server):
    reply, watch = generate(server, t2i("url", n=2))
    assert reply.images == [PNG, PNG]
    assert watch.ms("ttfb") <= watch.ms("download_start", since=None) <= watch.ms("done")


def test_gateway_provider_header_and_metadata_cost_are_recorded(server):
    reply, _ = generate(server, t2i("gateway"))
    assert reply.served_by == "vertex"
    assert reply.cost_usd == pytest.approx(0.04)
    assert reply.request_id == "lf_9"


# --- streaming ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_streaming_records_the_first_partial_image_before_the_final_one(server, transport):
    request = t2i("stream", params={"stream": True, "partial_images": 2})
    reply, watch = generate(server, request, transport)
    assert reply.images == [PNG]  # partial images are timed, never kept as the result
    assert reply.extra["streamed"] is True
    # The fake pauses 50 ms before each event: headers, then partial 1, partial 2, then the image.
    assert watch.ms("ttfb") < reply.first_partial_ms < watch.ms("done")
    assert reply.first_partial_ms - watch.ms("ttfb") >= 40
    assert watch.ms("done") - reply.first_partial_ms >= 80
    assert watch.ms("download_start") >= reply.first_partial_ms
    events = [name for name, _ in server.exchanges[-1].reply]
    assert events == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]


def test_streaming_edit_uses_image_edit_events_and_sends_stream_as_true(server):
    request = ImageRequest(
        task="edit",
        prompt="swap the sky",
        model_id="stream",
        images=SOURCES[:1],
        n=2,
        params={"stream": True, "partial_images": 1},
    )
    reply, _ = generate(server, request)
    assert reply.images == [PNG, PNG] and reply.first_partial_ms is not None
    sent = server.exchanges[-1]
    assert sent.body["stream"] is True  # "true" on the wire; Python's "True" would be rejected
    assert [name for name, _ in sent.reply][0] == "image_edit.partial_image"


def test_streaming_without_partials_has_no_first_partial_time(server):
    reply, _ = generate(server, t2i("stream", params={"stream": True, "partial_images": 0}))
    assert reply.images == [PNG] and reply.first_partial_ms is None


def test_an_error_event_is_classified_by_its_code(server):
    error = failure(server, "stream-refused", stream=True, partial_images=1)
    assert error.failure_class == "refused" and "moderation_blocked" in str(error)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_cut_mid_way_is_a_network_failure(server, transport):
    assert (
        failure(server, "stream-broken", transport, stream=True, partial_images=1).failure_class
        == "network"
    )


def test_a_stream_that_ends_without_an_image_is_a_bad_response(server):
    error = failure(server, "stream-unfinished", stream=True, partial_images=1)
    assert error.failure_class == "bad_response" and "before any completed image" in str(error)


def test_sse_reader_handles_comments_crlf_multiline_data_and_a_missing_final_blank_line():
    async def chunks():
        for piece in (
            b": keep-alive\r\n\r\nevent: a\r\nda",
            b'ta: {"x":\r\ndata: 1}\r\n\r\n',
            b"data: [DONE]",
        ):
            yield piece

    async def collect():
        return [(name, data) for name, data, _ in [e async for e in sse_events(chunks())]]

    assert asyncio.run(collect()) == [("a", '{"x":\n1}'), ("", "[DONE]")]


# --- failures -------------------------------------------------------------------------------------


def test_moderation_blocked_is_refused(server):
    error = failure(server, "refuse")
    assert error.failure_class == "refused" and error.status_code == 400


@pytest.mark.parametrize("model", ["gateway-refuse", "gateway-refuse-502"])
def test_a_gateways_upstream_refusal_is_refused_whatever_its_status(server, model):
    # Lumenfall passes an upstream content-policy refusal on as UPSTREAM_ERROR (status varies).
    error = failure(server, model)
    assert error.failure_class == "refused", error
    assert "UPSTREAM_ERROR" in str(error) and "safety system" in str(error)


def test_a_gateways_refusal_in_a_stream_error_event_is_refused():
    event = {"error": {"code": "UPSTREAM_ERROR", "message": "rejected by the safety system"}}
    assert stream_error(event).failure_class == "refused"
    other = {"error": {"code": "UPSTREAM_ERROR", "message": "upstream timed out"}}
    assert stream_error(other).failure_class == "server_error"


def test_a_wrong_key_is_auth_naming_the_provider_and_its_variable(server):
    def send(api_key_env):
        provider = ProviderConfig(
            name="lumen", protocol="openai", base_url=server.base_url, api_key_env=api_key_env
        )

        async def go():
            async with make_client(provider) as client:
                adapter = OpenAIAdapter(provider, client, KEY)
                return await send_with_timeout(adapter, t2i("wrong-key"))

        reply, _, error = asyncio.run(go())
        assert reply is None and error.failure_class == "auth" and error.status_code == 401
        assert KEY not in str(error)
        return str(error)

    said = "Incorrect API key provided: sk-te****."
    assert send("LUMEN_KEY").startswith(f"auth: lumen rejected the key in $LUMEN_KEY (401): {said}")
    assert send(None).startswith(
        f"auth: lumen wants a key and none is set: give it api_key_env (401): {said}"
    )


def test_rate_limit_carries_retry_after(server):
    error = failure(server, "rate-limited")
    assert error.failure_class == "rate_limited" and error.retry_after_s == 7.0


def test_5xx_is_a_server_error(server):
    error = failure(server, "server-error")
    assert error.failure_class == "server_error" and error.status_code == 503


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_reply_within_the_timeout_is_a_timeout(server, transport):
    assert failure(server, "slow", transport, timeout_s=0.3).failure_class == "timeout"


def test_malformed_json_is_a_bad_response(server):
    error = failure(server, "malformed")
    assert error.failure_class == "bad_response" and "not valid JSON" in str(error)


def test_an_expired_result_url_is_a_bad_response_naming_the_status(server):
    error = failure(server, "expired-url")
    assert error.failure_class == "bad_response" and "404" in str(error)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_truncated_body_is_a_network_failure_not_a_timeout(server, transport):
    assert failure(server, "truncated", transport).failure_class == "network"


# --- the schema checks themselves -----------------------------------------------------------------


def test_the_schema_checks_catch_what_they_should():
    # Not vacuous: a reply without `created`, a wrongly typed n, and a field OpenAI does not know.
    assert schema_errors("ImagesResponse", {"data": []})
    assert schema_errors("CreateImageRequest", {"prompt": "x", "n": "two"})
    assert unknown_fields("CreateImageRequest", {"prompt": "x", "aspect_ratio": "16:9"}) == [
        "aspect_ratio"
    ]
    event = {"type": "image_generation.partial_image", "b64_json": "x", "created_at": 1}
    assert schema_errors("ImageGenStreamEvent", event)  # missing partial_image_index and more
    # ... and stay lenient where the spec lags: gpt-image-2 answers free-form sizes.
    assert not schema_errors("ImagesResponse", {"created": 1, "size": "2048x1152", "quality": "hd"})


# --- arena's own local provider -------------------------------------------------------------------


def test_local_provider_replies_conform_to_the_openai_schema():
    with LocalServer() as local, httpx.Client(base_url=local.base_url, timeout=30) as client:
        generated = client.post(
            "/images/generations", json={"model": "palette", "prompt": "blue sky", "size": "64x64"}
        )
        by_url = client.post(
            "/images/generations",
            json={
                "model": "prompt-card",
                "prompt": "hi",
                "size": "64x48",
                "response_format": "url",
                "n": 2,
            },
        )
        edited = client.post(
            "/images/edits",
            data={"model": "identity", "prompt": "x"},
            files=[("image[]", ("a.png", PNG, "image/png"))],
        )
        missing = client.post("/images/generations", json={"model": "nope", "prompt": "x"})
        urls = [item["url"] for item in by_url.json()["data"]]
        downloaded = [client.get(url).content for url in urls]
    for response in (generated, by_url, edited):
        assert response.status_code == 200
        assert schema_errors("ImagesResponse", response.json()) == []
    assert edited.json()["data"][0]["b64_json"]
    assert all(data.startswith(b"\x89PNG") for data in downloaded) and len(downloaded) == 2
    assert missing.status_code == 404 and schema_errors("ErrorResponse", missing.json()) == []


@pytest.mark.parametrize("padding", [0, 70_000])  # the plain parse, and the large-blob fast path
def test_the_base64_text_is_kept_as_the_reply_carried_it(padding):
    """reply.encoded is the provider's own text (a gateway passes it on), byte for byte: here with
    a last character whose unused bits are set, which decodes to the same image but which encoding
    the image again would not give back."""
    import base64

    image = PNG + b"\0" * padding + b"\0" * ((1 - len(PNG) - padding) % 3)  # length % 3 == 1
    text = base64.b64encode(image)
    assert text.endswith(b"==")
    odd = text[:-3] + bytes([text[-3] + 1]) + b"=="  # 'A' -> 'B': the unused low bits set
    assert base64.b64decode(odd) == image and base64.b64encode(image) != odd
    body = b'{"created": 1, "data": [{"b64_json": "' + odd + b'"}]}'
    watch = Stopwatch()
    watch.start()
    watch.mark("ttfb")
    watch.mark("body_done")
    provider = ProviderConfig(name="fake", protocol="openai", base_url="http://127.0.0.1:9")
    adapter = OpenAIAdapter(provider, None, None)
    reply = asyncio.run(adapter.read_reply(body, httpx.Headers(), watch))
    assert reply.images == [image] and reply.encoded == [odd]

"""The local baseline provider over real HTTP on loopback, reached through the OpenAI adapter."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image
from support.images import make_png

from arena.config import ProviderConfig
from arena.errors import ProviderError
from arena.harness import make_client
from arena.providers.base import ImageRequest, InputImage, Stopwatch
from arena.providers.local import LocalServer
from arena.providers.openai import OpenAIAdapter


@pytest.fixture(scope="module")
def server():
    with LocalServer() as s:
        yield s


def _generate(server, request: ImageRequest):
    async def go():
        provider = ProviderConfig(
            name="local", protocol="local", base_url=server.base_url, timeout_s=30
        )
        async with make_client(provider) as client:
            watch = Stopwatch()
            reply = await OpenAIAdapter(provider, client, None).generate(request, watch)
            return reply, watch

    return asyncio.run(go())


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


SOURCE = make_png(80, 60, (180, 150, 120))


def test_identity_returns_the_input_unchanged(server):
    request = ImageRequest(
        task="edit",
        prompt="add hair",
        model_id="identity",
        images=(InputImage(SOURCE, "image/png", "face.png"),),
    )
    reply, watch = _generate(server, request)
    assert reply.images == [SOURCE]
    assert 0 < watch.ms("ttfb") <= watch.ms("done")


@pytest.mark.parametrize("model", ["cartoon", "night"])
def test_classical_edits_keep_size_and_change_pixels(server, model):
    source = np.zeros((60, 80, 3), dtype=np.uint8)
    source[:, 40:] = (240, 230, 220)
    buffer = io.BytesIO()
    Image.fromarray(source).save(buffer, format="PNG")
    request = ImageRequest(
        task="edit",
        prompt="x",
        model_id=model,
        images=(InputImage(buffer.getvalue(), "image/png", "a.png"),),
    )
    reply, _ = _generate(server, request)
    out = _pixels(reply.images[0])
    assert out.shape == (60, 80, 3)
    assert np.abs(out - source.astype(np.int16)).mean() > 5
    if model == "night":  # darker and bluer than the bright half it came from
        bright = out[:, 50:70]
        assert bright.mean() < 200 and bright[..., 2].mean() > bright[..., 0].mean()


def test_text_to_image_renders_at_the_requested_size_and_differs_by_prompt(server):
    a, _ = _generate(
        server,
        ImageRequest(
            task="text-to-image", prompt="a red fox", model_id="prompt-card", size="320x200"
        ),
    )
    b, _ = _generate(
        server,
        ImageRequest(
            task="text-to-image", prompt="a blue whale", model_id="prompt-card", size="320x200"
        ),
    )
    assert _pixels(a.images[0]).shape == (200, 320, 3)
    assert a.images[0] != b.images[0]
    response = httpx.post(
        f"{server.base_url}/images/generations",
        json={"model": "palette", "prompt": "golden sunset", "size": "16:9"},
    )
    h, w, _ = _pixels(base64.b64decode(response.json()["data"][0]["b64_json"])).shape
    assert abs(w / h - 16 / 9) < 0.05


def test_url_replies_are_served_by_the_same_server(server):
    request = ImageRequest(
        task="edit",
        prompt="x",
        model_id="identity",
        params={"response_format": "url"},
        images=(InputImage(SOURCE, "image/png", "a.png"),),
    )
    reply, watch = _generate(server, request)
    assert reply.images == [SOURCE]
    assert watch.ms("done", since="download_start") is not None and watch.ms(
        "download_start"
    ) >= watch.ms("ttfb")


def test_several_input_images_are_accepted(server):
    second = make_png(30, 30)
    request = ImageRequest(
        task="edit",
        prompt="outfit",
        model_id="identity",
        images=(InputImage(SOURCE, "image/png", "a.png"), InputImage(second, "image/png", "b.png")),
    )
    reply, _ = _generate(server, request)
    assert reply.images == [SOURCE]  # identity keeps the first (the subject)


@pytest.mark.parametrize(
    "request_, cls, status",
    [
        (ImageRequest(task="text-to-image", prompt="x", model_id="no-such"), "client_error", 404),
        (ImageRequest(task="text-to-image", prompt="x", model_id="identity"), "client_error", 400),
        (
            ImageRequest(task="text-to-image", prompt="x", model_id="prompt-card", size="99999x2"),
            "client_error",
            400,
        ),
        (
            ImageRequest(
                task="edit",
                prompt="x",
                model_id="cartoon",
                images=(InputImage(b"not an image", "image/png", "a.png"),),
            ),
            "client_error",
            400,
        ),
    ],
)
def test_bad_requests_get_openai_style_errors(server, request_, cls, status):
    with pytest.raises(ProviderError) as info:
        _generate(server, request_)
    assert info.value.failure_class == cls and info.value.status_code == status


def test_error_body_has_openai_shape(server):
    response = httpx.post(
        f"{server.base_url}/images/generations",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "invalid_json"


def test_b64_reply_decodes_to_png(server):
    response = httpx.post(
        f"{server.base_url}/images/generations",
        json={"model": "palette", "prompt": "teal", "size": "64x64"},
    )
    body = response.json()
    assert response.status_code == 200 and isinstance(body["created"], int)
    png = base64.b64decode(body["data"][0]["b64_json"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

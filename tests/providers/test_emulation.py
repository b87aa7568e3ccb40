"""Emulated parameters against loopback providers: n by parallel requests, output_format by conversion."""

from __future__ import annotations

import io

from PIL import Image

from arena.providers.emulation import EmulatingAdapter, convert_image, emulate
from arena.providers.gemini import GeminiAdapter
from arena.providers.openai import OpenAIAdapter

from .loopback import RESULT_PNG, call, text_request


def emulated_gemini(provider, client, key):
    return emulate(GeminiAdapter(provider, client, key))


def test_n_on_a_one_image_protocol_sends_n_requests_and_returns_n_images(gemini):
    outcome = call(
        emulated_gemini,
        f"{gemini.base}/v1beta",
        text_request("gemini-2.5-flash-image", n=3),
        protocol="gemini",
    )
    assert outcome.error is None, outcome.error
    assert outcome.reply.images == [RESULT_PNG] * 3
    assert len(gemini.calls) == 3 and outcome.reply.extra["emulated_n"] == 3
    marks = outcome.watch.marks_ns
    assert outcome.watch.sent_ns <= marks["ttfb"] <= marks["done"]


def test_output_format_is_converted_when_the_protocol_cannot_send_it(gemini):
    request = text_request(
        "gemini-2.5-flash-image", params={"output_format": "jpeg", "output_compression": 80}
    )
    outcome = call(emulated_gemini, f"{gemini.base}/v1beta", request, protocol="gemini")
    assert outcome.error is None, outcome.error
    (image,) = outcome.reply.images
    assert Image.open(io.BytesIO(image)).format == "JPEG"
    sent = gemini.calls[0].json
    assert "output_format" not in str(sent) and "output_compression" not in str(sent)


def test_protocols_that_take_everything_are_not_wrapped():
    from arena.config import ProviderConfig

    provider = ProviderConfig(name="o", protocol="openai", base_url="http://127.0.0.1:1/v1")
    adapter = OpenAIAdapter(provider, None, None)
    assert emulate(adapter) is adapter
    gemini = ProviderConfig(name="g", protocol="gemini", base_url="http://127.0.0.1:1")
    assert isinstance(emulate(GeminiAdapter(gemini, None, None)), EmulatingAdapter)


def test_convert_image_keeps_pixels_and_sizes():
    png = RESULT_PNG
    webp = convert_image(png, "webp", 100)
    assert Image.open(io.BytesIO(webp)).format == "WEBP"
    assert Image.open(io.BytesIO(webp)).size == Image.open(io.BytesIO(png)).size
    assert convert_image(png, "png") is png

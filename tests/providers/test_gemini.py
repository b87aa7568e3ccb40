"""The Gemini adapter against a loopback Gemini: inline_data in and out, imageConfig, blocks, RPC errors."""

from __future__ import annotations

import base64

import pytest

from arena.providers.gemini import GeminiAdapter

from .loopback import KEY, RESULT_PNG, SOURCE_A, SOURCE_B, call, edit_request, text_request


def run(fake, request, **kwargs):
    return call(GeminiAdapter, f"{fake.base}/v1beta", request, protocol="gemini", **kwargs)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_generation_decodes_the_inline_image_and_times_the_body_as_download(gemini, transport):
    outcome = run(
        gemini,
        text_request("gemini-3-pro-image-preview", aspect_ratio="16:9", resolution="2k"),
        transport=transport,
    )
    assert outcome.error is None, outcome.error
    assert outcome.reply.images == [RESULT_PNG]
    (post,) = gemini.calls
    assert post.path == "/v1beta/models/gemini-3-pro-image-preview:generateContent"
    assert post.headers["x-goog-api-key"] == KEY and "authorization" not in post.headers
    assert post.json["contents"] == [{"role": "user", "parts": [{"text": "a red fox in snow"}]}]
    assert post.json["generationConfig"] == {
        "responseModalities": ["IMAGE"],
        "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
    }
    assert outcome.reply.request_id == "Xq2laN-7AbCdEfGh"
    assert outcome.reply.extra["usage"]["candidatesTokenCount"] == 1290
    marks = outcome.watch.marks_ns
    assert (
        outcome.watch.sent_ns
        <= marks["ttfb"]
        == marks["download_start"]
        <= marks["body_done"]
        == marks["done"]
    )


def test_a_pixel_size_becomes_ratio_and_tier(gemini):
    run(gemini, text_request("gemini-2.5-flash-image", size="1024x1024"))
    assert gemini.calls[0].json["generationConfig"]["imageConfig"] == {
        "aspectRatio": "1:1",
        "imageSize": "1K",
    }


def test_nothing_asked_sends_no_image_config(gemini):
    run(gemini, text_request("gemini-2.5-flash-image"))
    assert "imageConfig" not in gemini.calls[0].json["generationConfig"]


def test_input_images_are_inline_data_parts_before_the_prompt(gemini):
    outcome = run(gemini, edit_request("gemini-2.5-flash-image", images=(SOURCE_A, SOURCE_B)))
    assert outcome.error is None, outcome.error
    parts = gemini.calls[0].json["contents"][0]["parts"]
    assert [p.get("text") for p in parts] == [None, None, "make it night"]
    assert [base64.b64decode(p["inline_data"]["data"]) for p in parts[:2]] == [
        SOURCE_A.data,
        SOURCE_B.data,
    ]
    assert parts[0]["inline_data"]["mime_type"] == "image/png"


def test_params_go_into_generation_config_or_the_request(gemini):
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    run(
        gemini,
        text_request(
            "gemini-2.5-flash-image",
            params={
                "temperature": 0.4,
                "safetySettings": safety,
                "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
            },
        ),
    )
    body = gemini.calls[0].json
    assert body["safetySettings"] == safety
    assert body["generationConfig"]["temperature"] == 0.4
    assert body["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]


def test_draft_thought_images_are_skipped(gemini):
    gemini.reset("thinking")
    outcome = run(gemini, text_request("gemini-3-pro-image-preview"))
    assert outcome.reply.images == [RESULT_PNG]


@pytest.mark.parametrize(
    ("mode", "failure", "words"),
    [
        (
            "prompt_blocked",
            "refused",
            "PROHIBITED_CONTENT",
        ),  # promptFeedback.blockReason, no candidates
        ("image_safety", "refused", "IMAGE_SAFETY"),  # a candidate with no parts
        ("text_only", "empty_output", "only describe"),  # STOP with words and no image: not a block
        ("no_image", "empty_output", "NO_IMAGE"),
    ],
)
def test_a_reply_without_an_image_part_is_classified_by_its_reason(gemini, mode, failure, words):
    gemini.reset(mode)
    outcome = run(gemini, text_request("gemini-2.5-flash-image"))
    assert outcome.failure == failure, outcome.error
    assert outcome.error.status_code is None  # all of these are HTTP 200
    assert words in str(outcome.error)


def test_quota_exhaustion_reads_the_retry_delay_from_rpc_details(gemini):
    gemini.reset("quota")
    outcome = run(gemini, text_request("gemini-2.5-flash-image"))
    assert outcome.failure == "rate_limited"
    assert outcome.error.retry_after_s == 30.0  # no Retry-After header: RetryInfo says 30s
    assert "RESOURCE_EXHAUSTED" in str(outcome.error)

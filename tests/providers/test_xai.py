"""The xAI adapter against a loopback xAI: request shape, URL and base64 replies, silent moderation, cost."""

from __future__ import annotations

import base64

import pytest

from arena.providers.xai import XAIAdapter

from .loopback import (
    RESULT_PNG,
    SOURCE_A,
    SOURCE_B,
    assert_sync_timing,
    call,
    edit_request,
    text_request,
)


def run(fake, request, **kwargs):
    return call(XAIAdapter, f"{fake.base}/v1", request, protocol="xai", **kwargs)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_generation_downloads_the_url_and_reports_cost_in_ticks(xai, transport):
    outcome = run(
        xai,
        text_request("grok-imagine-image", aspect_ratio="16:9", resolution="2K"),
        transport=transport,
    )
    assert outcome.error is None, outcome.error
    assert outcome.reply.images == [RESULT_PNG]
    assert outcome.reply.cost_usd == pytest.approx(0.02)  # 2e8 ticks / 1e10 ticks per dollar
    (post,) = xai.calls_to("POST", "/v1/images/generations")
    assert post.headers["authorization"].startswith("Bearer ")
    assert post.json == {
        "model": "grok-imagine-image",
        "prompt": "a red fox in snow",
        "aspect_ratio": "16:9",
        "resolution": "2k",
    }
    assert len(xai.calls_to("GET", "/files/xai-out.png")) == 1
    assert_sync_timing(outcome)
    assert outcome.watch.marks_ns["download_start"] >= outcome.watch.marks_ns["body_done"]


def test_a_pixel_size_is_sent_as_ratio_and_tier_never_as_size(xai):
    outcome = run(xai, text_request("grok-imagine-image", size="1536x1024"))
    assert outcome.error is None, outcome.error  # the fake answers 400 to `size`, as xAI does
    (post,) = xai.calls_to("POST")
    assert post.json["aspect_ratio"] == "3:2" and post.json["resolution"] == "1k"
    assert "size" not in post.json


def test_base64_with_a_data_prefix_is_decoded_and_needs_no_download(xai):
    xai.reset("b64")
    outcome = run(xai, text_request("grok-2-image", params={"response_format": "b64_json"}))
    assert outcome.reply.images == [RESULT_PNG]
    assert xai.calls_to("POST")[0].json["response_format"] == "b64_json"  # params pass through
    assert not xai.calls_to("GET", "/files/")
    marks = outcome.watch.marks_ns
    assert marks["done"] == marks["body_done"] and marks["download_start"] == marks["ttfb"]


def test_one_input_image_goes_as_image_with_a_data_uri(xai):
    outcome = run(xai, edit_request("grok-imagine-image"))
    assert outcome.error is None, outcome.error
    (post,) = xai.calls_to("POST", "/v1/images/edits")
    assert post.json["image"] == {"url": SOURCE_A.data_uri(), "type": "image_url"}
    assert "images" not in post.json
    assert base64.b64decode(post.json["image"]["url"].split(",", 1)[1]) == SOURCE_A.data


def test_several_input_images_go_as_images_in_order(xai):
    outcome = run(xai, edit_request("grok-imagine-image", images=(SOURCE_A, SOURCE_B)))
    assert outcome.error is None, outcome.error
    (post,) = xai.calls_to("POST", "/v1/images/edits")
    assert [ref["url"] for ref in post.json["images"]] == [SOURCE_A.data_uri(), SOURCE_B.data_uri()]
    assert "image" not in post.json


@pytest.mark.parametrize("mode", ["moderated", "empty", "input_blocked", "forbidden_safety"])
def test_silent_and_explicit_moderation_is_refused(xai, mode):
    xai.reset(mode)
    outcome = run(xai, text_request("grok-imagine-image"))
    assert outcome.failure == "refused", outcome.error
    assert not xai.calls_to("GET", "/files/")


def test_an_expired_result_url_is_a_bad_response_with_its_status(xai):
    xai.reset("expired", file_status=403)
    outcome = run(xai, text_request("grok-imagine-image"))
    assert outcome.failure == "bad_response"
    assert outcome.error.status_code == 403

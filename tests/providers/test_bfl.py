"""The BFL adapter against a loopback BFL: polling_url used verbatim, statuses, moderation, sizes, inputs."""

from __future__ import annotations

import base64

import pytest

from arena.providers.bfl import BFLAdapter

from .loopback import (
    KEY,
    RESULT_PNG,
    SOURCE_A,
    SOURCE_B,
    assert_queue_timing,
    call,
    edit_request,
    text_request,
)

INTERVAL_S = 0.02


def run(fake, request, **kwargs):
    kwargs.setdefault("poll_interval_s", INTERVAL_S)
    return call(BFLAdapter, f"{fake.base}/v1", request, protocol="bfl", **kwargs)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_success_polls_the_returned_url_with_the_key_and_downloads_the_sample(bfl, transport):
    outcome = run(bfl, text_request("flux-kontext-pro", aspect_ratio="16:9"), transport=transport)
    assert outcome.error is None, outcome.error
    assert outcome.reply.images == [RESULT_PNG]
    (submit,) = bfl.calls_to("POST")
    assert submit.path == "/v1/flux-kontext-pro" and submit.headers["x-key"] == KEY
    assert submit.json == {"prompt": "a red fox in snow", "aspect_ratio": "16:9"}
    polls = bfl.calls_to("GET", "/get_result")
    assert len(polls) == 5  # 2 queued, 2 with progress, 1 Ready
    assert all(p.path == "/eu2/v1/get_result" and p.headers["x-key"] == KEY for p in polls)
    assert len(bfl.calls_to("GET", "/files/sample.jpg")) == 1
    assert outcome.reply.request_id == polls[0].query.removeprefix("id=")
    assert outcome.reply.cost_usd is None  # credits are reported, the configured price decides
    assert outcome.reply.extra["cost_credits"] == 4.0
    assert_queue_timing(outcome, INTERVAL_S, queue_polls=2, progress_polls=2)


@pytest.mark.parametrize(
    ("fields", "width", "height"),
    [
        ({"aspect_ratio": "16:9", "resolution": "2K"}, 2720, 1536),  # 2736x1536 passes 4 MP
        ({"size": "1024x768"}, 1024, 768),
        ({"aspect_ratio": "1:1"}, 1024, 1024),
    ],
)
def test_flux2_gets_width_and_height_in_multiples_of_16_within_4_megapixels(
    bfl, fields, width, height
):
    outcome = run(bfl, text_request("flux-2-pro", **fields))
    assert outcome.error is None, outcome.error
    body = bfl.calls_to("POST")[0].json
    assert (body["width"], body["height"]) == (width, height)
    assert "aspect_ratio" not in body


def test_input_images_go_as_input_image_then_numbered_fields_in_base64(bfl):
    outcome = run(
        bfl,
        edit_request(
            "flux-kontext-max", images=(SOURCE_A, SOURCE_B), params={"safety_tolerance": 2}
        ),
    )
    assert outcome.error is None, outcome.error
    body = bfl.calls_to("POST")[0].json
    assert base64.b64decode(body["input_image"]) == SOURCE_A.data
    assert base64.b64decode(body["input_image_2"]) == SOURCE_B.data
    assert "input_image_3" not in body and body["safety_tolerance"] == 2


@pytest.mark.parametrize(
    ("mode", "failure", "status"),
    [
        ("request_moderated", "refused", None),
        ("content_moderated", "refused", None),
        ("error", "server_error", None),
        ("task_not_found", "client_error", None),
        ("unknown_status", "bad_response", None),
        ("no_credits", "client_error", 402),
        ("invalid_input", "client_error", 422),
        ("expired", "bad_response", 403),  # the signed sample URL outlived its 10 minutes
    ],
)
def test_statuses_and_errors_are_classified(bfl, mode, failure, status):
    bfl.reset(mode, file_status=403)
    outcome = run(bfl, text_request("flux-kontext-pro"))
    assert outcome.failure == failure, outcome.error
    assert outcome.error.status_code == status
    assert bool(bfl.calls_to("GET", "/files/")) == (
        mode == "expired"
    )  # only a Ready job is downloaded


def test_moderation_details_reach_the_message(bfl):
    bfl.reset("content_moderated")
    outcome = run(bfl, text_request("flux-kontext-pro"))
    assert "Content Moderated" in str(outcome.error) and "Derivative Works Filter" in str(
        outcome.error
    )


def test_a_job_pending_past_our_timeout_is_a_timeout(bfl):
    bfl.reset("stuck")
    outcome = run(bfl, text_request("flux-kontext-pro"), timeout_s=0.3)
    assert outcome.failure == "timeout"
    assert 0.25 < outcome.elapsed_s < 2.0
    assert len(bfl.calls_to("GET", "/get_result")) >= 3

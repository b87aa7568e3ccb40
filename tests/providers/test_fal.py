"""The fal queue adapter against a loopback fal: polls, queue vs processing time, cancel, refusals."""

from __future__ import annotations

import pytest

from arena.providers.fal import FalAdapter

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
    return call(FalAdapter, fake.base, request, protocol="fal", **kwargs)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_queue_success_uses_returned_urls_and_splits_queue_from_processing(fal, transport):
    fal.reset(queue_polls=2, progress_polls=3)
    outcome = run(
        fal, text_request("fal-ai/flux-pro/kontext", aspect_ratio="16:9"), transport=transport
    )
    assert outcome.error is None, outcome.error
    assert outcome.reply.images == [RESULT_PNG]
    (submit,) = fal.calls_to("POST")
    assert submit.path == "/fal-ai/flux-pro/kontext"
    assert submit.headers["authorization"] == f"Key {KEY}"
    assert submit.json == {"prompt": "a red fox in snow", "aspect_ratio": "16:9"}
    # Status and result live under the app root, as returned; a rebuilt URL would get 404s.
    polls = fal.calls_to("GET", "/status")
    assert len(polls) == 6 and all(p.path.startswith("/fal-ai/flux-pro/requests/") for p in polls)
    assert len(fal.calls_to("GET", "/files/fal-out.png")) == 1
    assert outcome.reply.request_id == submit_id(fal)
    assert outcome.reply.extra["inference_ms"] == pytest.approx(12.5)
    assert_queue_timing(outcome, INTERVAL_S, queue_polls=2, progress_polls=3)
    assert not fal.calls_to("PUT")


def submit_id(fal) -> str:
    (rid,) = fal.jobs
    return rid


def test_a_pixel_size_goes_as_image_size_and_resolution_passes(fal):
    outcome = run(
        fal,
        text_request(
            "fal-ai/nano-banana-pro",
            size="1536x1024",
            resolution="2K",
            params={"output_format": "png"},
        ),
    )
    assert outcome.error is None, outcome.error
    body = fal.calls_to("POST")[0].json
    assert body["image_size"] == {"width": 1536, "height": 1024}
    assert body["resolution"] == "2K" and body["output_format"] == "png"
    assert "aspect_ratio" not in body


@pytest.mark.parametrize(
    ("model_id", "images", "field", "expected"),
    [
        ("fal-ai/flux-pro/kontext", (SOURCE_A,), "image_url", SOURCE_A.data_uri()),
        (
            "fal-ai/flux-pro/kontext/max/multi",
            (SOURCE_A, SOURCE_B),
            "image_urls",
            [SOURCE_A.data_uri(), SOURCE_B.data_uri()],
        ),
        ("fal-ai/nano-banana/edit", (SOURCE_A,), "image_urls", [SOURCE_A.data_uri()]),
    ],
)
def test_input_images_are_data_uris_in_the_endpoints_field(fal, model_id, images, field, expected):
    outcome = run(fal, edit_request(model_id, images=images))
    assert outcome.error is None, outcome.error
    body = fal.calls_to("POST")[0].json
    assert body[field] == expected
    assert not ({"image_url", "image_urls"} - {field}) & set(body)


def test_the_image_field_can_be_named_per_route_and_is_not_sent(fal):
    request = edit_request(
        "fal-ai/some-editor", params={"arena_image_field": "reference_image_urls[]"}
    )
    run(fal, request)
    body = fal.calls_to("POST")[0].json
    assert body["reference_image_urls"] == [SOURCE_A.data_uri()]
    assert "arena_image_field" not in body and "image_url" not in body


def test_a_job_finished_between_polls_takes_processing_time_from_the_server(fal):
    fal.reset(queue_polls=0, progress_polls=0)
    outcome = run(fal, text_request("fal-ai/flux/dev"))
    assert outcome.error is None, outcome.error
    assert outcome.reply.processing_ms == pytest.approx(12.5)
    assert outcome.reply.queue_ms == pytest.approx(
        max(0.0, outcome.watch.ms("completed", since="submit_ack") - 12.5)
    )


def test_our_timeout_mid_poll_cancels_the_job_at_the_returned_cancel_url(fal):
    fal.reset("stuck")
    outcome = run(fal, text_request("fal-ai/flux-pro/kontext"), timeout_s=0.4)
    assert outcome.failure == "timeout"
    assert outcome.elapsed_s < 2.0
    (cancel,) = fal.calls_to("PUT")
    rid = submit_id(fal)
    assert cancel.path == f"/fal-ai/flux-pro/requests/{rid}/cancel"
    assert cancel.headers["authorization"] == f"Key {KEY}"
    assert not [
        c for c in fal.calls_to("GET") if c.path.endswith(f"/requests/{rid}")
    ]  # no result fetch


@pytest.mark.parametrize(
    ("mode", "failure", "status"),
    [
        ("refused", "refused", 422),  # content_policy_violation in detail[]
        ("nsfw", "refused", None),  # a blacked-out image flagged by has_nsfw_concepts
        ("invalid_input", "client_error", 422),
        ("runner_error", "server_error", 500),
        ("result_malformed", "bad_response", None),
        ("expired", "bad_response", 404),
    ],
)
def test_result_failures_are_classified(fal, mode, failure, status):
    fal.reset(mode, queue_polls=0, progress_polls=1)
    outcome = run(fal, text_request("fal-ai/flux-pro/kontext"))
    assert outcome.failure == failure, outcome.error
    assert outcome.error.status_code == status
    assert not fal.calls_to("PUT")  # the job had ended: nothing to cancel


def test_one_flaky_status_poll_does_not_fail_the_generation(fal):
    fal.reset("poll_flaky", queue_polls=1, progress_polls=1)
    outcome = run(fal, text_request("fal-ai/flux-pro/kontext"))
    assert outcome.error is None, outcome.error
    assert outcome.reply.images == [RESULT_PNG]


@pytest.mark.parametrize(
    ("mode", "failure"),
    [
        ("poll_down", "server_error"),
        ("poll_malformed", "bad_response"),
        ("unknown_status", "bad_response"),
    ],
)
def test_a_failed_poll_fails_the_attempt_and_cancels_the_job(fal, mode, failure):
    fal.reset(mode)
    outcome = run(fal, text_request("fal-ai/flux-pro/kontext"))
    assert outcome.failure == failure, outcome.error
    assert len(fal.calls_to("PUT", "/cancel")) == 1


def test_sync_mode_data_uris_are_decoded_without_a_download(fal):
    fal.reset("sync_mode", queue_polls=0, progress_polls=1)
    outcome = run(fal, text_request("fal-ai/flux/dev", params={"sync_mode": True}))
    assert outcome.reply.images == [RESULT_PNG]
    assert not fal.calls_to("GET", "/files/")
    marks = outcome.watch.marks_ns
    assert marks["done"] == marks["body_done"] >= marks["ttfb"] >= marks["completed"]


@pytest.mark.parametrize(
    ("task", "path"),
    [("text-to-image", "/fal-ai/nano-banana"), ("edit", "/fal-ai/nano-banana/edit")],
)
def test_a_route_naming_two_endpoints_sends_each_task_to_its_own(fal, task, path):
    model_id = "fal-ai/nano-banana | fal-ai/nano-banana/edit"
    request = edit_request(model_id) if task == "edit" else text_request(model_id)
    outcome = run(fal, request)
    assert outcome.error is None, outcome.error
    (submit,) = fal.calls_to("POST")
    assert submit.path == path
    assert ("image_urls" in submit.json) == (task == "edit")

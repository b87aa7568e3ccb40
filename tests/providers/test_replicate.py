"""The Replicate adapter against a loopback Replicate: Prefer: wait, polling, failed/canceled, inputs, cancel."""

from __future__ import annotations

import pytest

from arena.providers.replicate import ReplicateAdapter

from .loopback import RESULT_PNG, SOURCE_A, SOURCE_B, call, edit_request, text_request

INTERVAL_S = 0.02


def run(fake, request, **kwargs):
    kwargs.setdefault("poll_interval_s", INTERVAL_S)
    return call(ReplicateAdapter, f"{fake.base}/v1", request, protocol="replicate", **kwargs)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_prediction_finished_within_prefer_wait_needs_no_poll(replicate, transport):
    outcome = run(
        replicate, text_request("google/nano-banana", aspect_ratio="16:9"), transport=transport
    )
    assert outcome.error is None, outcome.error
    assert outcome.reply.images == [RESULT_PNG]
    (create,) = replicate.calls_to("POST")
    assert create.path == "/v1/models/google/nano-banana/predictions"
    assert create.headers["prefer"] == "wait=3"  # the provider timeout, capped at 60 s
    assert create.json == {"input": {"prompt": "a red fox in snow", "aspect_ratio": "16:9"}}
    assert not replicate.calls_to("GET", "/v1/predictions/")
    marks = outcome.watch.marks_ns
    assert (
        marks["submit_ack"]
        == marks["ttfb"]
        == marks["completed"]
        <= marks["download_start"]
        <= marks["done"]
    )
    # Replicate's own timestamps: started 250 ms after created, predict_time 1.5 s.
    assert outcome.reply.queue_ms == pytest.approx(250.0)
    assert outcome.reply.processing_ms == pytest.approx(1500.0)
    assert outcome.reply.request_id.startswith("pred")


def test_a_prediction_still_running_is_polled_at_urls_get_until_it_succeeds(replicate):
    replicate.reset(poll=True, queue_polls=2, progress_polls=2)
    outcome = run(replicate, text_request("google/nano-banana"))
    assert outcome.error is None, outcome.error
    assert outcome.reply.images == [RESULT_PNG]  # output came as a list of URLs
    polls = replicate.calls_to("GET", "/v1/predictions/")
    assert len(polls) == 5 and all(p.headers["authorization"].startswith("Bearer ") for p in polls)
    assert "prefer" not in polls[0].headers
    marks = outcome.watch.marks_ns
    assert marks["submit_ack"] < marks["started"] < marks["completed"] == marks["ttfb"]
    assert marks["ttfb"] <= marks["download_start"] <= marks["done"]
    # The held create request: at least the fake's hold before the first acknowledgement.
    assert outcome.watch.ms("submit_ack") >= 30
    assert outcome.watch.ms("started", since="submit_ack") >= 3 * INTERVAL_S * 1000


def test_a_pinned_version_goes_to_the_generic_predictions_endpoint(replicate):
    run(
        replicate,
        text_request("black-forest-labs/flux-kontext-pro:0f1178f5a27e9aa2d2d39c8a43c110f7fa7cbf64"),
    )
    (create,) = replicate.calls_to("POST")
    assert create.path == "/v1/predictions"
    assert create.json["version"] == "0f1178f5a27e9aa2d2d39c8a43c110f7fa7cbf64"


@pytest.mark.parametrize(
    ("model_id", "images", "params", "field", "expected"),
    [
        (
            "google/nano-banana",
            (SOURCE_A, SOURCE_B),
            {},
            "image_input",
            [SOURCE_A.data_uri(), SOURCE_B.data_uri()],
        ),
        ("google/nano-banana-pro", (SOURCE_A,), {}, "image_input", [SOURCE_A.data_uri()]),
        ("black-forest-labs/flux-kontext-pro", (SOURCE_A,), {}, "input_image", SOURCE_A.data_uri()),
        ("xai/grok-imagine-image", (SOURCE_A,), {}, "image", SOURCE_A.data_uri()),
        ("someone/new-editor", (SOURCE_A,), {}, "input_image", SOURCE_A.data_uri()),
        (
            "someone/new-editor",
            (SOURCE_A,),
            {"arena_image_field": "images[]"},
            "images",
            [SOURCE_A.data_uri()],
        ),
    ],
)
def test_input_images_go_as_data_uris_in_the_models_field(
    replicate, model_id, images, params, field, expected
):
    outcome = run(replicate, edit_request(model_id, images=images, params=params))
    assert outcome.error is None, outcome.error
    model_input = replicate.calls_to("POST")[0].json["input"]
    assert model_input[field] == expected
    assert "arena_image_field" not in model_input


def test_two_images_for_a_one_image_field_fail_before_sending(replicate):
    outcome = run(
        replicate, edit_request("black-forest-labs/flux-kontext-pro", images=(SOURCE_A, SOURCE_B))
    )
    assert outcome.failure == "client_error"
    assert not replicate.calls


@pytest.mark.parametrize("poll", [False, True])
@pytest.mark.parametrize(
    ("mode", "failure"),
    [
        ("failed_sensitive", "refused"),
        ("failed", "server_error"),
        ("canceled", "server_error"),
        ("no_output", "empty_output"),
    ],
)
def test_terminal_failures_are_classified_whether_held_or_polled(replicate, mode, failure, poll):
    replicate.reset(mode, poll=poll, queue_polls=1, progress_polls=1)
    outcome = run(replicate, text_request("google/nano-banana"))
    assert outcome.failure == failure, outcome.error
    assert not replicate.calls_to("GET", "/files/")
    assert not replicate.calls_to("POST", "/cancel")  # it had already ended


def test_a_sensitive_failure_keeps_replicates_words(replicate):
    replicate.reset("failed_sensitive")
    outcome = run(replicate, text_request("google/nano-banana"))
    assert "E005" in str(outcome.error)


def test_data_uri_output_is_decoded_without_a_download(replicate):
    replicate.reset("data_uri")
    outcome = run(replicate, text_request("google/nano-banana"))
    assert outcome.reply.images == [RESULT_PNG]
    assert not replicate.calls_to("GET", "/files/")
    assert outcome.watch.marks_ns["done"] == outcome.watch.marks_ns["body_done"]


def test_throttling_is_rate_limited_with_the_retry_after(replicate):
    replicate.reset("throttled")
    outcome = run(replicate, text_request("google/nano-banana"))
    assert outcome.failure == "rate_limited"
    assert outcome.error.retry_after_s == 1.0
    assert "throttled" in str(outcome.error)


def test_invalid_input_is_a_client_error_naming_the_field(replicate):
    replicate.reset("invalid_input")
    outcome = run(replicate, text_request("google/nano-banana"))
    assert outcome.failure == "client_error" and outcome.error.status_code == 422
    assert "aspect_ratio" in str(outcome.error)


def test_our_timeout_mid_poll_cancels_the_prediction(replicate):
    replicate.reset("stuck", poll=True)
    outcome = run(replicate, text_request("google/nano-banana"), timeout_s=0.4)
    assert outcome.failure == "timeout"
    assert outcome.elapsed_s < 2.0
    (cancel,) = replicate.calls_to("POST", "/cancel")
    assert cancel.path.startswith("/v1/predictions/pred") and cancel.headers[
        "authorization"
    ].startswith("Bearer ")


def test_an_expired_output_url_is_a_bad_response(replicate):
    replicate.reset("expired")
    outcome = run(replicate, text_request("google/nano-banana"))
    assert outcome.failure == "bad_response" and outcome.error.status_code == 404

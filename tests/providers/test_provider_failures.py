"""Every adapter through the failures all protocols share: 429 + Retry-After, 5xx, bad JSON, broken and hung
connections, refused connections, wrong keys, and keys echoed back by the provider."""

from __future__ import annotations

import pytest

from arena.providers import adapter_class, known_protocols
from arena.providers.local import free_port

from .loopback import KEY, call, text_request

ADAPTERS = {
    # protocol: (fixture, path under the server root, model id)
    "xai": ("xai", "/v1", "grok-imagine-image"),
    "fal": ("fal", "", "fal-ai/flux-pro/kontext"),
    "bfl": ("bfl", "/v1", "flux-kontext-pro"),
    "replicate": ("replicate", "/v1", "google/nano-banana"),
    "gemini": ("gemini", "/v1beta", "gemini-2.5-flash-image"),
}


@pytest.fixture(params=sorted(ADAPTERS))
def target(request):
    protocol = request.param
    fixture, path, model_id = ADAPTERS[protocol]
    fake = request.getfixturevalue(fixture)
    return protocol, fake, f"{fake.base}{path}", model_id


def run(target, **kwargs):
    protocol, _, base_url, model_id = target
    return call(
        adapter_class(protocol),
        base_url,
        text_request(model_id),
        protocol=protocol,
        poll_interval_s=0.02,
        **kwargs,
    )


def test_every_protocol_is_registered_and_known():
    for protocol in ADAPTERS:
        assert adapter_class(protocol).protocol == protocol
        assert protocol in known_protocols()


def test_rate_limit_is_classified_with_its_retry_after(target):
    target[1].reset("rate_limited", retry_after=7)
    outcome = run(target)
    assert outcome.failure == "rate_limited"
    assert outcome.error.status_code == 429 and outcome.error.retry_after_s == 7.0


def test_a_5xx_is_a_server_error(target):
    target[1].reset("server_error")
    outcome = run(target)
    assert outcome.failure == "server_error" and outcome.error.status_code == 503


def test_malformed_json_is_a_bad_response(target):
    target[1].reset("malformed")
    assert run(target).failure == "bad_response"


def test_a_reply_cut_off_mid_body_is_a_network_failure(target):
    target[1].reset("truncated")
    assert run(target).failure == "network"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_refused_connection_is_a_network_failure_not_a_timeout(target, transport):
    protocol, _, _, model_id = target
    dead = f"http://127.0.0.1:{free_port()}"
    outcome = call(
        adapter_class(protocol),
        dead,
        text_request(model_id),
        protocol=protocol,
        transport=transport,
    )
    assert outcome.failure == "network", outcome.error


def test_a_reply_that_never_comes_is_a_timeout_at_our_deadline(target):
    target[1].reset("hang")
    outcome = run(target, timeout_s=0.3)
    assert outcome.failure == "timeout"
    assert 0.25 < outcome.elapsed_s < 1.5


# Each provider's documented reply to a bad key: Gemini's and xAI's are a 400 of their own.
BAD_KEY_STATUS = {"xai": 400, "fal": 401, "bfl": 403, "replicate": 401, "gemini": 400}


def test_a_wrong_key_is_auth_naming_the_provider_and_its_variable(target):
    protocol = target[0]
    outcome = run(target, key="not-the-key")
    status = BAD_KEY_STATUS[protocol]
    assert outcome.failure == "auth", outcome.error
    assert outcome.error.status_code == status
    assert str(outcome.error).startswith(
        f"auth: test-{protocol} rejected the key in $TEST_KEY ({status}): "
    )
    assert "not-the-key" not in str(outcome.error)


def test_a_key_echoed_by_the_provider_never_reaches_the_error(target):
    target[1].reset("echo_key")
    outcome = run(target)
    assert outcome.failure == "auth"
    assert "Incorrect API key" in str(outcome.error)  # the provider's words are kept...
    assert KEY not in str(outcome.error) and KEY not in repr(outcome.error)  # ...without the key


def test_the_adapter_repr_never_shows_the_key(target):
    protocol, _, base_url, _ = target
    from arena.config import ProviderConfig

    adapter = adapter_class(protocol)(
        ProviderConfig(name="p", protocol=protocol, base_url=base_url), None, KEY
    )
    assert KEY not in repr(adapter)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        # a gateway passing an upstream refusal on, whatever the status it picks
        (
            400,
            {"error": {"code": "UPSTREAM_ERROR", "message": "rejected by the safety system"}},
            "refused",
        ),
        (
            502,
            {"error": {"code": "UPSTREAM_ERROR", "message": "Content policy violation"}},
            "refused",
        ),
        (403, {"error": {"code": "moderation_blocked", "message": "blocked"}}, "refused"),
        # a parameter named moderation is not a refusal, nor is an upstream 5xx of another kind
        (
            400,
            {"error": {"code": "invalid_value", "message": "moderation must be low or auto"}},
            "client_error",
        ),
        (
            502,
            {"error": {"code": "UPSTREAM_ERROR", "message": "upstream timed out"}},
            "server_error",
        ),
        (500, {"error": {"message": "the safety system is down"}}, "server_error"),
        # keys: 401/403 always; a 400 only when it says the key is bad
        (401, {"error": {"code": "AUTHENTICATION_FAILED", "message": "bad key"}}, "auth"),
        (403, {"detail": "Forbidden"}, "auth"),
        (400, {"error": {"message": "missing key 'prompt' in body"}}, "client_error"),
        (402, {"error": {"code": "INSUFFICIENT_BALANCE", "message": "top up"}}, "client_error"),
    ],
)
def test_error_replies_are_classed_by_code_words_and_status(status, body, expected):
    import json

    from arena.providers.wire import error_from_status

    assert error_from_status(status, {}, json.dumps(body)).failure_class == expected

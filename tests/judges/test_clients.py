"""The two judge clients against the loopback judge: verdicts, the question's shape, every failure
class, and no key in any error."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import pytest
from support.images import make_png

from arena.config import JudgeConfig
from arena.errors import ProviderError
from arena.judges import JUDGE_CLASSES, JudgeRequest, make_judge
from arena.providers.base import InputImage

DARK = InputImage(make_png(32, 32, (20, 20, 20)), "image/png", "dark")
BRIGHT = InputImage(make_png(32, 32, (230, 230, 230)), "image/png", "bright")
SOURCE = InputImage(make_png(24, 24, (120, 60, 30)), "image/png", "source.png")
PROTOCOLS = ["openai-chat", "gemini"]


def _config(server, protocol, model, **extra) -> JudgeConfig:
    base_url = server.chat_url if protocol == "openai-chat" else server.url
    values = {"timeout_s": 5.0, **extra}
    return JudgeConfig(name="j", protocol=protocol, base_url=base_url, model_id=model, **values)


def _ask(config: JudgeConfig, request: JudgeRequest):
    async def go():
        async with httpx.AsyncClient(trust_env=False) as client:
            return await make_judge(config, client).judge(request)

    return asyncio.run(go())


def _failure(config, request=None) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        _ask(config, request or JudgeRequest("a cat", "text-to-image", DARK, BRIGHT))
    return info.value


def test_the_registry_names_exactly_the_protocols_config_accepts():
    from arena.config import JUDGE_PROTOCOLS

    assert set(JUDGE_CLASSES) == set(JUDGE_PROTOCOLS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", ["consistent", "fenced", "bare"])
def test_a_consistent_judge_picks_the_better_image_in_either_order(judge_server, protocol, model):
    config = _config(judge_server, protocol, model)
    ab = _ask(config, JudgeRequest("a cat", "text-to-image", DARK, BRIGHT))
    ba = _ask(config, JudgeRequest("a cat", "text-to-image", BRIGHT, DARK))
    assert (ab.verdict, ba.verdict) == ("second", "first")
    assert ab.status_code == 200 and 0 < ab.ttfb_ms <= ab.duration_ms
    if model != "bare":
        assert "scores" in ab.reason


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scores_given_by_the_test_decide_and_equal_scores_tie(judge_server, protocol):
    config = _config(judge_server, protocol, "consistent")
    digest = {image: hashlib.sha256(image.data).hexdigest() for image in (DARK, BRIGHT)}
    judge_server.scores = {digest[DARK]: 9.0, digest[BRIGHT]: 1.0}  # against the brightness
    assert _ask(config, JudgeRequest("p", "text-to-image", DARK, BRIGHT)).verdict == "first"
    judge_server.scores[digest[BRIGHT]] = 9.0
    assert _ask(config, JudgeRequest("p", "text-to-image", DARK, BRIGHT)).verdict == "tie"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_first_image_judge_always_says_first(judge_server, protocol):
    config = _config(judge_server, protocol, "first")
    for first, second in ((DARK, BRIGHT), (BRIGHT, DARK)):
        assert _ask(config, JudgeRequest("p", "text-to-image", first, second)).verdict == "first"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_edit_shows_the_sources_labelled_before_the_two_candidates(judge_server, protocol):
    config = _config(judge_server, protocol, "consistent")
    _ask(config, JudgeRequest("add a hat", "edit", DARK, BRIGHT, sources=(SOURCE, SOURCE)))
    (entry,) = judge_server.log
    assert entry.candidates == [DARK.data, BRIGHT.data]
    labels = entry.labels
    assert labels.index("Source 1 (the image to edit):") < labels.index(
        "Source 2 (the image to edit):"
    )
    assert labels.index("Source 2 (the image to edit):") < labels.index("Candidate 1:")
    assert "Prompt: add a hat" in labels and "editing" in labels[0] and '"winner"' in labels[0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("model", "failure"),
    [
        ("malformed", "bad_response"),
        ("badwinner", "bad_response"),
        ("refuse", "refused"),
        ("filtered", "refused"),
        ("always429", "rate_limited"),
        ("broken", "server_error"),
    ],
)
def test_each_bad_reply_has_its_failure_class(judge_server, protocol, model, failure):
    error = _failure(_config(judge_server, protocol, model))
    assert error.failure_class == failure
    if failure == "rate_limited":
        assert error.retry_after_s == pytest.approx(0.2)
    if failure in ("bad_response", "refused"):
        assert error.status_code == 200  # answered: a judge bills it


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_reply_slower_than_timeout_s_is_a_timeout_within_it(judge_server, protocol):
    start = time.monotonic()
    error = _failure(_config(judge_server, protocol, "slow", timeout_s=0.3))
    assert error.failure_class == "timeout"
    assert time.monotonic() - start < judge_server.slow_s


def test_nothing_listening_is_a_network_failure():
    from support.servers import free_port

    config = JudgeConfig(
        name="j",
        protocol="openai-chat",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        model_id="m",
        timeout_s=5.0,
    )
    assert _failure(config).failure_class == "network"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_key_goes_in_the_protocols_header_and_never_in_an_error(
    judge_server, protocol, monkeypatch
):
    secret = "sk-judge-SECRET-0123456789"
    monkeypatch.setenv("JUDGE_KEY", secret)
    config = _config(judge_server, protocol, "consistent", api_key_env="JUDGE_KEY")
    _ask(config, JudgeRequest("p", "text-to-image", DARK, BRIGHT))
    headers = judge_server.log[-1].headers
    if protocol == "openai-chat":
        assert headers["authorization"] == f"Bearer {secret}"
    else:
        assert headers["x-goog-api-key"] == secret and "authorization" not in headers
    error = _failure(_config(judge_server, protocol, "echo-auth", api_key_env="JUDGE_KEY"))
    assert error.failure_class == "auth" and "$JUDGE_KEY" in str(error)
    assert secret not in str(error) and secret not in repr(make_judge(config, httpx.AsyncClient()))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_without_api_key_env_no_key_header_is_sent(judge_server, protocol):
    _ask(_config(judge_server, protocol, "consistent"), JudgeRequest("p", "edit", DARK, BRIGHT))
    headers = judge_server.log[-1].headers
    assert "authorization" not in headers and "x-goog-api-key" not in headers


def test_gemini_reads_retry_info_when_there_is_no_retry_after():
    from arena.judges.gemini import GeminiJudge

    config = JudgeConfig(name="g", protocol="gemini", base_url="http://x", model_id="m")
    judge = GeminiJudge(config, httpx.AsyncClient(), None)
    body = (
        b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",'
        b' "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}'
    )
    error = judge.error_from_reply(httpx.Response(429), body)
    assert error.failure_class == "rate_limited" and error.retry_after_s == 7.0


def test_a_missing_key_variable_is_a_config_error_naming_it(monkeypatch):
    from arena.errors import ConfigError

    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    config = JudgeConfig(
        name="j", protocol="gemini", base_url="http://x", model_id="m", api_key_env="NOT_SET_KEY"
    )
    with pytest.raises(ConfigError, match="NOT_SET_KEY"):
        make_judge(config, httpx.AsyncClient())

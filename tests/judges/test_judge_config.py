"""[judges.NAME] in arena.toml: defaults, and a clear error naming judges.NAME.field for every bad value."""

from __future__ import annotations

import pytest

from arena.config import JudgeConfig, load_settings
from arena.errors import ConfigError
from arena.providers import protocol_facts

BASE = """
data_dir = "d"
[providers.local]
protocol = "local"
[models.identity]
tasks = ["edit"]
[models.identity.providers.local]
model_id = "identity"
"""
JUDGE = """
[judges.lens]
protocol = "openai-chat"
base_url = "https://api.openai.com/v1/"
model_id = "gpt-4o"
api_key_env = "OPENAI_API_KEY"
price_usd_per_call = 0.004
rate_limit_per_s = 2
max_concurrency = 3
"""


def _load(tmp_path, text):
    path = tmp_path / "arena.toml"
    path.write_text(BASE + text)
    return load_settings(path, protocols=protocol_facts())


def test_a_judge_with_its_defaults(tmp_path):
    judge = _load(tmp_path, JUDGE).judges["lens"]
    assert judge == JudgeConfig(
        name="lens",
        protocol="openai-chat",
        base_url="https://api.openai.com/v1",  # the trailing slash dropped
        model_id="gpt-4o",
        api_key_env="OPENAI_API_KEY",
        price_usd_per_call=0.004,
        rate_limit_per_s=2.0,
        max_concurrency=3,
    )
    assert (judge.timeout_s, judge.max_retries, judge.max_retry_after_s) == (120.0, 2, 60.0)
    assert judge.stop_interval_elo == 15.0 and judge.voter == "judge:lens"
    assert _load(tmp_path, "").judges == {}


def test_a_local_judge_needs_no_key_and_gemini_is_a_protocol(tmp_path):
    text = '[judges.g]\nprotocol = "gemini"\nbase_url = "http://127.0.0.1:9"\nmodel_id = "m"\n'
    judge = _load(tmp_path, text).judges["g"]
    assert judge.protocol == "gemini" and judge.api_key_env is None and judge.api_key() is None


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (
            lambda t: t.replace('protocol = "openai-chat"', 'protocol = "openai"'),
            "judges.lens.protocol",
            "unknown judge protocol",
        ),
        (lambda t: t.replace('protocol = "openai-chat"\n', ""), "judges.lens.protocol", "missing"),
        (lambda t: t.replace('model_id = "gpt-4o"\n', ""), "judges.lens.model_id", "missing"),
        (
            lambda t: t.replace('base_url = "https://api.openai.com/v1/"\n', ""),
            "judges.lens.base_url",
            "missing",
        ),
        (
            lambda t: t.replace('"gpt-4o"', '"' + "m" * 201 + '"'),
            "judges.lens.model_id",
            "at most 200",
        ),
        (
            lambda t: t.replace("https://api.openai.com/v1/", "api.openai.com"),
            "judges.lens.base_url",
            "must start with http",
        ),
        (
            lambda t: t.replace("https://api.openai.com/v1/", "http://host:port/v1"),
            "judges.lens.base_url",
            "not a valid URL",
        ),
        (
            lambda t: t.replace('"OPENAI_API_KEY"', '"sk-abc123secret"'),
            "judges.lens.api_key_env",
            "NAME of an environment variable",
        ),
        (lambda t: t.replace("0.004", "-1"), "judges.lens.price_usd_per_call", "0 or more"),
        (
            lambda t: t.replace("0.004", '"cheap"'),
            "judges.lens.price_usd_per_call",
            "must be a number",
        ),
        (
            lambda t: t.replace("rate_limit_per_s = 2", "rate_limit_per_s = 0"),
            "judges.lens.rate_limit_per_s",
            "must be positive",
        ),
        (
            lambda t: t.replace("max_concurrency = 3", "max_concurrency = 2.5"),
            "judges.lens.max_concurrency",
            "must be an integer",
        ),
        (
            lambda t: t.replace("max_concurrency = 3", "max_concurrency = 0"),
            "judges.lens.max_concurrency",
            "must be positive",
        ),
        (lambda t: t + "timeout_s = -1\n", "judges.lens.timeout_s", "must be positive"),
        (lambda t: t + "timeout_s = nan\n", "judges.lens.timeout_s", "finite"),
        (lambda t: t + "max_retries = -1\n", "judges.lens.max_retries", "0 or more"),
        (lambda t: t + "max_retries = true\n", "judges.lens.max_retries", "must be an integer"),
        (
            lambda t: t + "max_retry_after_s = 0\n",
            "judges.lens.max_retry_after_s",
            "must be positive",
        ),
        (
            lambda t: t + "stop_interval_elo = 0\n",
            "judges.lens.stop_interval_elo",
            "must be positive",
        ),
        (lambda t: t + "temperature = 0\n", "judges.lens.temperature", "unknown setting"),
        (
            lambda t: t.replace("[judges.lens]", '[judges."two words"]'),
            "judges.two words",
            "letters, digits",
        ),
        (lambda t: t.replace("[judges.lens]", f"[judges.{'x' * 58}]"), "judges.xxx", "at most 57"),
    ],
)
def test_each_bad_value_names_the_judge_and_field(tmp_path, mutate, field, problem):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, mutate(JUDGE))
    message = str(info.value)
    assert str(tmp_path / "arena.toml") in message and field in message and problem in message
    assert "sk-abc123secret" not in message


def test_judges_must_be_a_table_of_tables(tmp_path):
    path = tmp_path / "arena.toml"
    path.write_text("judges = 3\n" + BASE)
    with pytest.raises(
        ConfigError, match=r"arena.toml: judges: must be a table of \[judges.NAME\]"
    ):
        load_settings(path, protocols=protocol_facts())


def test_the_key_comes_from_the_named_variable_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    judge = _load(tmp_path, JUDGE).judges["lens"]  # loading needs no key
    with pytest.raises(
        ConfigError, match=r"judge lens: api_key_env: environment variable OPENAI_API_KEY"
    ):
        judge.api_key()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert judge.api_key() == "sk-from-env" and "sk-from-env" not in repr(judge)

"""Config loading: defaults, environment overrides, and a clear error for every malformed setting."""

from __future__ import annotations

import pytest

from arena.config import ProtocolFacts, demo_settings, load_settings, parse_settings
from arena.errors import ConfigError
from arena.providers import protocol_facts

FACTS = protocol_facts()

GOOD = """
data_dir = "d"
[providers.openai]
protocol = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
rate_limit_per_s = 2
max_concurrency = 3
[providers.gw]
protocol = "openai"
base_url = "https://api.lumenfall.ai/openai/v1"
api_key_env = "LUMENFALL_API_KEY"
[models."gpt-image-1"]
tasks = ["text-to-image", "edit"]
[models."gpt-image-1".providers.openai]
model_id = "gpt-image-1"
price_usd_by_tier = { "1K" = 0.042, "2K" = 0.167 }
[models."gpt-image-1".providers.gw]
model_id = "openai/gpt-image-1"
price_usd = 0.04
"""


def _load(tmp_path, text):
    path = tmp_path / "arena.toml"
    path.write_text(text)
    return load_settings(path, protocols=FACTS)


def test_one_model_on_two_providers_is_one_model_with_two_routes(tmp_path):
    settings = _load(tmp_path, GOOD)
    model = settings.models["gpt-image-1"]
    assert [r.target for r in model.routes] == ["gpt-image-1@openai", "gpt-image-1@gw"]
    openai, gw = model.routes
    assert openai.price_for("2k") == 0.167 and openai.price_for(None) == 0.042
    assert gw.price_for("4K") == 0.04 and openai.starting_price_usd == 0.042
    assert settings.providers["openai"].max_concurrency == 3
    assert settings.providers["openai"].rate_limit_per_s == 2.0
    assert settings.data_dir == (tmp_path / "d").resolve()
    assert settings.database_url == f"sqlite:///{(tmp_path / 'd' / 'arena.db').resolve()}"


def test_environment_overrides_data_dir_and_database(tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("ARENA_DATABASE_URL", "postgresql://u@127.0.0.1/db")
    settings = _load(tmp_path, GOOD)
    assert settings.data_dir == tmp_path / "elsewhere"
    assert settings.database_url == "postgresql://u@127.0.0.1/db"


def test_config_path_from_arena_config_env(tmp_path, monkeypatch):
    path = tmp_path / "custom.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("ARENA_CONFIG", str(path))
    assert load_settings(protocols=FACTS).source == str(path)


def test_no_config_means_the_builtin_demo_with_only_local():
    settings = load_settings(protocols=FACTS)
    assert settings.source == "<built-in demo config>"
    assert set(settings.providers) == {"local"} and settings.providers["local"].baseline
    assert all(m.baseline for m in settings.models.values())
    assert "identity" in settings.models and settings.models["identity"].tasks == ("edit",)
    assert demo_settings(FACTS).challenges_dir.name == "challenges"


def test_api_key_is_read_from_the_environment_only(monkeypatch, tmp_path):
    settings = _load(tmp_path, GOOD)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        settings.providers["openai"].api_key()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    assert settings.providers["openai"].api_key() == "sk-test-123"
    assert "sk-test-123" not in repr(settings)


@pytest.mark.parametrize(
    "mutate, field, problem",
    [
        (
            lambda t: t.replace('protocol = "openai"', 'protocol = "carrier-pigeon"', 1),
            "providers.openai.protocol",
            "unknown protocol",
        ),
        (
            lambda t: t.replace('base_url = "https://api.openai.com/v1"\n', "", 1),
            "providers.openai.base_url",
            "missing",
        ),
        (
            lambda t: t.replace("https://api.openai.com/v1", "ftp://x", 1),
            "providers.openai.base_url",
            "must start with http",
        ),
        (
            lambda t: t.replace(
                'api_key_env = "OPENAI_API_KEY"', 'api_key_env = "sk-abc123secret"', 1
            ),
            "providers.openai.api_key_env",
            "NAME of an environment variable",
        ),
        (
            lambda t: t.replace("rate_limit_per_s = 2", "rate_limit_per_s = -1", 1),
            "providers.openai.rate_limit_per_s",
            "must be positive",
        ),
        (
            lambda t: t.replace("max_concurrency = 3", 'max_concurrency = "many"', 1),
            "providers.openai.max_concurrency",
            "must be an integer",
        ),
        (
            lambda t: t.replace("max_concurrency = 3", "max_concurency = 3", 1),
            "providers.openai.max_concurency",
            "unknown setting",
        ),
        (
            lambda t: t.replace(
                '[models."gpt-image-1".providers.gw]', '[models."gpt-image-1".providers.nowhere]', 1
            ),
            "models.gpt-image-1.providers.nowhere",
            "not defined",
        ),
        (
            lambda t: t.replace('tasks = ["text-to-image", "edit"]', 'tasks = ["video"]', 1),
            "models.gpt-image-1.tasks",
            "must be a list",
        ),
        (
            lambda t: t.replace("price_usd = 0.04", "price_usd = -0.04", 1),
            "models.gpt-image-1.providers.gw.price_usd",
            "0 or more",
        ),
        (
            lambda t: t.replace('{ "1K" = 0.042, "2K" = 0.167 }', '{ "1K" = "cheap" }', 1),
            "models.gpt-image-1.providers.openai.price_usd_by_tier",
            "must map tier",
        ),
        (lambda t: "samples = 0\n" + t, "samples", "must be 1 or more"),
        (
            lambda t: 'database_url = "mysql://x"\n' + t,
            "database_url",
            "sqlite:/// or postgresql://",
        ),
        (lambda t: "colour = 1\n" + t, "colour", "unknown setting"),
    ],
)
def test_malformed_config_names_file_field_and_problem(tmp_path, mutate, field, problem):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, mutate(GOOD))
    message = str(info.value)
    assert str(tmp_path / "arena.toml") in message and field in message and problem in message
    assert "sk-abc123secret" not in message


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"arena.toml: not valid TOML"):
        _load(tmp_path, "[providers\n")
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", protocols=FACTS)


def test_no_providers_or_models(tmp_path):
    with pytest.raises(ConfigError, match="providers: needs at least one"):
        parse_settings({}, "x.toml", tmp_path, FACTS)
    with pytest.raises(ConfigError, match="models: needs at least one"):
        parse_settings({"providers": {"local": {"protocol": "local"}}}, "x.toml", tmp_path, FACTS)


def test_config_knows_exactly_the_protocols_that_have_adapters():
    from arena.providers import BUILTIN, adapter_class

    # config cannot import providers: the registry hands it every adapter's facts.
    assert set(BUILTIN) <= set(FACTS)
    for protocol in BUILTIN:
        cls = adapter_class(protocol)
        assert cls.__name__.endswith("Adapter") and cls.protocol == protocol
        assert FACTS[protocol].needs_key == cls.needs_key
    assert FACTS["local"] == ProtocolFacts(
        needs_key=False,
        baseline=True,
        base_url_required=False,
        parameters=adapter_class("local").parameters,
    )
    assert FACTS["xai"].parameters["stream"].kind == "unsupported"


def test_a_protocol_that_sends_a_key_needs_api_key_env(tmp_path):
    text = GOOD.replace(
        'protocol = "openai"\nbase_url = "https://api.openai.com/v1"',
        'protocol = "xai"\nbase_url = "https://api.x.ai/v1"',
    )
    text = text.replace('api_key_env = "OPENAI_API_KEY"\n', "", 1)
    with pytest.raises(
        ConfigError, match="providers.openai.api_key_env: missing: protocol xai sends a key"
    ):
        _load(tmp_path, text)
    # the OpenAI protocol also serves keyless OpenAI-compatible servers: a key is optional there
    settings = _load(tmp_path, GOOD.replace('api_key_env = "OPENAI_API_KEY"\n', "", 1))
    assert settings.providers["openai"].api_key() is None


def test_protocol_names_alone_are_refused_with_a_pointer_to_the_facts(tmp_path):
    with pytest.raises(TypeError, match="protocol_facts"):
        parse_settings({}, "x.toml", tmp_path, {"openai", "local"})


def test_store_retry_s_defaults_to_a_minute_and_must_be_finite_and_not_negative(tmp_path):
    assert _load(tmp_path, GOOD).store_retry_s == 60.0
    assert _load(tmp_path, "store_retry_s = 0\n" + GOOD).store_retry_s == 0.0
    assert _load(tmp_path, "store_retry_s = 2.5\n" + GOOD).store_retry_s == 2.5
    for bad in ("nan", "inf", "-1", '"60"'):
        with pytest.raises(ConfigError, match="store_retry_s") as refused:
            _load(tmp_path, f"store_retry_s = {bad}\n" + GOOD)
        assert "\n" not in str(refused.value)


def test_worker_lease_ttl_s_defaults_to_thirty_seconds_and_must_be_a_second_or_more(tmp_path):
    assert _load(tmp_path, GOOD).worker_lease_ttl_s == 30.0
    assert _load(tmp_path, "worker_lease_ttl_s = 1\n" + GOOD).worker_lease_ttl_s == 1.0
    assert _load(tmp_path, "worker_lease_ttl_s = 4.5\n" + GOOD).worker_lease_ttl_s == 4.5
    for bad in ("nan", "inf", "0.5", "0", "-3", '"30"'):
        with pytest.raises(ConfigError, match="worker_lease_ttl_s") as refused:
            _load(tmp_path, f"worker_lease_ttl_s = {bad}\n" + GOOD)
        assert "\n" not in str(refused.value)

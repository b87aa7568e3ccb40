"""Settings from arena.toml and the environment: providers, models, prices, limits, judges, checks,
database, data dir."""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from arena.errors import ConfigError, expected
from arena.params import Handling, check_params, check_params_for

ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
DEFAULT_DATA_DIR = "data"
# The store's column lengths (arena/store/tables.py; a test keeps them equal): a longer name is
# refused here, the same on SQLite (which would take it) and PostgreSQL (which would not).
MAX_MODEL_NAME = 200
MAX_PROVIDER_NAME = 100
MAX_MODEL_ID = 200
# A worker renews its lease every third of the ttl: below a second that is a database write
# every few hundred milliseconds per worker, for no faster recovery anyone needs.
MIN_WORKER_LEASE_TTL_S = 1.0
# The database drivers arena speaks: the standard library's SQLite and psycopg 3 for PostgreSQL.
DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


@dataclass(frozen=True)
class ProtocolFacts:
    """What config needs to know about one protocol, read from its adapter class by the registry.

    Config is the bottom layer and never imports the adapters: whoever loads settings passes these
    (arena.providers.protocol_facts() for the built-ins and the installed plugins).
    """

    needs_key: bool = True  # a provider of this protocol must name api_key_env
    baseline: bool = False  # its providers are baselines unless they say otherwise
    base_url_required: bool = True  # False: an empty base_url means arena starts the server itself
    # request parameter -> how the protocol handles it (the adapter's `parameters`); a route's
    # `params` may name no parameter this marks "unsupported"
    parameters: Mapping[str, Handling] = field(default_factory=dict)


def key_from_environment(owner: str, env_name: str | None) -> str | None:
    """The value of the variable `env_name` (None when none is named); unset is a ConfigError."""
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(owner, "api_key_env", f"environment variable {env_name} is not set")
    return value


@dataclass(frozen=True)
class ProviderConfig:
    """One provider endpoint and the limits we respect when calling it."""

    name: str
    protocol: str
    base_url: str
    api_key_env: str | None = None
    rate_limit_per_s: float = 2.0
    max_concurrency: int = 4
    timeout_s: float = 300.0
    max_retries: int = 2  # retries of rate-limited replies only
    max_retry_after_s: float = 60.0
    warmup: bool = False  # one warm-up request per model; costs an image on paid providers
    poll_interval_s: float = 0.5
    baseline: bool = False

    def api_key(self) -> str | None:
        """The key, read from the environment at call time; never stored anywhere else."""
        return key_from_environment(f"provider {self.name}", self.api_key_env)


@dataclass(frozen=True)
class Route:
    """A canonical model as served by one provider: its id there and its price per image."""

    model: str
    provider: str
    model_id: str
    price_usd: float | None = None
    price_usd_by_tier: dict[str, float] = field(default_factory=dict)
    capabilities: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # extra request parameters, sent to the provider

    @property
    def target(self) -> str:
        return f"{self.model}@{self.provider}"

    def price_for(self, resolution: str | None) -> float | None:
        """Per-image price for a resolution tier, else the flat price."""
        if resolution:
            for tier, price in self.price_usd_by_tier.items():
                if tier.lower() == resolution.lower():
                    return price
        if self.price_usd is not None:
            return self.price_usd
        if self.price_usd_by_tier:
            return min(self.price_usd_by_tier.values())
        return None

    @property
    def starting_price_usd(self) -> float | None:
        prices = [p for p in [self.price_usd, *self.price_usd_by_tier.values()] if p is not None]
        return min(prices) if prices else None


@dataclass(frozen=True)
class ModelConfig:
    """A canonical model name shared across providers, with the tasks it does."""

    name: str
    tasks: tuple[str, ...]
    routes: tuple[Route, ...]
    baseline: bool = False
    description: str = ""


ROUTE_SORTS = ("latency", "price", "success")
POLICY_KEYS = ("order", "sort", "max_p95_ms", "allow_fallbacks")


@dataclass(frozen=True)
class RoutePolicy:
    """How the gateway orders a model's routes: OpenRouter's `provider` object, per model or request.

    `order` names providers tried first, in that order (the rest follow, sorted); `sort` orders by
    success-weighted latency (the default), by starting price, or by success rate; `max_p95_ms`
    leaves out routes measured slower than that; `allow_fallbacks=False` tries the first route only.
    """

    order: tuple[str, ...] = ()
    sort: str = "latency"
    max_p95_ms: float | None = None
    allow_fallbacks: bool = True


@dataclass(frozen=True)
class GatewaySettings:
    """The `[gateway]` table: the OpenAI-compatible images API (docs/gateway.md)."""

    public_url: str = "http://127.0.0.1:8800"  # where applications reach it; used in examples
    keep_outputs: bool = False  # keep traffic prompts and output images in the store
    playground_budget_usd: float = 0.0  # free playground spend per visitor per day (0: key needed)
    max_body_bytes: int = 64 * 1024 * 1024  # a request body or upload over this is 413
    file_ttl_s: float = 3600.0  # how long a response_format=url image is served
    window_days: float = 30.0  # the attempts routing is measured over
    breaker_failure_share: float = 0.5  # a route's breaker opens at this share of failures...
    breaker_min_attempts: int = 5  # ...over at least this many attempts...
    breaker_window_s: float = 60.0  # ...within this window,
    breaker_cooldown_s: float = 30.0  # and lets one request through (half-open) after this
    policies: dict[str, RoutePolicy] = field(default_factory=dict)  # [gateway.models.NAME]


JUDGE_PROTOCOLS = ("openai-chat", "gemini")


@dataclass(frozen=True)
class JudgeConfig:
    """A vision-language model that votes on pairs of outputs (`[judges.NAME]`, docs/judges.md).

    Its limits are a provider's (the harness's limiter); `stop_interval_elo` ends the sampling of a
    pair of models once the interval of their rating difference on this judge's board is narrower.
    """

    name: str
    protocol: str  # "openai-chat" (any chat-completions endpoint that takes images) or "gemini"
    base_url: str
    model_id: str
    api_key_env: str | None = None  # None: no key is sent (a local vLLM or Ollama)
    price_usd_per_call: float = 0.0
    rate_limit_per_s: float = 1.0
    max_concurrency: int = 2
    timeout_s: float = 120.0
    max_retries: int = 2  # retries of rate-limited replies only, as for providers
    max_retry_after_s: float = 60.0
    stop_interval_elo: float = 15.0  # GenArena's stopping width

    @property
    def voter(self) -> str:
        """The voter kind of this judge's votes."""
        return f"judge:{self.name}"

    def api_key(self) -> str | None:
        """The key, read from the environment at call time; never stored anywhere else."""
        return key_from_environment(f"judge {self.name}", self.api_key_env)


CHECK_NAMES = ("unchanged", "aspect", "faces", "blank")  # arena.checks runs them in this order


@dataclass(frozen=True)
class CheckSettings:
    """The `[checks]` table: thresholds of the checks that need no model (docs/checks.md)."""

    # perceptual-hash bits of 256 (imagehash.phash, 16 x 16): at most this far from a source is
    # "unchanged"; re-encodes and resizes of the shipped photos measured 0-2, real edits 8 or more
    unchanged_max_distance: int = 4
    # relative: a returned aspect ratio further off the request is "aspect"; side rounding measured
    # at most 4.5% (1K and up, sides to 64 px), the nearest two common ratios are 6.7% apart
    aspect_tolerance: float = 0.05
    blank_max_stddev: float = 3.0  # grey levels (0-255): a flatter image is "blank"; photos 12.5+
    faces_min_neighbors: int = 5  # the Haar cascade's strictness: 3-17 measured right on the photos


@dataclass(frozen=True)
class Settings:
    """Everything a command needs; built by load_settings()."""

    source: str
    data_dir: Path
    database_url: str
    challenges_dir: Path
    providers: dict[str, ProviderConfig]
    models: dict[str, ModelConfig]
    samples: int = 1
    challenges: tuple[str, ...] = ()  # empty: every challenge in challenges_dir
    store_retry_s: float = 60.0  # how long results the store refuses are held and tried again
    # a worker's lease (store.claims): renewed every third of it; a worker silent this long on
    # another host is gone and its jobs go back to the pool
    worker_lease_ttl_s: float = 30.0
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    judges: dict[str, JudgeConfig] = field(default_factory=dict)
    checks: CheckSettings = field(default_factory=CheckSettings)

    @property
    def routes(self) -> list[Route]:
        return [r for m in self.models.values() for r in m.routes]

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"


def _get(table: dict, key: str, kind: type | tuple, where: str, source: str, default=None):
    value = table.get(key, default)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise ConfigError(source, _field(where, key), f"must be {expected(kind)}, got {value!r}")
    if kind is float and not math.isfinite(value):  # nan never compares, inf never ends
        raise ConfigError(source, _field(where, key), f"must be a finite number, got {value!r}")
    return value


def _field(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _check_length(value: str, limit: int, source: str, where: str, what: str) -> None:
    if len(value) > limit:
        raise ConfigError(
            source, where, f"{what} is {len(value)} characters; the store takes at most {limit}"
        )


def _check_base_url(base_url: str, source: str, where: str) -> None:
    """An http(s) URL with a host and a numeric port, or the run would blame the provider for it."""
    if not re.match(r"^https?://", base_url):
        raise ConfigError(source, where, f"{base_url!r} must start with http:// or https://")
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(source, where, f"{base_url!r} is not a valid URL: {exc}") from None
    if not parts.hostname:
        raise ConfigError(source, where, f"{base_url!r} has no host")


def _check_database_url(url: str, source: str, where: str) -> None:
    """A sqlite:/// or postgresql:// URL with a driver arena has and a numeric port."""
    scheme = url.split("://", 1)[0] if "://" in url else None
    if scheme is None or not re.match(r"^(sqlite|postgresql|postgres)(\+\w+)?$", scheme):
        raise ConfigError(source, where, "must be a sqlite:/// or postgresql:// URL")
    if scheme not in DATABASE_SCHEMES:
        raise ConfigError(
            source,
            where,
            f"unknown database driver {scheme!r} (known: {', '.join(DATABASE_SCHEMES)})",
        )
    if scheme.startswith("postgres"):
        try:
            urlsplit(url).port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ConfigError(source, where, "the port must be a number") from None


def _positive(value, source: str, where: str):
    if value is not None and value <= 0:
        raise ConfigError(source, where, f"must be positive, got {value!r}")
    return value


PROVIDER_KEYS = {
    "protocol",
    "base_url",
    "api_key_env",
    "rate_limit_per_s",
    "max_concurrency",
    "timeout_s",
    "max_retries",
    "max_retry_after_s",
    "warmup",
    "poll_interval_s",
    "baseline",
}
ROUTE_KEYS = {"model_id", "price_usd", "price_usd_by_tier", "capabilities", "params"}
MODEL_KEYS = {"tasks", "providers", "baseline", "description"}
TOP_KEYS = {
    "gateway",
    "judges",
    "checks",
    "data_dir",
    "database_url",
    "challenges_dir",
    "samples",
    "challenges",
    "store_retry_s",
    "worker_lease_ttl_s",
    "providers",
    "models",
}


def _parse_provider(
    name: str, table: dict, source: str, protocols: Mapping[str, ProtocolFacts]
) -> ProviderConfig:
    where = f"providers.{name}"
    _check_length(name, MAX_PROVIDER_NAME, source, where, "a provider name")
    if not isinstance(table, dict):
        raise ConfigError(source, where, "must be a table")
    for key in table:
        if key not in PROVIDER_KEYS:
            raise ConfigError(
                source,
                f"{where}.{key}",
                f"unknown setting (known: {', '.join(sorted(PROVIDER_KEYS))})",
            )
    protocol = _get(table, "protocol", str, where, source)
    if protocol is None:
        raise ConfigError(source, f"{where}.protocol", "missing (required)")
    if protocol not in protocols:
        raise ConfigError(
            source,
            f"{where}.protocol",
            f"unknown protocol {protocol!r} (known: {', '.join(sorted(protocols))})",
        )
    facts = protocols[protocol]
    base_url = _get(
        table, "base_url", str, where, source, default=None if facts.base_url_required else ""
    )
    if base_url is None:
        raise ConfigError(source, f"{where}.base_url", "missing (required)")
    if base_url:
        _check_base_url(base_url, source, f"{where}.base_url")
    key_env = _get(table, "api_key_env", str, where, source)
    if key_env is not None and not ENV_NAME_RE.match(key_env):
        # A common slip is pasting the key itself here; say so without echoing it.
        raise ConfigError(
            source,
            f"{where}.api_key_env",
            "must be the NAME of an environment variable (e.g. OPENAI_API_KEY), not a key",
        )
    if key_env is None and facts.needs_key:
        raise ConfigError(
            source,
            f"{where}.api_key_env",
            f"missing: protocol {protocol} sends a key; name the environment variable holding it",
        )
    kwargs = {}
    for key, kind in (
        ("rate_limit_per_s", float),
        ("timeout_s", float),
        ("max_retry_after_s", float),
        ("poll_interval_s", float),
    ):
        value = _positive(_get(table, key, kind, where, source), source, f"{where}.{key}")
        if value is not None:
            kwargs[key] = value
    for key in ("max_concurrency",):
        value = _positive(_get(table, key, int, where, source), source, f"{where}.{key}")
        if value is not None:
            kwargs[key] = value
    retries = _get(table, "max_retries", int, where, source)
    if retries is not None:
        if retries < 0:
            raise ConfigError(source, f"{where}.max_retries", "must be 0 or more")
        kwargs["max_retries"] = retries
    for key in ("warmup", "baseline"):
        value = _get(table, key, bool, where, source)
        if value is not None:
            kwargs[key] = value
    kwargs.setdefault("baseline", facts.baseline)
    return ProviderConfig(
        name=name, protocol=protocol, base_url=base_url.rstrip("/"), api_key_env=key_env, **kwargs
    )


def _parse_route_params(
    table: dict, rwhere: str, source: str, protocol: str, facts: ProtocolFacts
) -> dict:
    """A route's `params`: checked on their own, then against its protocol's handling table."""
    if "params" not in table:
        return {}
    params = check_params(table["params"], source, f"{rwhere}.params")
    check_params_for(params, facts.parameters, protocol, source, f"{rwhere}.params")
    return params


def _parse_model(
    name: str,
    table: dict,
    source: str,
    providers: dict[str, ProviderConfig],
    protocols: Mapping[str, ProtocolFacts],
) -> ModelConfig:
    where = f"models.{name}"
    _check_length(name, MAX_MODEL_NAME, source, where, "a model name")
    if not isinstance(table, dict):
        raise ConfigError(source, where, "must be a table")
    for key in table:
        if key not in MODEL_KEYS:
            raise ConfigError(
                source,
                f"{where}.{key}",
                f"unknown setting (known: {', '.join(sorted(MODEL_KEYS))})",
            )
    tasks = table.get("tasks", ["text-to-image", "edit"])
    if (
        not isinstance(tasks, list)
        or not tasks
        or any(t not in ("text-to-image", "edit") for t in tasks)
    ):
        raise ConfigError(
            source,
            f"{where}.tasks",
            f"must be a list of 'text-to-image' and/or 'edit', got {tasks!r}",
        )
    route_tables = table.get("providers")
    if not isinstance(route_tables, dict) or not route_tables:
        raise ConfigError(
            source,
            f"{where}.providers",
            "needs at least one [models.NAME.providers.PROVIDER] table",
        )
    routes = []
    for provider, rt in route_tables.items():
        rwhere = f"{where}.providers.{provider}"
        if provider not in providers:
            raise ConfigError(
                source, rwhere, f"provider {provider!r} is not defined under [providers]"
            )
        if not isinstance(rt, dict):
            raise ConfigError(source, rwhere, "must be a table")
        for key in rt:
            if key not in ROUTE_KEYS:
                raise ConfigError(
                    source,
                    f"{rwhere}.{key}",
                    f"unknown setting (known: {', '.join(sorted(ROUTE_KEYS))})",
                )
        model_id = _get(rt, "model_id", str, rwhere, source, default=name)
        _check_length(model_id, MAX_MODEL_ID, source, f"{rwhere}.model_id", "a model_id")
        price = _get(rt, "price_usd", float, rwhere, source)
        if price is not None and price < 0:
            raise ConfigError(source, f"{rwhere}.price_usd", "must be 0 or more")
        tiers = rt.get("price_usd_by_tier", {})
        if not isinstance(tiers, dict) or any(
            isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf
            for v in tiers.values()
        ):
            raise ConfigError(
                source,
                f"{rwhere}.price_usd_by_tier",
                'must map tier names to prices, e.g. { "1K" = 0.04 }',
            )
        caps = rt.get("capabilities", {})
        if not isinstance(caps, dict):
            raise ConfigError(source, f"{rwhere}.capabilities", "must be a table")
        routes.append(
            Route(
                model=name,
                provider=provider,
                model_id=model_id,
                price_usd=price,
                price_usd_by_tier={k: float(v) for k, v in tiers.items()},
                capabilities=caps,
                params=_parse_route_params(
                    rt,
                    rwhere,
                    source,
                    providers[provider].protocol,
                    protocols[providers[provider].protocol],
                ),
            )
        )
    baseline = _get(table, "baseline", bool, where, source)
    if baseline is None:
        baseline = all(providers[r.provider].baseline for r in routes)
    return ModelConfig(
        name=name,
        tasks=tuple(tasks),
        routes=tuple(routes),
        baseline=baseline,
        description=_get(table, "description", str, where, source, default=""),
    )


def parse_settings(
    data: dict, source: str, base_dir: Path, protocols: Mapping[str, ProtocolFacts]
) -> Settings:
    """Validate a parsed config table; every problem names the source, the field and the problem.

    `protocols` names every protocol a provider may use, with its facts
    (arena.providers.protocol_facts()).
    """
    _check_protocols(protocols)
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(
                source, key, f"unknown setting (known: {', '.join(sorted(TOP_KEYS))})"
            )
    providers_table = data.get("providers", {})
    if not isinstance(providers_table, dict) or not providers_table:
        raise ConfigError(source, "providers", "needs at least one [providers.NAME] table")
    providers = {n: _parse_provider(n, t, source, protocols) for n, t in providers_table.items()}
    models_table = data.get("models", {})
    if not isinstance(models_table, dict) or not models_table:
        raise ConfigError(source, "models", "needs at least one [models.NAME] table")
    models = {n: _parse_model(n, t, source, providers, protocols) for n, t in models_table.items()}
    samples = _get(data, "samples", int, "", source, default=1)
    if samples < 1:
        raise ConfigError(source, "samples", "must be 1 or more")
    challenges = data.get("challenges", [])
    if not isinstance(challenges, list) or not all(isinstance(c, str) for c in challenges):
        raise ConfigError(source, "challenges", "must be a list of challenge slugs")

    data_dir = Path(
        os.environ.get("ARENA_DATA_DIR")
        or _get(data, "data_dir", str, "", source, default=DEFAULT_DATA_DIR)
    )
    if not data_dir.is_absolute():
        data_dir = (
            (base_dir / data_dir) if "ARENA_DATA_DIR" not in os.environ else data_dir.resolve()
        )
    database_url = (
        os.environ.get("ARENA_DATABASE_URL") or _get(data, "database_url", str, "", source) or ""
    )
    if os.environ.get("ARENA_DATABASE_URL"):
        _check_database_url(database_url, "$ARENA_DATABASE_URL", "database_url")
    elif database_url:
        _check_database_url(database_url, source, "database_url")
    else:
        database_url = f"sqlite:///{data_dir.resolve() / 'arena.db'}"
    store_retry_s = _get(data, "store_retry_s", float, "", source, default=60.0)
    if not math.isfinite(store_retry_s) or store_retry_s < 0:
        raise ConfigError(
            source,
            "store_retry_s",
            f"must be a finite number of seconds, 0 or more, got {store_retry_s!r}",
        )
    worker_lease_ttl_s = _get(data, "worker_lease_ttl_s", float, "", source, default=30.0)
    if not math.isfinite(worker_lease_ttl_s) or worker_lease_ttl_s < MIN_WORKER_LEASE_TTL_S:
        raise ConfigError(
            source,
            "worker_lease_ttl_s",
            f"must be a finite number of seconds, {MIN_WORKER_LEASE_TTL_S:g} or more, "
            f"got {worker_lease_ttl_s!r}",
        )
    gateway = _parse_gateway(data.get("gateway", {}), source, models)
    judges_table = data.get("judges", {})
    if not isinstance(judges_table, dict):
        raise ConfigError(source, "judges", "must be a table of [judges.NAME] tables")
    judges = {n: _parse_judge(n, t, source) for n, t in judges_table.items()}
    checks = _parse_checks(data.get("checks", {}), source)
    challenges_dir = Path(_get(data, "challenges_dir", str, "", source, default="challenges"))
    if not challenges_dir.is_absolute():
        challenges_dir = base_dir / challenges_dir
    return Settings(
        source=source,
        data_dir=data_dir.resolve(),
        database_url=database_url,
        challenges_dir=challenges_dir.resolve(),
        providers=providers,
        models=models,
        samples=samples,
        challenges=tuple(challenges),
        store_retry_s=store_retry_s,
        worker_lease_ttl_s=worker_lease_ttl_s,
        gateway=gateway,
        judges=judges,
        checks=checks,
    )


JUDGE_KEYS = {
    "protocol": str,
    "base_url": str,
    "model_id": str,
    "api_key_env": str,
    "price_usd_per_call": float,
    "rate_limit_per_s": float,
    "max_concurrency": int,
    "timeout_s": float,
    "max_retries": int,
    "max_retry_after_s": float,
    "stop_interval_elo": float,
}
MAX_JUDGE_NAME = 57  # "judge:" + the name fits the votes' 64-character voter column


def _parse_judge(name: str, table, source: str) -> JudgeConfig:
    """One [judges.NAME] table: a protocol arena speaks, a URL, a model id, limits like a provider's."""
    where = f"judges.{name}"
    _check_length(name, MAX_JUDGE_NAME, source, where, "a judge name")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        raise ConfigError(source, where, "a judge name is letters, digits, '.', '_' and '-'")
    if not isinstance(table, dict):
        raise ConfigError(source, where, "must be a table")
    for key in table:
        if key not in JUDGE_KEYS:
            known = ", ".join(sorted(JUDGE_KEYS))
            raise ConfigError(source, f"{where}.{key}", f"unknown setting (known: {known})")
    values = {key: _get(table, key, kind, where, source) for key, kind in JUDGE_KEYS.items()}
    for key in ("protocol", "base_url", "model_id"):
        if values[key] is None:
            raise ConfigError(source, f"{where}.{key}", "missing (required)")
    _check_length(values["model_id"], MAX_MODEL_ID, source, f"{where}.model_id", "a model_id")
    if values["protocol"] not in JUDGE_PROTOCOLS:
        raise ConfigError(
            source,
            f"{where}.protocol",
            f"unknown judge protocol {values['protocol']!r} (known: {', '.join(JUDGE_PROTOCOLS)})",
        )
    _check_base_url(values["base_url"], source, f"{where}.base_url")
    values["base_url"] = values["base_url"].rstrip("/")
    key_env = values["api_key_env"]
    if key_env is not None and not ENV_NAME_RE.match(key_env):
        raise ConfigError(
            source,
            f"{where}.api_key_env",
            "must be the NAME of an environment variable (e.g. OPENAI_API_KEY), not a key",
        )
    price = values["price_usd_per_call"]
    if price is not None and price < 0:
        raise ConfigError(
            source, f"{where}.price_usd_per_call", f"must be 0 or more, got {price!r}"
        )
    retries = values["max_retries"]
    if retries is not None and retries < 0:
        raise ConfigError(source, f"{where}.max_retries", "must be 0 or more")
    for key in (
        "rate_limit_per_s",
        "max_concurrency",
        "timeout_s",
        "max_retry_after_s",
        "stop_interval_elo",
    ):
        _positive(values[key], source, f"{where}.{key}")
    return JudgeConfig(name=name, **{k: v for k, v in values.items() if v is not None})


CHECK_KEYS = {
    "unchanged_max_distance": int,
    "aspect_tolerance": float,
    "blank_max_stddev": float,
    "faces_min_neighbors": int,
}


def _parse_checks(table, source: str) -> CheckSettings:
    """The [checks] table: each threshold a number in its range."""
    if not isinstance(table, dict):
        raise ConfigError(source, "checks", "must be a table")
    values = {}
    for key in table:
        if key not in CHECK_KEYS:
            known = ", ".join(sorted(CHECK_KEYS))
            raise ConfigError(source, f"checks.{key}", f"unknown setting (known: {known})")
        value = _get(table, key, CHECK_KEYS[key], "checks", source)
        low, high = {
            "unchanged_max_distance": (0, 64),
            "aspect_tolerance": (0.0, 1.0),
            "blank_max_stddev": (0.0, 128.0),
            "faces_min_neighbors": (1, 50),
        }[key]
        if not low <= value <= high:
            raise ConfigError(
                source, f"checks.{key}", f"must be from {low} to {high}, got {value!r}"
            )
        values[key] = value
    return CheckSettings(**values)


def parse_policy(table: dict, source: str, where: str, providers=None) -> RoutePolicy:
    """A RoutePolicy from a `provider`-shaped table; `providers`, when given, are the names
    `order` may use. Raises ConfigError naming the field (the gateway turns it into a 400)."""
    if not isinstance(table, dict):
        raise ConfigError(source, where, "must be a table (an object)")
    for key in table:
        if key not in POLICY_KEYS:
            raise ConfigError(
                source, _field(where, key), f"unknown setting (known: {', '.join(POLICY_KEYS)})"
            )
    order = table.get("order", [])
    if not isinstance(order, list) or not all(isinstance(p, str) for p in order):
        raise ConfigError(source, _field(where, "order"), "must be a list of provider names")
    if providers is not None:
        for name in order:
            if name not in providers:
                raise ConfigError(
                    source,
                    _field(where, "order"),
                    f"{name!r} does not serve this model (its providers: {', '.join(providers)})",
                )
    sort = _get(table, "sort", str, where, source, default="latency")
    if sort not in ROUTE_SORTS:
        raise ConfigError(
            source, _field(where, "sort"), f"must be one of {', '.join(ROUTE_SORTS)}, got {sort!r}"
        )
    max_p95_ms = _get(table, "max_p95_ms", float, where, source)
    if max_p95_ms is not None:
        max_p95_ms = _positive(max_p95_ms, source, _field(where, "max_p95_ms"))
    allow = _get(table, "allow_fallbacks", bool, where, source, default=True)
    return RoutePolicy(tuple(order), sort, max_p95_ms, allow)


GATEWAY_KEYS = {
    "public_url": str,
    "keep_outputs": bool,
    "playground_budget_usd": float,
    "max_body_bytes": int,
    "file_ttl_s": float,
    "window_days": float,
    "breaker_failure_share": float,
    "breaker_min_attempts": int,
    "breaker_window_s": float,
    "breaker_cooldown_s": float,
}


def _parse_gateway(table, source: str, models: dict[str, ModelConfig]) -> GatewaySettings:
    """The [gateway] table: every value checked, [gateway.models.NAME] policies for known models."""
    if not isinstance(table, dict):
        raise ConfigError(source, "gateway", "must be a table")
    values = {}
    for key, value in table.items():
        where = f"gateway.{key}"
        if key == "models":
            continue
        if key not in GATEWAY_KEYS:
            known = ", ".join(sorted([*GATEWAY_KEYS, "models"]))
            raise ConfigError(source, where, f"unknown setting (known: {known})")
        value = _get(table, key, GATEWAY_KEYS[key], "gateway", source)
        if key == "public_url":
            _check_base_url(value, source, where)
            value = value.rstrip("/")
        elif key == "playground_budget_usd":
            if not math.isfinite(value) or value < 0:
                raise ConfigError(source, where, f"must be 0 or more, got {value!r}")
        elif key == "breaker_failure_share":
            if not 0 < value <= 1:
                raise ConfigError(source, where, f"must be above 0 and at most 1, got {value!r}")
        elif key != "keep_outputs":
            value = _positive(value, source, where)
        values[key] = value
    policies_table = table.get("models", {})
    if not isinstance(policies_table, dict):
        raise ConfigError(source, "gateway.models", "must be a table of [gateway.models.NAME]")
    policies = {}
    for name, policy in policies_table.items():
        where = f"gateway.models.{name}"
        if name not in models:
            raise ConfigError(source, where, f"no model {name!r} is configured")
        policies[name] = parse_policy(
            policy, source, where, [r.provider for r in models[name].routes]
        )
    return GatewaySettings(**values, policies=policies)


def _check_protocols(protocols) -> None:
    """A clear error for a caller that passes protocol names (the old API) instead of their facts."""
    if not isinstance(protocols, Mapping) or not all(
        isinstance(f, ProtocolFacts) for f in protocols.values()
    ):
        raise TypeError(
            "protocols must map protocol names to ProtocolFacts: pass arena.providers.protocol_facts()"
        )


def load_settings(
    path: str | Path | None = None, *, protocols: Mapping[str, ProtocolFacts]
) -> Settings:
    """Settings from --config, else $ARENA_CONFIG, else ./arena.toml, else the built-in demo config."""
    path = path or os.environ.get("ARENA_CONFIG")
    if path is None and Path("arena.toml").is_file():
        path = "arena.toml"
    if path is None:
        return demo_settings(protocols)
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, None, "config file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "not UTF-8 text (save the config as UTF-8)") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None
    return parse_settings(data, str(path), path.resolve().parent, protocols)


def secret_in_file(path: Path) -> str:
    """A secret kept in `path` under the data dir: made once (random, readable by its owner only)
    by whichever process comes first; the others, on the same host, read the same one."""
    import secrets
    import time

    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    for _ in range(100):  # another process may have made the file and not yet written it
        secret = path.read_text().strip()
        if secret:
            return secret
        time.sleep(0.01)
    raise ConfigError(path, None, "the secret file is empty: delete it and start again")


def project_root() -> Path:
    """The checkout holding challenges/ (the package's parent), or the current directory."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "challenges").is_dir() else Path.cwd()


DEMO_CONFIG = {
    "providers": {
        "local": {
            "protocol": "local",
            "rate_limit_per_s": 50.0,
            "max_concurrency": 8,
            "timeout_s": 60.0,
        },
    },
    "models": {
        "identity": {
            "tasks": ["edit"],
            "description": "returns the input image unchanged: the floor every edit model must beat",
            "providers": {"local": {"model_id": "identity", "price_usd": 0.0}},
        },
        "cartoon-filter": {
            "tasks": ["edit"],
            "description": "a classical painterly/cartoon filter (edge-preserving smoothing, posterize, ink edges)",
            "providers": {"local": {"model_id": "cartoon", "price_usd": 0.0}},
        },
        "night-grade": {
            "tasks": ["edit"],
            "description": "a classical night colour grade (darken, blue shift, vignette)",
            "providers": {"local": {"model_id": "night", "price_usd": 0.0}},
        },
        "prompt-card": {
            "tasks": ["text-to-image"],
            "description": "a plain rendering of the prompt's words on a gradient",
            "providers": {"local": {"model_id": "prompt-card", "price_usd": 0.0}},
        },
        "palette-gradient": {
            "tasks": ["text-to-image"],
            "description": "a gradient in colours named by the prompt, with soft shapes",
            "providers": {"local": {"model_id": "palette", "price_usd": 0.0}},
        },
    },
}


def demo_settings(protocols: Mapping[str, ProtocolFacts]) -> Settings:
    """The built-in config: only the local baseline provider, every shipped challenge."""
    root = project_root()
    return parse_settings(DEMO_CONFIG, "<built-in demo config>", root, protocols)

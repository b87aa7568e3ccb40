"""Malformed input, case by case: exit 2, one `arena: error:` line naming what and where, no traceback,
and nothing in the store changed, on SQLite and PostgreSQL.

Every case runs against a store that already holds one completed run (so "unchanged" means something),
most of them in process through arena.cli.main; a handful run as real subprocesses (slow) to show that
no traceback reaches a terminal. `arena validate` must refuse every config and challenge case that
`arena run` refuses.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import POSTGRES_URL, ROOT, _drop_schema, _postgres_schema_url
from support.images import make_bomb_png, make_png

from arena.cli import main
from arena.store import engine as store_engine

NO_KEY_ENV = "ARENA_TEST_KEY_THAT_IS_NEVER_SET"


# --- the world every case starts from ----------------------------------------------------------


@dataclass
class World:
    """A seeded store (one completed run), its data dir and a valid challenge set."""

    db_url: str
    data_dir: Path
    challenges: Path


def config_text(
    world: World,
    challenges: Path,
    *,
    top: str = "",
    provider: str = "",
    route: str = "",
    edit_model: str = "ident",
    price: str = "0.0",
    rate: str = "100.0",
    extra: str = "",
    database_url: str | None = None,
) -> str:
    return f"""data_dir = "{world.data_dir}"
database_url = "{database_url or world.db_url}"
challenges_dir = "{challenges}"
{top}

[providers.local]
protocol = "local"
rate_limit_per_s = {rate}
{provider}

[models."{edit_model}"]
tasks = ["edit"]
[models."{edit_model}".providers.local]
model_id = "identity"
price_usd = {price}
{route}

[models.card]
tasks = ["text-to-image"]
[models.card.providers.local]
model_id = "prompt-card"
price_usd = 0.0
{extra}
"""


def write_challenges(directory: Path) -> Path:
    (directory / "images").mkdir(parents=True)
    (directory / "images" / "face.png").write_bytes(make_png(40, 40, (90, 80, 70)))
    (directory / "t2i.toml").write_text(
        'slug = "t2i"\ntitle = "A cat"\nkind = "text-to-image"\nprompt = "a cat on a mat"\n'
        'category = "photo"\n'
    )
    (directory / "edit.toml").write_text(
        'slug = "edit"\ntitle = "Hair"\nkind = "edit"\nprompt = "give the person hair"\n'
        'category = "portrait"\nsource_images = ["images/face.png"]\n'
    )
    return directory


def _seed(db_url: str, root: Path) -> World:
    world = World(db_url, root / "data", write_challenges(root / "challenges"))
    config = root / "seed.toml"
    config.write_text(config_text(world, world.challenges))
    assert main(["run", "--config", str(config)]) == 0
    return world


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    """One seeded store per backend for the whole module (a fresh one per case would cost a run each)."""
    root = tmp_path_factory.mktemp(f"world-{request.param}")
    with pytest.MonkeyPatch.context() as patch:  # the seed run sees no developer settings either
        for name in ("ARENA_CONFIG", "ARENA_DATA_DIR", "ARENA_DATABASE_URL"):
            patch.delenv(name, raising=False)
        if request.param == "sqlite":
            yield _seed(f"sqlite:///{root / 'arena.db'}", root)
            return
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL variant: set ARENA_TEST_POSTGRES_URL (CI sets it)")
        url, schema = _postgres_schema_url()
        try:
            yield _seed(url, root)
        finally:
            _drop_schema(schema)


def store_state(world: World) -> dict:
    """Row counts of every table, every run's status, and the image files: what must not change."""
    engine = sa.create_engine(store_engine.engine_url(world.db_url))
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            state = {
                name: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one()
                for name in names
                if name != "alembic_version"
            }
            state["run statuses"] = sorted(
                tuple(row) for row in conn.execute(sa.text("SELECT id, status FROM runs"))
            )
    finally:
        engine.dispose()
    state["image files"] = sorted(str(p) for p in (world.data_dir / "images").rglob("*"))
    return state


# --- the cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    """One malformed input: how to build it, the command, and what its one error line must name."""

    id: str
    argv: list[str]  # {config}, {challenges}, {file}, {dir} are filled in
    names: tuple[str, ...]  # substrings the error line must contain (the thing and where)
    config: dict = field(default_factory=dict)  # config_text keyword arguments
    challenge: dict[str, str] = field(default_factory=dict)  # file name -> text appended / written
    replace_challenge: bool = False  # challenge texts replace the files instead of extending them
    files: dict[str, bytes] = field(default_factory=dict)  # extra files, relative to the case dir
    env: dict[str, str] = field(default_factory=dict)
    validate: bool = True  # `arena validate` must refuse it too (config and challenge cases)


RUN = ["run", "--config", "{config}"]


def config_case(id, names, **config):
    return Case(id, RUN, names, config=config)


def challenge_case(id, names, file="t2i.toml", text="", *, replace=False, files=None):
    return Case(
        id, RUN, names, challenge={file: text}, replace_challenge=replace, files=files or {}
    )


def image_case(id, data: bytes, names):
    return Case(id, RUN, names, files={"challenges/images/face.png": data})


LONG = "m" * 250
CONFIG_CASES = [
    # every float setting must be finite
    config_case(
        "rate-nan",
        ("providers.local.rate_limit_per_s", "finite"),
        rate="nan",
    ),
    config_case(
        "rate-inf",
        ("providers.local.rate_limit_per_s", "finite"),
        rate="inf",
    ),
    config_case("timeout-nan", ("providers.local.timeout_s", "finite"), provider="timeout_s = nan"),
    config_case("timeout-inf", ("providers.local.timeout_s", "finite"), provider="timeout_s = inf"),
    config_case("timeout-neg-inf", ("providers.local.timeout_s",), provider="timeout_s = -inf"),
    config_case(
        "retry-after-nan",
        ("providers.local.max_retry_after_s", "finite"),
        provider="max_retry_after_s = nan",
    ),
    config_case(
        "poll-inf", ("providers.local.poll_interval_s", "finite"), provider="poll_interval_s = inf"
    ),
    config_case("price-nan", ("models.ident.providers.local.price_usd", "finite"), price="nan"),
    config_case("price-inf", ("models.ident.providers.local.price_usd", "finite"), price="inf"),
    config_case(
        "tier-price-nan",
        ("models.ident.providers.local.price_usd_by_tier",),
        route='price_usd_by_tier = { "1K" = nan }',
    ),
    config_case(
        "cap-max-ratio-nan",
        ("models.ident.providers.local", "capabilities.max_ratio"),
        route="capabilities = { max_ratio = nan }",
    ),
    # base URLs
    config_case(
        "base-url-bracket",
        ("providers.local.base_url", "http://[::1"),
        provider='base_url = "http://[::1"',
    ),
    config_case(
        "base-url-port",
        ("providers.local.base_url", "port"),
        provider='base_url = "http://127.0.0.1:notaport"',
    ),
    config_case(
        "base-url-no-host", ("providers.local.base_url", "host"), provider='base_url = "http://"'
    ),
    config_case(
        "base-url-scheme", ("providers.local.base_url",), provider='base_url = "ftp://example.org"'
    ),
    # names longer than the store's columns
    config_case("model-name-250", ("models." + LONG, "200"), edit_model=LONG),
    Case(
        "provider-name-long",
        RUN,
        ("providers." + "p" * 120, "100"),
        config={"extra": f'[providers.{"p" * 120}]\nprotocol = "local"\n'},
    ),
    Case(
        "model-id-long",
        RUN,
        ("models.long.providers.local.model_id", "200"),
        config={
            "extra": f'[models.long]\n[models.long.providers.local]\nmodel_id = "{"i" * 201}"\n'
        },
    ),
    # capability tables
    config_case(
        "cap-ratio-zero",
        ("models.ident.providers.local", "capabilities.aspect_ratios", "0:1"),
        route='capabilities = { aspect_ratios = ["0:1"] }',
    ),
    config_case(
        "cap-size-banana",
        ("models.ident.providers.local", "capabilities.sizes", "banana"),
        route='capabilities = { sizes = ["banana"] }',
    ),
    config_case(
        "cap-unknown-key",
        ("models.ident.providers.local", "capabilities.colours"),
        route="capabilities = { colours = 3 }",
    ),
    config_case(
        "cap-sizes-and-ratios",
        ("models.ident.providers.local", "capabilities"),
        route='capabilities = { sizes = ["1024x1024"], aspect_ratios = ["1:1"] }',
    ),
    config_case(
        "cap-min-over-max",
        ("models.ident.providers.local", "capabilities.min_px"),
        route="capabilities = { min_px = 512, max_px = 256 }",
    ),
    config_case(
        "cap-unused-route",
        ("models.unused.providers.local", "capabilities.resolutions", "banana"),
        extra="[models.unused]\ntasks = ['edit']\n[models.unused.providers.local]\ncapabilities = { resolutions = ['banana'] }",
    ),
    # the API key variable
    Case(
        "missing-api-key",
        RUN,
        ("providers.paid", "api_key_env", NO_KEY_ENV),
        config={
            "extra": f'[providers.paid]\nprotocol = "openai"\nbase_url = "http://127.0.0.1:9"\napi_key_env = "{NO_KEY_ENV}"\n'
            "[models.paidmodel]\ntasks = ['text-to-image']\n[models.paidmodel.providers.paid]\nprice_usd = 0.04\n"
        },
    ),
    # other settings
    config_case(
        "unknown-provider-key",
        ("providers.local.colour", "unknown setting"),
        provider='colour = "red"',
    ),
    config_case(
        "unknown-protocol",
        ("providers.other.protocol", "nosuch"),
        extra='[providers.other]\nprotocol = "nosuch"\n',
    ),
    config_case(
        "concurrency-zero",
        ("providers.local.max_concurrency", "positive"),
        provider="max_concurrency = 0",
    ),
    config_case(
        "concurrency-float",
        ("providers.local.max_concurrency", "int"),
        provider="max_concurrency = 2.5",
    ),
    config_case("samples-zero", ("samples",), top="samples = 0"),
    config_case(
        "bad-task",
        ("models.card2.tasks",),
        extra="[models.card2]\ntasks = ['painting']\n[models.card2.providers.local]\n",
    ),
    config_case(
        "route-unknown-provider",
        ("models.ghost.providers.nowhere",),
        extra="[models.ghost]\n[models.ghost.providers.nowhere]\n",
    ),
    config_case(
        "challenges-unknown", ("challenges", "nope", "edit", "t2i"), top='challenges = ["nope"]'
    ),
    config_case("toml-syntax", ("arena.toml", "not valid TOML"), top="samples = = 1"),
    # the gateway's table, read by every command
    config_case("gateway-unknown", ("gateway.speed", "unknown"), extra="[gateway]\nspeed = 1\n"),
    config_case(
        "gateway-public-url",
        ("gateway.public_url", "ftp://x"),
        extra='[gateway]\npublic_url = "ftp://x"\n',
    ),
    config_case(
        "gateway-breaker-share",
        ("gateway.breaker_failure_share", "1.5"),
        extra="[gateway]\nbreaker_failure_share = 1.5\n",
    ),
    config_case(
        "gateway-ttl-nan", ("gateway.file_ttl_s", "finite"), extra="[gateway]\nfile_ttl_s = nan\n"
    ),
    config_case(
        "gateway-policy-sort",
        ("gateway.models.card.sort", "fastest"),
        extra='[gateway.models.card]\nsort = "fastest"\n',
    ),
    config_case(
        "gateway-policy-order",
        ("gateway.models.card.order", "nowhere"),
        extra='[gateway.models.card]\norder = ["nowhere"]\n',
    ),
    config_case(
        "gateway-policy-model",
        ("gateway.models.ghost", "ghost"),
        extra='[gateway.models.ghost]\nsort = "price"\n',
    ),
]

DATABASE_CASES = [
    config_case(
        "db-unknown-driver",
        ("database_url", "nosuch"),
        database_url="postgresql+nosuch://postgres@127.0.0.1/test",
    ),
    config_case(
        "db-port-not-number",
        ("database_url", "port"),
        database_url="postgresql://postgres@127.0.0.1:notaport/test",
    ),
    config_case("db-unknown-scheme", ("database_url",), database_url="mysql://root@127.0.0.1/test"),
    config_case(
        "db-refused",
        ("database", "127.0.0.1", "refused"),
        database_url="postgresql://postgres@127.0.0.1:1/test",
    ),
    config_case("db-sqlite-is-directory", ("database",), database_url="sqlite:///{dir}"),
]

CHALLENGE_CASES = [
    image_case(
        "source-text-file",
        b"this is not an image\n" * 10,
        ("edit.toml", "source_images", "face.png", "not an image"),
    ),
    image_case(
        "source-144-mp", make_bomb_png(12000), ("edit.toml", "source_images", "face.png", "pixel")
    ),
    image_case(
        "source-truncated", make_png(64, 64)[:60], ("edit.toml", "source_images", "face.png")
    ),
    image_case(
        "source-too-small", make_png(4, 4), ("edit.toml", "source_images", "face.png", "4x4")
    ),
    challenge_case(
        "source-missing",
        ("edit.toml", "source_images", "nope.png"),
        "edit.toml",
        'slug = "edit"\ntitle = "Hair"\nkind = "edit"\nprompt = "p"\ncategory = "c"\nsource_images = ["images/nope.png"]\n',
        replace=True,
    ),
    challenge_case(
        "category-100",
        ("t2i.toml", "category", "64"),
        "t2i.toml",
        f'slug = "t2i"\ntitle = "A cat"\nkind = "text-to-image"\nprompt = "a cat"\ncategory = "{"c" * 100}"\n',
        replace=True,
    ),
    challenge_case(
        "aspect-zero", ("t2i.toml", "aspect_ratio", "0:1"), text='aspect_ratio = "0:1"\n'
    ),
    challenge_case(
        "aspect-extreme", ("t2i.toml", "aspect_ratio", "1:1000"), text='aspect_ratio = "1:1000"\n'
    ),
    challenge_case(
        "resolution-banana", ("t2i.toml", "resolution", "banana"), text='resolution = "banana"\n'
    ),
    challenge_case(
        "resolution-huge", ("t2i.toml", "resolution", "100K"), text='resolution = "100K"\n'
    ),
    challenge_case("size-huge", ("t2i.toml", "size", "99999x99999"), text='size = "99999x99999"\n'),
    challenge_case("size-zero", ("t2i.toml", "size", "0x100"), text='size = "0x100"\n'),
    challenge_case(
        "kind-video",
        ("t2i.toml", "kind", "video"),
        "t2i.toml",
        'slug = "t2i"\ntitle = "t"\nkind = "video"\nprompt = "p"\ncategory = "c"\n',
        replace=True,
    ),
    challenge_case(
        "unknown-field", ("t2i.toml", "colour", "unknown field"), text='colour = "red"\n'
    ),
    challenge_case("not-toml", ("t2i.toml", "not valid TOML"), text="= = =\n"),
    challenge_case(
        "slug-mismatch",
        ("t2i.toml", "slug", "other"),
        "t2i.toml",
        'slug = "other"\ntitle = "t"\nkind = "text-to-image"\nprompt = "p"\ncategory = "c"\n',
        replace=True,
    ),
    challenge_case(
        "json-prompt-invalid", ("t2i.toml", "prompt", "JSON"), text='prompt_format = "json"\n'
    ),
    challenge_case(
        "edit-without-source",
        ("edit.toml", "source_images"),
        "edit.toml",
        'slug = "edit"\ntitle = "t"\nkind = "edit"\nprompt = "p"\ncategory = "c"\n',
        replace=True,
    ),
    challenge_case(
        "title-empty",
        ("t2i.toml", "title"),
        "t2i.toml",
        'slug = "t2i"\ntitle = ""\nkind = "text-to-image"\nprompt = "p"\ncategory = "c"\n',
        replace=True,
    ),
    Case(
        "challenge-utf16",
        RUN,
        ("t2i.toml", "UTF-8"),
        files={
            "challenges/t2i.toml": 'slug = "t2i"\ntitle = "t"\nkind = "text-to-image"\nprompt = "p"\ncategory = "c"\n'.encode(
                "utf-16"
            )
        },
    ),
]

GOOD_VOTES = (
    "model_a,model_b,winner\n" + "ident,card,model_a\ncard,ident,model_b\nident,card,tie\n" * 3
)
VOTES = ["ratings", "--votes", "{file}"]
VOTES_CASES = [
    Case(
        "votes-jsonl-latin1",
        VOTES,
        ("votes.jsonl", "UTF-8"),
        files={
            "votes.jsonl": '{"model_a": "caf\xe9", "model_b": "b", "winner": "model_a"}\n'.encode(
                "latin-1"
            )
        },
    ),
    Case(
        "votes-csv-latin1",
        VOTES,
        ("votes.csv", "UTF-8"),
        files={"votes.csv": "model_a,model_b,winner\ncaf\xe9,b,model_a\n".encode("latin-1")},
    ),
    Case(
        "votes-time-1e20",
        VOTES,
        ("votes.jsonl", "line 1", "time"),
        files={
            "votes.jsonl": b'{"model_a": "a", "model_b": "b", "winner": "model_a", "tstamp": 1e20}\n'
        },
    ),
    Case(
        "votes-time-nan-text",
        VOTES,
        ("votes.csv", "row 1", "time"),
        files={"votes.csv": b"model_a,model_b,winner,tstamp\na,b,model_a,banana\n"},
    ),
    Case(
        "votes-ragged-csv",
        VOTES,
        ("votes.csv",),
        files={"votes.csv": b"model_a,model_b,winner\na,b,model_a\na,b,model_a,extra,more\n"},
    ),
    Case(
        "votes-unknown-winner",
        VOTES,
        ("votes.csv", "row 1", "winner"),
        files={"votes.csv": b"model_a,model_b,winner\na,b,nobody\n"},
    ),
    Case(
        "votes-missing-column",
        VOTES,
        ("votes.csv", "winner"),
        files={"votes.csv": b"model_a,model_b\na,b\n"},
    ),
    Case(
        "votes-bad-json-line",
        VOTES,
        ("votes.jsonl", "line 2"),
        files={
            "votes.jsonl": b'{"model_a": "a", "model_b": "b", "winner": "model_a"}\n{not json\n'
        },
    ),
    Case("votes-empty", VOTES, ("votes.csv", "empty"), files={"votes.csv": b""}),
    Case("votes-not-found", ["ratings", "--votes", "{dir}/nope.csv"], ("nope.csv",)),
    Case("votes-suffix", VOTES, ("votes.txt", ".csv"), files={"votes.txt": b"a,b\n"}),
    Case(
        "votes-same-model",
        VOTES,
        ("votes.csv", "row 1"),
        files={"votes.csv": b"model_a,model_b,winner\na,a,model_a\n"},
    ),
]
for case in VOTES_CASES:
    case.argv = [a.replace("{file}", "{dir}/" + next(iter(case.files), "")) for a in case.argv]

ARGUMENT_CASES = [
    Case("keys-bad-name", ["keys", "create", "bad name!", "--config", "{config}"], ("bad name!",)),
    Case(
        "keys-budget-negative",
        ["keys", "create", "app", "--budget-usd", "-1", "--config", "{config}"],
        ("--budget-usd", "-1"),
    ),
    Case("keys-revoke-nosuch", ["keys", "revoke", "nosuch", "--config", "{config}"], ("nosuch",)),
    Case("run-challenge-nope", [*RUN, "--challenge", "nope"], ("nope", "edit", "t2i")),
    Case("run-samples-zero", [*RUN, "--samples", "0"], ("--samples", "'0'")),
    Case("run-samples-word", [*RUN, "--samples", "many"], ("--samples", "many")),
    Case("run-max-cost-nan", [*RUN, "--max-cost", "nan"], ("--max-cost", "nan")),
    Case("run-max-cost-negative", [*RUN, "--max-cost", "-1"], ("--max-cost", "-1")),
    Case("run-resume-nosuch", [*RUN, "--resume", "nosuch"], ("nosuch",)),
    Case(
        "stats-model-nosuch",
        ["stats", "--config", "{config}", "--model", "nosuch"],
        ("--model", "nosuch", "card", "ident"),
    ),
    Case(
        "stats-window",
        ["stats", "--config", "{config}", "--window", "fortnight"],
        ("--window", "fortnight"),
    ),
    Case(
        "ratings-anchor-nosuch",
        ["ratings", "--votes", "{dir}/good.csv", "--anchor", "nosuch"],
        ("--anchor", "nosuch", "card", "ident"),
        files={"good.csv": GOOD_VOTES.encode()},
    ),
    Case(
        "ratings-rounds-zero",
        ["ratings", "--votes", "{dir}/good.csv", "--rounds", "0"],
        ("--rounds",),
        files={"good.csv": GOOD_VOTES.encode()},
    ),
    Case("ratings-task", ["ratings", "--task", "video"], ("--task", "video")),
    # a demo that ignored --config would run into the checkout's data dir: keep it in the case's
    Case(
        "demo-config",
        ["demo", "--config", "{config}"],
        ("demo", "--config"),
        env={"ARENA_DATA_DIR": "{dir}/demo"},
    ),
    Case("config-directory", ["run", "--config", "{dir}"], ("is a directory",)),
    Case(
        "config-utf16",
        ["run", "--config", "{dir}/utf16.toml"],
        ("utf16.toml", "UTF-8"),
        files={"utf16.toml": "samples = 1\n".encode("utf-16")},
    ),
    Case("config-not-found", ["run", "--config", "{dir}/nope.toml"], ("nope.toml", "not found")),
    Case("config-env-directory", ["validate"], ("is a directory",), env={"ARENA_CONFIG": "{dir}"}),
    Case("unknown-command", ["fly"], ("fly",)),
    Case("unknown-option", ["run", "--colour", "red"], ("--colour",)),
    Case("probe-no-at", ["probe", "card", "--challenge", "t2i", "--config", "{config}"], ("card",)),
    Case("local-provider-delay-nan", ["local-provider", "--delay", "nan"], ("--delay", "nan")),
]

ALL_CASES = CONFIG_CASES + DATABASE_CASES + CHALLENGE_CASES + VOTES_CASES + ARGUMENT_CASES
VALIDATED = [c for c in CONFIG_CASES + DATABASE_CASES + CHALLENGE_CASES if c.validate]


def test_the_table_is_large_and_named_uniquely():
    assert len(ALL_CASES) >= 60
    assert len({c.id for c in ALL_CASES}) == len(ALL_CASES)


def prepare(case: Case, world: World, root: Path) -> tuple[list[str], dict[str, str]]:
    """Build the case's files under root; its argv and environment with the placeholders filled in."""
    challenges = root / "challenges"
    shutil.copytree(world.challenges, challenges)
    for name, text in case.challenge.items():
        path = challenges / name
        path.write_text(text if case.replace_challenge else path.read_text() + text)
    config = dict(case.config)
    if "database_url" in config:
        config["database_url"] = config["database_url"].replace("{dir}", str(root))
    (root / "arena.toml").write_text(config_text(world, challenges, **config))
    for name, data in case.files.items():
        (root / name).write_bytes(data)

    def fill(text: str) -> str:
        return (
            text.replace("{config}", str(root / "arena.toml"))
            .replace("{challenges}", str(challenges))
            .replace("{dir}", str(root))
        )

    return [fill(a) for a in case.argv], {k: fill(v) for k, v in case.env.items()}


def assert_one_line(err: str, case: Case) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"{case.id}: want one line, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("arena: error: "), f"{case.id}: {line}"
    assert "Traceback" not in err
    for name in case.names:
        assert name in line, f"{case.id}: {name!r} not in {line!r}"
    return line


def run_in_process(argv, env, monkeypatch, capsys) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(NO_KEY_ENV, raising=False)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_malformed_input_is_one_line_exit_2_and_changes_nothing(
    case, world, tmp_path, monkeypatch, capsys
):
    argv, env = prepare(case, world, tmp_path)
    before = store_state(world)
    code, err = run_in_process(argv, env, monkeypatch, capsys)
    assert code == 2, f"{case.id}: exit {code}; stderr: {err}"
    assert_one_line(err, case)
    assert store_state(world) == before


@pytest.mark.parametrize("case", VALIDATED, ids=lambda c: c.id)
def test_validate_refuses_whatever_run_refuses(case, world, tmp_path, monkeypatch, capsys):
    argv, env = prepare(case, world, tmp_path)
    code, run_err = run_in_process(argv, env, monkeypatch, capsys)
    assert code == 2
    validate = ["validate", *argv[1:]]
    before = store_state(world)
    code, err = run_in_process(validate, env, monkeypatch, capsys)
    assert code == 2, f"{case.id}: validate exit {code}; stderr: {err}"
    assert assert_one_line(err, case) == run_err.strip()  # the same words for the same mistake
    assert store_state(world) == before


def test_a_valid_world_runs_and_validates(world, tmp_path, capsys, monkeypatch):
    """The control: the same files with nothing broken pass both commands (so the cases test one thing)."""
    argv, env = prepare(Case("valid", RUN, ()), world, tmp_path)
    assert main(["validate", *argv[1:]]) == 0
    assert main(argv) == 0
    assert capsys.readouterr().err.count("arena: error") == 0


# --- the store at start: a locked SQLite file --------------------------------------------------


def test_a_locked_sqlite_file_is_one_line_and_stores_nothing(tmp_path, capsys, monkeypatch):
    world = _seed(f"sqlite:///{tmp_path / 'arena.db'}", tmp_path)
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_S", 0.2)  # not 30 s of waiting
    argv, _ = prepare(Case("locked", RUN, ()), world, tmp_path / "case")
    before = store_state(world)
    holder = sqlite3.connect(tmp_path / "arena.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = assert_one_line(err, Case("locked", [], ("database", "locked")))
    assert "[SQL" not in line
    assert store_state(world) == before


# --- no votes yet is not an error ---------------------------------------------------------------


def test_ratings_with_no_votes_says_so_and_points_to_serve(db_url, tmp_path, capsys):
    world = World(db_url, tmp_path / "data", write_challenges(tmp_path / "challenges"))
    config = tmp_path / "arena.toml"
    config.write_text(config_text(world, world.challenges))
    assert main(["ratings", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "no votes yet" in captured.out and "arena serve" in captured.out
    assert captured.err == ""


# --- real subprocesses: nothing but the one line reaches a terminal -----------------------------

SUBPROCESS_CASES = [
    "timeout-nan",
    "base-url-bracket",
    "db-unknown-driver",
    "source-144-mp",
    "votes-jsonl-latin1",
    "config-directory",
    "run-samples-zero",
    "cap-ratio-zero",
]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ARENA_") or k == "ARENA_TEST_POSTGRES_URL"
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


@pytest.mark.slow
@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_in_a_real_process_no_traceback_reaches_the_terminal(case_id, world, tmp_path):
    case = next(c for c in ALL_CASES if c.id == case_id)
    argv, env = prepare(case, world, tmp_path)
    before = store_state(world)
    proc = subprocess.run(
        [sys.executable, "-m", "arena", *argv],
        env=_env(env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert_one_line(proc.stderr, case)
    assert store_state(world) == before


@pytest.mark.slow
def test_serve_on_a_busy_port_is_one_line_before_any_announcement(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "arena", "serve", "--port", str(port)],
            env=_env({"ARENA_DATA_DIR": str(tmp_path / "data")}),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        busy.close()
    assert proc.returncode == 2, proc.stderr
    assert "voting page on" not in proc.stdout
    assert_one_line(proc.stderr, Case("busy", [], (f"127.0.0.1:{port}", "in use")))


def _checkout(tmp_path: Path) -> Path:
    """A copy of scripts/nightly in a checkout whose .venv runs this arena (no venv is built)."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "nightly", checkout / "scripts" / "nightly")
    bin_dir = checkout / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, command in (
        ("python", f'"{sys.executable}"'),
        ("arena", f'"{sys.executable}" -m arena'),
    ):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    return checkout


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["loading the config", "inside arena nightly"])
def test_scripts_nightly_with_a_bad_config_prints_one_line_with_the_whole_reason(stage, tmp_path):
    """A config that does not load is refused before the log; one that fails inside `arena nightly`
    (its challenge list names no challenge) is its one error line, with where the log is."""
    checkout = _checkout(tmp_path)
    config = tmp_path / "arena.toml"
    if stage == "loading the config":
        config.write_text('[providers.local]\nprotocol = "local"\ntimeout_s = nan\n')
        names = ("providers.local.timeout_s", "finite")
    else:
        world = World("", tmp_path / "data", write_challenges(tmp_path / "challenges"))
        text = config_text(
            world,
            world.challenges,
            top='challenges = ["nope"]',
            database_url=f"sqlite:///{tmp_path / 'a.db'}",
        )
        config.write_text(text)
        names = ("unknown challenge 'nope'", "edit, t2i", "log:")
    proc = subprocess.run(
        [str(checkout / "scripts" / "nightly")],
        env=_env({"ARENA_CONFIG": str(config)}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert_one_line(proc.stderr, Case(stage, [], names))


def test_the_name_limits_are_the_store_column_lengths():
    """Config and challenge validation refuse exactly what a column cannot hold, on either backend."""
    from arena import challenges, config
    from arena.store.tables import Battle, Job

    columns = {
        name: getattr(col.type, "length", None) for name, col in Job.__table__.columns.items()
    }
    assert config.MAX_MODEL_NAME == columns["model"] == Battle.__table__.c.model_left.type.length
    assert columns["provider"] == config.MAX_PROVIDER_NAME
    assert columns["model_id"] == config.MAX_MODEL_ID
    assert columns["category"] == challenges.MAX_CATEGORY
    assert challenges.SLUG_RE.match("a" * 63) and columns["challenge"] >= 63

"""The registry: a plugin adapter is first class, and every built-in's default table only asks what its API takes."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from importlib.metadata import EntryPoint

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from arena import params
from arena.cli import main
from arena.config import ProtocolFacts, ProviderConfig, parse_settings, project_root
from arena.errors import ConfigError
from arena.images import encode_png
from arena.params import SHAPE_AS_RATIO, Handling, normalize_request, parse_ratio
from arena.providers import (
    BUILTIN,
    adapter_class,
    protocol_facts,
    registry,
    route_capabilities,
)
from arena.providers.base import Adapter, ImageRequest, ProviderReply, Stopwatch
from arena.providers.local.server import _parse_size

# --- a plugin, as a third party would write it ------------------------------------------------


class InkAdapter(Adapter):
    """A made-up protocol: ratios only, `n` sent as `count`, PNG only (arena converts)."""

    protocol = "ink"
    needs_key = True
    shape_form = "ratio"
    parameters = {
        **SHAPE_AS_RATIO,
        "n": Handling("renamed", "count", "one call, many images"),
        "output_format": Handling("emulated", "", "always PNG; arena converts"),
    }
    default_capabilities = {"aspect_ratios": ["1:1", "2:1", "1:2"], "resolutions": ["1K"]}
    sent: list[ImageRequest] = []  # what reached the adapter, after normalization

    async def generate(self, request: ImageRequest, watch: Stopwatch) -> ProviderReply:
        InkAdapter.sent.append(request)
        watch.start()
        watch.mark("ttfb")
        watch.mark("download_start")
        width, height = (128, 64) if request.aspect_ratio == "2:1" else (64, 64)
        png = encode_png(Image.new("RGB", (width, height), (10, 20, 30)))
        watch.mark("done")
        return ProviderReply(images=[png])


PLUGIN_CONFIG = f"""
challenges_dir = "{project_root() / "challenges"}"
[providers.inkwell]
protocol = "ink"
base_url = "https://ink.example/v1"
api_key_env = "ARENA_TEST_INK_KEY"

[models.ink-default]
tasks = ["text-to-image"]
[models.ink-default.providers.inkwell]
price_usd = 0.01

[models.ink-wide]
tasks = ["text-to-image"]
[models.ink-wide.providers.inkwell]
price_usd = 0.02
capabilities = {{ aspect_ratios = ["16:9", "1:1"] }}
"""


@pytest.fixture
def plugin(monkeypatch):
    """InkAdapter installed under the `arena.providers` entry point group."""
    entry = EntryPoint(name="ink", value=f"{__name__}:InkAdapter", group=registry.ENTRY_POINT_GROUP)

    def entry_points(group: str):
        return [entry] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry, "entry_points", entry_points)
    monkeypatch.setenv("ARENA_TEST_INK_KEY", "ink-secret-value")
    InkAdapter.sent = []
    return InkAdapter


def test_the_registry_reads_a_plugins_facts_from_its_class(plugin):
    assert adapter_class("ink") is plugin
    assert protocol_facts()["ink"] == ProtocolFacts(
        needs_key=True, baseline=False, base_url_required=True, parameters=plugin.parameters
    )
    assert route_capabilities({}, plugin) == plugin.default_capabilities
    assert route_capabilities({"aspect_ratios": ["16:9"]}, plugin) == {"aspect_ratios": ["16:9"]}


def test_config_accepts_a_plugin_protocol_only_when_it_is_installed(plugin, tmp_path, monkeypatch):
    data = {
        "providers": {"inkwell": {"protocol": "ink", "base_url": "https://ink.example/v1"}},
        "models": {"m": {"providers": {"inkwell": {}}}},
    }
    with pytest.raises(ConfigError, match="api_key_env: missing: protocol ink sends a key"):
        parse_settings(data, "x.toml", tmp_path, protocol_facts())  # its needs_key is read
    data["providers"]["inkwell"]["api_key_env"] = "ARENA_TEST_INK_KEY"
    settings = parse_settings(data, "x.toml", tmp_path, protocol_facts())
    assert settings.providers["inkwell"].protocol == "ink"
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    with pytest.raises(ConfigError, match="unknown protocol 'ink'"):
        parse_settings(data, "x.toml", tmp_path, protocol_facts())


def test_arena_providers_shows_the_plugins_own_handling_table(plugin, capsys, tmp_path):
    config = tmp_path / "arena.toml"
    config.write_text(PLUGIN_CONFIG)
    assert main(["providers", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "inkwell: protocol ink, https://ink.example/v1, key $ARENA_TEST_INK_KEY (set)" in out

    def cells(first: str) -> list[str]:  # a table row's cells (columns are 3 spaces apart)
        (line,) = [line for line in out.splitlines() if line.startswith(first + "  ")]
        return re.split(r"\s{2,}", line.strip())

    assert cells("n") == ["n", "renamed", "count", "one call, many images"]
    assert cells("output_format") == ["output_format", "emulated", "always PNG; arena converts"]
    assert cells("stream") == ["stream", "passthrough", "sent as given"]  # not in its table
    assert "ratio: the protocol's default table: aspect_ratios: 1:1, 2:1, 1:2" in out
    assert "ratio: aspect_ratios: 16:9, 1:1" in out  # a route's own table wins
    assert "ink-secret-value" not in out
    assert main(["providers", "--json", "--config", str(config)]) == 0
    (inkwell,) = json.loads(capsys.readouterr().out)
    assert inkwell["parameters"]["n"] == {
        "kind": "renamed",
        "sent_as": "count",
        "note": "one call, many images",
    }


def test_normalization_uses_the_plugins_default_table_and_a_routes_own_one_wins(
    plugin, capsys, tmp_path
):
    config = tmp_path / "arena.toml"
    config.write_text(PLUGIN_CONFIG)
    # anime-scene asks for 16:9: the plugin's default table has 2:1 nearest; ink-wide lists 16:9.
    for target, ratio in (("ink-default@inkwell", "2:1"), ("ink-wide@inkwell", "16:9")):
        code = main(
            ["probe", target, "--challenge", "anime-scene", "--json", "--config", str(config)]
        )
        result = json.loads(capsys.readouterr().out)
        assert code == 0, result
        assert result["sent"] == {"size": None, "aspect_ratio": ratio, "resolution": None}
        assert plugin.sent[-1].aspect_ratio == ratio  # what the adapter itself received
    assert (result["width"], result["height"]) == (64, 64)


# --- every built-in's default table asks only what its API takes ------------------------------
# The accepted values below are the providers' documented ones (/work/shared/reference/providers.md),
# written out here rather than read from the adapters, so a wrong default table fails.

OPENAI_GPT_IMAGE_SIZES = {"1024x1024", "1536x1024", "1024x1536", "auto"}
XAI_RATIOS = {"1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9", "9:20"}
XAI_RATIOS |= {"20:9", "1:2", "2:1", "auto"}
XAI_LATER_RATIOS = {"21:9", "5:2"}  # seen accepted since Aug 2026: never in a default table
GEMINI_RATIOS = {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"}
FAL_ENDPOINT_RATIOS = {  # every endpoint a fal route without a table may be
    "flux-pro/kontext": {"21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"},
    "nano-banana": {
        "auto",
        "21:9",
        "16:9",
        "3:2",
        "4:3",
        "5:4",
        "1:1",
        "4:5",
        "3:4",
        "2:3",
        "9:16",
    },
    "grok-imagine-image": {"2:1", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "1:2"},
}
REPLICATE_MODEL_RATIOS = {
    "google/nano-banana": {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"},
    "black-forest-labs/flux-kontext-pro": {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}
    | {"4:5", "5:4", "21:9", "9:21", "2:1", "1:2"},
}
FLUX2_MAX_PIXELS = 4 * 1024 * 1024


def _provider(protocol: str) -> ProviderConfig:
    return ProviderConfig(name=protocol, protocol=protocol, base_url="http://127.0.0.1:1/v1")


def check_openai(out: ImageRequest) -> None:
    assert out.aspect_ratio is None and out.resolution is None
    assert out.size is None or out.size in OPENAI_GPT_IMAGE_SIZES


def check_local(out: ImageRequest) -> None:
    assert out.aspect_ratio is None and out.resolution is None
    _parse_size(out.size)  # the baseline server's own parser: raises on what it would refuse


def check_xai(out: ImageRequest) -> None:
    body = adapter_class("xai")(_provider("xai"), None, None).build_body(out)
    assert "size" not in body
    assert body.get("aspect_ratio") in XAI_RATIOS | XAI_LATER_RATIOS | {None}
    assert body.get("resolution") in {"1k", "2k", None}


def check_fal(out: ImageRequest) -> None:
    body = adapter_class("fal")(_provider("fal"), None, None).build_body(out)
    assert "image_size" not in body and "resolution" not in body
    for endpoint, ratios in FAL_ENDPOINT_RATIOS.items():
        assert body.get("aspect_ratio") in ratios | {None}, endpoint


def check_bfl(out: ImageRequest) -> None:
    bfl = adapter_class("bfl")(_provider("bfl"), None, None)
    kontext = bfl.build_body(out)
    if "aspect_ratio" in kontext:  # Kontext: between 21:9 and 9:21
        assert 9 / 21 - 1e-9 <= parse_ratio(kontext["aspect_ratio"]) <= 21 / 9 + 1e-9
    flux2 = bfl.build_body(replace(out, model_id="flux-2-pro"))
    if "width" in flux2:  # FLUX.2: multiples of 16, at least 64, at most 4 MP
        width, height = flux2["width"], flux2["height"]
        assert width % 16 == 0 and height % 16 == 0 and min(width, height) >= 64
        assert width * height <= FLUX2_MAX_PIXELS


def check_replicate(out: ImageRequest) -> None:
    model_input = adapter_class("replicate")(_provider("replicate"), None, None).build_input(out)
    assert "resolution" not in model_input
    for model, ratios in REPLICATE_MODEL_RATIOS.items():
        assert model_input.get("aspect_ratio") in ratios | {None}, model


def check_gemini(out: ImageRequest) -> None:
    body = adapter_class("gemini")(_provider("gemini"), None, None).build_body(out)
    image_config = body["generationConfig"].get("imageConfig", {})
    assert image_config.get("aspectRatio") in GEMINI_RATIOS | {None}
    assert image_config.get("imageSize") in {"1K", "2K", "4K", None}


def check_sent_as_normalized(protocol: str, out: ImageRequest) -> None:
    """The body carries the normalized values: the adapters' own guard changed nothing."""
    adapter = adapter_class(protocol)(_provider(protocol), None, None)
    if protocol == "bfl":
        sent = {"aspect_ratio": adapter.build_body(out).get("aspect_ratio")}
        assert sent == {"aspect_ratio": out.aspect_ratio}
    elif protocol == "xai":
        body = adapter.build_body(out)
        assert body.get("aspect_ratio") == out.aspect_ratio
        assert body.get("resolution") == (out.resolution.lower() if out.resolution else None)
    elif protocol == "gemini":
        image_config = adapter.build_body(out)["generationConfig"].get("imageConfig", {})
        assert image_config.get("aspectRatio") == out.aspect_ratio
        assert image_config.get("imageSize") == out.resolution


ACCEPTS = {
    "openai": check_openai,
    "local": check_local,
    "xai": check_xai,
    "fal": check_fal,
    "bfl": check_bfl,
    "replicate": check_replicate,
    "gemini": check_gemini,
}

ratio_sides = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 16, 19.5, 21, 40])
ratios = st.builds(lambda a, b: f"{a:g}:{b:g}", ratio_sides, ratio_sides)
tiers = st.sampled_from(["0.5K", "1K", "2K", "4K", "0.25", "1", "4", "auto", "1k", "2k"])
sizes = st.builds(
    lambda w, h: f"{w}x{h}", st.integers(16, 8192), st.integers(16, 8192)
) | st.sampled_from(["auto", "16:9", "1:8"])
requests = st.builds(
    lambda size, ratio, tier: ImageRequest(
        task="text-to-image",
        prompt="p",
        model_id="m",
        size=size,
        aspect_ratio=ratio,
        resolution=tier,
    ),
    st.none() | sizes,
    st.none() | ratios | st.just("auto"),
    st.none() | tiers,
)


def test_every_builtin_protocol_has_an_acceptance_check():
    assert set(ACCEPTS) == set(BUILTIN)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests, protocol=st.sampled_from(sorted(BUILTIN)))
def test_default_tables_only_produce_values_the_protocol_accepts(request, protocol):
    cls = adapter_class(protocol)
    caps = params.parse_capabilities(cls.default_capabilities, f"{protocol} default")
    out = normalize_request(request, cls.default_capabilities, cls.shape_form)
    # within the adapter's own declared table ...
    if caps.aspect_ratios or caps.resolutions:
        assert out.size is None
        assert out.aspect_ratio is None or out.aspect_ratio in caps.aspect_ratios
        assert out.resolution is None or out.resolution in caps.resolutions
    elif caps.sizes:
        assert out.size is None or out.size in caps.sizes
    elif out.size not in (None, "auto"):
        assert params.size_supported(*params.parse_pixels(out.size), caps)
    # ... and what the provider's documentation says it takes, once the adapter has built its body
    ACCEPTS[protocol](out)
    # ... and it is what was normalized: `arena probe` shows what is really sent
    check_sent_as_normalized(protocol, out)


def test_a_wrong_default_table_is_caught():
    # The checks can fail: a table that lets 4K through to xAI, or 3:1 through to Gemini, sends
    # what normalization did not decide (the adapters' guard had to step in).
    asked = ImageRequest(
        task="text-to-image", prompt="p", model_id="m", aspect_ratio="3:1", resolution="4K"
    )
    out = normalize_request(asked, {"aspect_ratios": ["3:1"], "resolutions": ["4K"]}, "ratio")
    for protocol in ("xai", "gemini"):
        with pytest.raises(AssertionError):
            check_sent_as_normalized(protocol, out)


def test_a_plugin_with_bad_facts_is_named_when_used_and_leaves_the_others_working(
    plugin, monkeypatch
):
    monkeypatch.setattr(plugin, "shape_form", "pixels")
    with pytest.raises(ConfigError, match=r"InkAdapter: shape_form 'pixels' is not one of"):
        adapter_class("ink")
    assert "ink" not in protocol_facts() and "openai" in protocol_facts()
    monkeypatch.setattr(plugin, "shape_form", "ratio")
    monkeypatch.setattr(plugin, "default_capabilities", {"aspect_ratio": ["1:1"]})
    with pytest.raises(ConfigError, match="default_capabilities: capabilities.aspect_ratio"):
        adapter_class("ink")


# --- what reaches an adapter un-normalized is still kept within its API ------------------------
# A route's table, the gateway, or any caller that never normalized: the body builder is the last
# guard. These are the values independent protocol servers refused (BFL 422, xAI and Gemini 400).

GUARDED = ("bfl", "xai", "gemini")


@pytest.mark.parametrize(
    ("protocol", "fields"),
    [
        ("bfl", {"aspect_ratio": "7:1"}),
        ("bfl", {"aspect_ratio": "10:3"}),
        ("bfl", {"aspect_ratio": "1:8", "resolution": "4K"}),
        ("xai", {"aspect_ratio": "16:9", "resolution": "4k"}),
        ("xai", {"aspect_ratio": "10:3", "resolution": "0.5k"}),
        ("gemini", {"aspect_ratio": "10:3", "resolution": "0.5K"}),
        ("gemini", {"aspect_ratio": "7:1", "resolution": "8K"}),
    ],
)
def test_an_adapter_never_sends_what_its_api_refuses(protocol, fields):
    asked = ImageRequest(task="text-to-image", prompt="p", model_id="m", **fields)
    ACCEPTS[protocol](asked)


def test_the_guard_keeps_what_the_api_takes_and_maps_the_rest_to_the_nearest():
    def bfl_body(**fields):
        request = ImageRequest(
            task="text-to-image", prompt="p", model_id="flux-kontext-pro", **fields
        )
        return adapter_class("bfl")(_provider("bfl"), None, None).build_body(request)

    assert bfl_body(aspect_ratio="7:1")["aspect_ratio"] == "21:9"
    assert bfl_body(aspect_ratio="1:10")["aspect_ratio"] == "9:21"
    assert bfl_body(aspect_ratio="5:4")["aspect_ratio"] == "5:4"  # within 21:9..9:21: as asked
    xai = adapter_class("xai")(_provider("xai"), None, None)
    body = xai.build_body(
        ImageRequest(
            task="text-to-image", prompt="p", model_id="m", aspect_ratio="21:9", resolution="4K"
        )
    )
    assert (body["aspect_ratio"], body["resolution"]) == ("21:9", "2k")  # 21:9: xAI takes it now
    gemini = adapter_class("gemini")(_provider("gemini"), None, None)

    def image_config(model_id, **fields):
        request = ImageRequest(task="text-to-image", prompt="p", model_id=model_id, **fields)
        return gemini.build_body(request)["generationConfig"]["imageConfig"]

    assert image_config("gemini-3-pro-image-preview", aspect_ratio="16:9", resolution="4K") == {
        "aspectRatio": "16:9",
        "imageSize": "4K",
    }
    # 2.5 Flash Image is 1K only; the 3.1 flash image models add 1:8 ... 8:1
    assert image_config("gemini-2.5-flash-image", resolution="4K") == {"imageSize": "1K"}
    assert (
        image_config("gemini-3.1-flash-image-preview", aspect_ratio="8:1")["aspectRatio"] == "8:1"
    )
    assert image_config("gemini-3-pro-image-preview", aspect_ratio="8:1")["aspectRatio"] == "21:9"


GEMINI_MODELS = ("gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-3.1-flash-image")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request=requests, protocol=st.sampled_from(GUARDED), gemini_model=st.sampled_from(GEMINI_MODELS)
)
def test_unnormalized_requests_only_produce_values_the_protocol_accepts(
    request, protocol, gemini_model
):
    ACCEPTS[protocol](request)
    if protocol == "gemini":  # and per model: 2.5 Flash Image takes 1K only
        model_request = replace(request, model_id=gemini_model)
        body = adapter_class("gemini")(_provider("gemini"), None, None).build_body(model_request)
        size = body["generationConfig"].get("imageConfig", {}).get("imageSize")
        allowed = (
            {"1K", None} if gemini_model.startswith("gemini-2.5") else {"1K", "2K", "4K", None}
        )
        assert size in allowed


def test_a_routes_default_table_is_the_models_own_where_a_model_takes_less():
    gemini = adapter_class("gemini")
    assert route_capabilities({}, gemini, "gemini-2.5-flash-image")["resolutions"] == ["1K"]
    assert route_capabilities({}, gemini, "gemini-3-pro-image-preview")["resolutions"] == [
        "1K",
        "2K",
        "4K",
    ]
    asked = ImageRequest(task="text-to-image", prompt="p", model_id="gemini-2.5-flash-image")
    out = normalize_request(
        replace(asked, resolution="4K"),
        route_capabilities({}, gemini, asked.model_id),
        gemini.shape_form,
    )
    assert out.resolution == "1K"

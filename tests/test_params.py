"""Normalization of size / aspect_ratio / resolution: test vectors, properties, bad input, handling table."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arena.errors import ArenaError, ConfigError
from arena.params import (
    HANDLING_KINDS,
    PARAMETERS,
    handling_for,
    handling_table,
    normalize_request,
    parse_capabilities,
    parse_pixels,
    parse_ratio,
    resolve_shape,
    size_supported,
    tier_area_px,
)
from arena.providers import BUILTIN, adapter_class
from arena.providers.base import ImageRequest

# The shape form of each protocol the vectors below were written for (now declared by its adapter).
FORM = {protocol: adapter_class(protocol).shape_form for protocol in BUILTIN}
HANDLING = {protocol: adapter_class(protocol).parameters for protocol in BUILTIN}

XAI_RATIOS = ["1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9", "9:20", "20:9"]
XAI_RATIOS += ["1:2", "2:1", "auto"]
XAI = {"aspect_ratios": XAI_RATIOS, "resolutions": ["1K", "2K"], "short_side_multiple": 2}
GPT_IMAGE_1 = {"sizes": ["1024x1024", "1536x1024", "1024x1536", "auto"]}
GPT_IMAGE_2 = {"size_multiple": 16, "min_px": 256, "max_px": 3840, "max_pixels": 3840 * 2160}
GPT_IMAGE_2["max_ratio"] = 3


def shape(caps: dict, protocol: str, size=None, aspect_ratio=None, resolution=None):
    return resolve_shape(size, aspect_ratio, resolution, parse_capabilities(caps), FORM[protocol])


# --- test vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ratio, tier, pixels",
    [
        ("16:9", "1K", (1365, 768)),
        ("16:9", "2K", (2731, 1536)),
        ("9:19.5", "2K", (1392, 3015)),
        ("1:1", "2K", (2048, 2048)),
        ("3:2", "1K", (1254, 836)),
    ],
)
def test_xai_tables_are_reproduced(ratio, tier, pixels):
    result = shape(XAI, "xai", aspect_ratio=ratio, resolution=tier)
    assert (result.aspect_ratio, result.resolution) == (ratio, tier)
    assert (result.width_px, result.height_px) == pixels
    assert result.size is None  # xAI rejects `size`: the ratio form must not send it


def test_a_7_to_1_request_gets_8_to_1_not_4_to_1():
    # Linearly 7 is nearer 8 than 4 as well, so also check a case where linear and log disagree:
    # 5.7:1 is linearly nearer 4:1 (1.7 vs 2.3) but on a log scale nearer 8:1 (the log midpoint is 5.66).
    caps = {"aspect_ratios": ["4:1", "8:1", "1:1"]}
    assert shape(caps, "fal", aspect_ratio="7:1").aspect_ratio == "8:1"
    assert shape(caps, "fal", aspect_ratio="5.7:1").aspect_ratio == "8:1"
    assert shape(caps, "fal", aspect_ratio="5.6:1").aspect_ratio == "4:1"


def test_portrait_and_landscape_are_symmetric_on_the_log_scale():
    caps = {"aspect_ratios": ["1:1", "2:1", "1:2"]}
    # sqrt(2):1 is exactly between 1:1 and 2:1 in log terms: a tie goes to the squarer shape.
    assert shape(caps, "fal", aspect_ratio="1.41421356237:1").aspect_ratio == "1:1"
    assert shape(caps, "fal", aspect_ratio="1.5:1").aspect_ratio == "2:1"
    assert shape(caps, "fal", aspect_ratio="1:1.5").aspect_ratio == "1:2"


def test_resolution_tiers_are_case_insensitive_and_megapixels_equal_k_tiers():
    caps = {"resolutions": ["0.5K", "1k", "2K"], "aspect_ratios": ["1:1"]}
    assert shape(caps, "xai", aspect_ratio="1:1", resolution="2k").resolution == "2K"
    assert shape(caps, "xai", aspect_ratio="1:1", resolution="1K").resolution == "1k"
    assert shape(caps, "xai", aspect_ratio="1:1", resolution="0.25").resolution == "0.5K"
    assert shape(caps, "xai", aspect_ratio="1:1", resolution="4").resolution == "2K"  # 4 MP = 2K
    assert shape(caps, "xai", aspect_ratio="1:1", resolution="4K").resolution == "2K"
    assert tier_area_px("1") == tier_area_px("1K") == 1024 * 1024


def test_a_size_wins_over_aspect_ratio_and_resolution():
    result = shape(XAI, "xai", size="1024x1536", aspect_ratio="16:9", resolution="2K")
    assert (result.aspect_ratio, result.resolution) == ("2:3", "1K")
    sized = shape(GPT_IMAGE_1, "openai", size="1024x1536", aspect_ratio="16:9", resolution="2K")
    assert sized.size == "1024x1536"


def test_a_w_colon_h_size_is_an_aspect_ratio():
    for caps, protocol in ((XAI, "xai"), (GPT_IMAGE_1, "openai"), (GPT_IMAGE_2, "openai")):
        as_size = shape(caps, protocol, size="16:9", resolution="2K")
        as_ratio = shape(caps, protocol, aspect_ratio="16:9", resolution="2K")
        assert as_size == as_ratio
    # ... and a W:H size overrides aspect_ratio, as any size does.
    assert shape(XAI, "xai", size="9:16", aspect_ratio="16:9").aspect_ratio == "9:16"


def test_size_lists_map_shape_first_then_scale():
    assert shape(GPT_IMAGE_1, "openai", aspect_ratio="16:9", resolution="4K").size == "1536x1024"
    assert shape(GPT_IMAGE_1, "openai", aspect_ratio="9:16").size == "1024x1536"
    assert shape(GPT_IMAGE_1, "openai", size="auto").size == "auto"
    assert shape(GPT_IMAGE_1, "openai", resolution="2K").size == "1024x1024"  # no shape: square


def test_free_form_sizes_respect_multiples_and_bounds():
    caps = parse_capabilities(GPT_IMAGE_2)
    wide = shape(GPT_IMAGE_2, "openai", aspect_ratio="16:9", resolution="4K")
    assert wide.size == "3840x2160"  # 4K would be 16.8 MP; capped at max_pixels, sides / 16
    thin = shape(GPT_IMAGE_2, "openai", aspect_ratio="7:1", resolution="1K")
    w, h = parse_pixels(thin.size)
    assert size_supported(w, h, caps) and w / h == pytest.approx(3, abs=0.05)
    tiny = shape(GPT_IMAGE_2, "openai", size="100x100")
    assert tiny.size == "256x256"


def test_a_model_with_no_table_gets_the_request_in_its_protocols_form():
    assert shape({}, "openai", size="1000x700").size == "1000x700"  # nothing to check against
    assert shape({}, "openai", aspect_ratio="16:9").size == "1360x768"  # converted, sides / 16
    assert shape({}, "xai", aspect_ratio="9:19.5", resolution="2k").aspect_ratio == "9:19.5"
    converted = shape({}, "xai", size="1536x1024")
    assert (converted.aspect_ratio, converted.resolution) == ("3:2", "1K")
    assert shape({}, "gemini") == shape(XAI, "xai")  # nothing asked: provider defaults


def test_normalize_request_sets_the_fields_the_model_takes_and_keeps_the_rest():
    request = ImageRequest(
        task="text-to-image",
        prompt="p",
        model_id="m",
        size="1536x1024",
        resolution="2K",
        n=2,
        params={"quality": "high", "size_hint": "x"},
    )
    ratio = normalize_request(request, XAI, FORM["xai"])
    assert (ratio.size, ratio.aspect_ratio, ratio.resolution) == (None, "3:2", "1K")
    sized = normalize_request(request, GPT_IMAGE_1, FORM["openai"])
    assert (sized.size, sized.aspect_ratio, sized.resolution) == ("1536x1024", None, None)
    assert sized.params == request.params and sized.n == 2 and sized.prompt == "p"


# --- properties -----------------------------------------------------------------------------------

ratio_sides = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 16, 19.5, 20, 21])
ratios = st.builds(lambda a, b: f"{a:g}:{b:g}", ratio_sides, ratio_sides)
tiers = st.sampled_from(["0.5K", "1K", "2K", "4K", "0.25", "1", "2", "auto", "1k", "2k"])
sides = st.integers(min_value=64, max_value=4096)
sizes = st.builds(lambda w, h: f"{w}x{h}", sides, sides)


def _distinct(parse):
    def keep(values):
        seen, out = set(), []
        for value in values:
            if parse(value) not in seen:
                seen.add(parse(value))
                out.append(value)
        return out

    return keep


ratio_tables = st.fixed_dictionaries(
    {
        "aspect_ratios": st.lists(ratios, min_size=1, max_size=8).map(_distinct(parse_ratio)),
        "resolutions": st.lists(
            st.sampled_from(["0.5K", "1K", "2K", "4K"]), min_size=1, max_size=4, unique=True
        ),
    },
    optional={"short_side_multiple": st.sampled_from([1, 2, 4])},
)
size_tables = st.fixed_dictionaries(
    {"sizes": st.lists(sizes, min_size=1, max_size=6).map(_distinct(parse_pixels))}
)
free_tables = st.fixed_dictionaries(
    {"size_multiple": st.sampled_from([1, 8, 16, 64])},
    optional={
        "min_px": st.sampled_from([64, 256]),
        "max_px": st.sampled_from([2048, 4096]),
        "max_pixels": st.sampled_from([2**20, 2**22, 3840 * 2160]),
        "max_ratio": st.sampled_from([2.0, 3.0, 4.0]),
    },
)
tables = st.one_of(
    ratio_tables.map(lambda t: (t, "xai")),
    size_tables.map(lambda t: (t, "openai")),
    free_tables.map(lambda t: (t, "openai")),
    st.just(({}, "openai")),
    st.just(({}, "fal")),
)
requests = st.builds(
    lambda size, ar, res: ImageRequest(
        task="text-to-image", prompt="p", model_id="m", size=size, aspect_ratio=ar, resolution=res
    ),
    st.one_of(st.none(), sizes, ratios, st.just("auto")),
    st.one_of(st.none(), ratios, st.just("auto")),
    st.one_of(st.none(), tiers),
)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(table=tables, request=requests)
@example(  # found by hypothesis: min_px scaling pushed a 1:16 shape past max_pixels
    table=({"size_multiple": 1, "min_px": 256, "max_pixels": 1048576}, "openai"),
    request=ImageRequest(task="text-to-image", prompt="p", model_id="m", size="64x1025"),
)
def test_output_is_always_supported(table, request):
    caps_table, protocol = table
    caps = parse_capabilities(caps_table)
    out = normalize_request(request, caps_table, FORM[protocol])
    if caps.aspect_ratios:  # ratio form: only listed names, never a size
        assert out.size is None
        assert out.aspect_ratio is None or out.aspect_ratio in caps.aspect_ratios
        assert out.resolution is None or out.resolution in caps.resolutions
    elif caps.sizes:
        assert out.aspect_ratio is None and out.resolution is None
        assert out.size is None or out.size in caps.sizes
    elif caps.declared and out.size not in (None, "auto"):
        assert size_supported(*parse_pixels(out.size), caps)
    if protocol == "openai":
        assert out.aspect_ratio is None and out.resolution is None  # openai takes only `size`


@fast
@given(table=tables, request=requests)
@example(  # found by hypothesis: 1:19.5 at 4K with no table made a side past MAX_SIDE_PX
    table=({}, "openai"),
    request=ImageRequest(
        task="text-to-image", prompt="p", model_id="m", aspect_ratio="1:19.5", resolution="4K"
    ),
)
def test_normalization_is_idempotent(table, request):
    caps_table, protocol = table
    once = normalize_request(request, caps_table, FORM[protocol])
    assert normalize_request(once, caps_table, FORM[protocol]) == once


@fast
@given(table=ratio_tables, ratio=ratios)
def test_the_chosen_ratio_is_nearest_on_a_log_scale(table, ratio):
    chosen = normalize_request(
        ImageRequest(task="text-to-image", prompt="p", model_id="m", aspect_ratio=ratio),
        table,
        FORM["xai"],
    ).aspect_ratio
    wanted = math.log(parse_ratio(ratio))
    best = min(abs(wanted - math.log(parse_ratio(r))) for r in table["aspect_ratios"])
    assert abs(wanted - math.log(parse_ratio(chosen))) == pytest.approx(best, abs=1e-9)


@fast
@given(table=size_tables, size=sizes)
def test_the_chosen_size_has_the_nearest_shape(table, size):
    chosen = resolve_shape(size, None, None, parse_capabilities(table), FORM["openai"]).size
    w, h = parse_pixels(size)
    wanted = math.log(w / h)
    distances = [abs(wanted - math.log(a / b)) for a, b in map(parse_pixels, table["sizes"])]
    cw, ch = parse_pixels(chosen)
    assert abs(wanted - math.log(cw / ch)) == pytest.approx(min(distances), abs=1e-9)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, kwargs, value",
    [
        ("aspect_ratio", {"aspect_ratio": "16-9"}, "16-9"),
        ("aspect_ratio", {"aspect_ratio": "0:9"}, "0:9"),
        ("aspect_ratio", {"aspect_ratio": "500:1"}, "500:1"),
        ("size", {"size": "big"}, "big"),
        ("size", {"size": "0x1024"}, "0x1024"),
        ("size", {"size": "99999x1024"}, "99999x1024"),
        ("resolution", {"resolution": "3Q"}, "3Q"),
        ("resolution", {"resolution": "0K"}, "0K"),
    ],
)
def test_bad_request_values_name_the_parameter_and_value(field, kwargs, value):
    request = ImageRequest(task="text-to-image", prompt="p", model_id="m", **kwargs)
    with pytest.raises(ConfigError) as caught:
        normalize_request(request, XAI, FORM["xai"], source="challenges/x.toml")
    assert caught.value.field == field
    assert repr(value) in str(caught.value) and "challenges/x.toml" in str(caught.value)
    assert isinstance(caught.value, ArenaError)


@pytest.mark.parametrize(
    "table, key, words",
    [
        ({"aspect_ratio": ["1:1"]}, "capabilities.aspect_ratio", "unknown key"),
        ({"aspect_ratios": "16:9"}, "capabilities.aspect_ratios", "list of strings"),
        ({"aspect_ratios": ["16:9", "32:18"]}, "capabilities.aspect_ratios", "same value"),
        ({"resolutions": ["1K", "1"]}, "capabilities.resolutions", "same value"),
        ({"resolutions": ["huge"]}, "capabilities.resolutions", "'huge'"),
        ({"sizes": ["1024x1024"], "aspect_ratios": ["1:1"]}, "capabilities", "either"),
        ({"size_multiple": 0}, "capabilities.size_multiple", "at least 1"),
        ({"size_multiple": 1.5}, "capabilities.size_multiple", "must be an integer"),
        ({"min_px": 512, "max_px": 256}, "capabilities.min_px", "larger than max_px"),
    ],
)
def test_bad_capability_tables_name_the_key(table, key, words):
    with pytest.raises(ConfigError) as caught:
        parse_capabilities(table, "models.x.providers.y")
    assert caught.value.field == key and words in str(caught.value)


def test_impossible_bounds_fail_clearly_instead_of_sending_a_bad_size():
    with pytest.raises(ConfigError, match="no size near"):
        shape({"size_multiple": 1000, "max_px": 900}, "openai", size="800x800")


# --- handling table -------------------------------------------------------------------------------


def test_every_builtin_protocol_declares_how_it_handles_shape_and_n():
    for protocol in BUILTIN:
        table = handling_table(HANDLING[protocol])
        assert list(table) == list(PARAMETERS)
        assert all(h.kind in HANDLING_KINDS for h in table.values())
        for name in ("size", "aspect_ratio", "resolution", "n"):
            assert name in HANDLING[protocol], (protocol, name)


def test_handling_matches_what_normalization_sends():
    # A size-taking protocol converts ratios into `size`; a ratio-taking one converts sizes.
    assert handling_for(HANDLING["openai"], "aspect_ratio").kind == "converted"
    assert handling_for(HANDLING["openai"], "aspect_ratio").sent_as == "size"
    assert handling_for(HANDLING["xai"], "size").kind == "converted"
    assert handling_for(HANDLING["gemini"], "aspect_ratio").kind == "renamed"
    assert handling_for(HANDLING["fal"], "n").sent_as == "num_images"
    assert handling_for(HANDLING["gemini"], "n").kind == "emulated"
    assert handling_for(HANDLING["xai"], "output_format").kind == "emulated"


def test_unknown_parameters_and_protocols_pass_through():
    assert handling_for(HANDLING["openai"], "guidance_scale").kind == "passthrough"
    assert handling_for({}, "size").kind == "passthrough"  # a plugin that declares nothing

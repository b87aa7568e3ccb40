"""One request vocabulary (size, aspect_ratio, resolution) mapped to what each model supports, the Handling type adapters use to say what they do with each parameter, and the checks of a route's or a challenge's `params` table against it.

Pure: no I/O. The vocabulary:

- ``size``: ``WxH`` (exact pixels; sets shape and scale) or ``W:H`` (the same as an aspect ratio).
- ``aspect_ratio``: any ``W:H`` ratio of positive numbers (``16:9``, ``9:19.5``) or ``auto``.
- ``resolution``: a scale tier: ``0.5K``, ``1K``, ``2K``, ``4K`` (a square of 512, 1024, ... px sides), a
  megapixel tier (``0.25``, ``1``, ``4``; 1 MP = 1024 x 1024 px, so ``1`` = ``1K``), or ``auto``;
  case-insensitive.

Priority: a ``WxH`` size wins and sets both shape and scale; otherwise the shape comes from a ``W:H``
size or the aspect ratio, and the scale from the resolution.

A capability table (``Route.capabilities`` in arena.toml) says what a model takes; requested values map
to the nearest supported one. Ratios are compared on a log scale (so 2:1 and 1:2 are equally far from
1:1, and 7:1 is nearer 8:1 than 4:1), scales by log pixel area. The README's "Request parameters" section has the schema.
A route that declares no table gets its adapter's ``default_capabilities``; the functions here take
whichever table applies, and the adapter's ``shape_form`` for when the table does not say.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

from arena.errors import ConfigError, expected

AUTO = "auto"
KILO_PX = 1024  # "1K" is a 1024 px square; a megapixel tier counts 1024 x 1024 px as 1 MP
MAX_SIDE_PX = 16384  # beyond any model served today; catches typos such as "20488x2048"
STANDARD_TIERS = ("0.5K", "1K", "2K", "4K")  # names used when a model declares no resolutions
DEFAULT_AREA_PX = KILO_PX * KILO_PX  # the scale when only a shape is asked of a size-taking model
DEFAULT_SIZE_MULTIPLE = 16  # sides of a size converted for a model with no table (most want /16)

SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
RATIO_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
K_TIER_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*k\s*$", re.IGNORECASE)
MP_TIER_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:mp)?\s*$", re.IGNORECASE)

SHAPE_FORMS = ("size", "ratio")  # how a protocol takes a shape: WxH pixels, or aspect_ratio + tier
# Ratios most image APIs accept; a WxH size read for a ratio-taking API becomes the nearest of them.
COMMON_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "9:21")
COMMON_RATIOS += ("1:2", "2:1")
PROTOCOLS_SHAPE_NOTE = {
    "size": "sends size WxH as asked; ratios and tiers become WxH (sides / 16)",
    "ratio": "sends aspect_ratio and resolution as asked; a WxH size becomes ratio + tier",
}

CAPABILITY_KEYS = {
    "aspect_ratios": 'shapes the model takes by name, e.g. ["1:1", "16:9", "auto"]',
    "resolutions": 'scale tiers the model takes by name, e.g. ["1K", "2K"]',
    "sizes": 'exact WxH sizes the model takes, e.g. ["1024x1024", "1536x1024", "auto"]',
    "size_multiple": "computed sides are rounded to a multiple of this (default 1)",
    "short_side_multiple": "the short side is rounded to a multiple of this (default size_multiple)",
    "min_px": "free-form sizes: the smallest side",
    "max_px": "free-form sizes: the largest side",
    "max_pixels": "free-form sizes: the largest width x height",
    "max_ratio": "free-form sizes: the largest long/short side ratio, e.g. 3 for 1:3..3:1",
}
FREE_FORM_KEYS = ("min_px", "max_px", "max_pixels", "max_ratio")


@dataclass(frozen=True)
class Capabilities:
    """What one model takes, parsed from its capability table."""

    aspect_ratios: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    size_multiple: int = 1
    short_side_multiple: int | None = None
    min_px: int | None = None
    max_px: int | None = None
    max_pixels: int | None = None
    max_ratio: float | None = None

    def form(self, default: str) -> str:
        """ "size" if the model takes WxH, "ratio" if it takes aspect_ratio + resolution.

        A table that says neither leaves it to `default`, the protocol's own shape form.
        """
        if self.sizes:
            return "size"
        if self.aspect_ratios or self.resolutions:
            return "ratio"
        if any(getattr(self, key) is not None for key in FREE_FORM_KEYS):
            return "size"
        return default

    @property
    def declared(self) -> bool:
        return self != Capabilities()


@dataclass(frozen=True)
class Shape:
    """The normalized shape fields of a request, plus the pixel size they should produce when known."""

    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    width_px: int | None = None
    height_px: int | None = None


# --- parsing the vocabulary ---------------------------------------------------------------------


def parse_ratio(text: str, field: str = "aspect_ratio", source: str = "request") -> float:
    """A W:H ratio as width/height; ConfigError naming the field and value when it is not one."""
    match = RATIO_RE.match(str(text))
    if not match:
        raise ConfigError(source, field, f"{text!r} is not a ratio W:H (e.g. 16:9 or 9:19.5)")
    width, height = float(match.group(1)), float(match.group(2))
    if width <= 0 or height <= 0:
        raise ConfigError(source, field, f"{text!r}: both sides of a ratio must be positive")
    ratio = width / height
    if not 1 / 100 <= ratio <= 100:
        raise ConfigError(source, field, f"{text!r} is outside 1:100..100:1")
    return ratio


def parse_pixels(text: str, field: str = "size", source: str = "request") -> tuple[int, int]:
    """A WxH size in pixels; ConfigError naming the field and value when it is not one."""
    match = SIZE_RE.match(str(text))
    if not match:
        raise ConfigError(source, field, f"{text!r} is not a size WxH (e.g. 1024x1024) or W:H")
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_SIDE_PX and 1 <= height <= MAX_SIDE_PX):
        raise ConfigError(source, field, f"{text!r}: each side must be 1..{MAX_SIDE_PX} px")
    return width, height


def tier_area_px(text: str, field: str = "resolution", source: str = "request") -> float:
    """Pixel area of a resolution tier: "2K" is 2048 x 2048, "0.25" (MP) is 512 x 512."""
    text = str(text)
    if match := K_TIER_RE.match(text):
        side = float(match.group(1)) * KILO_PX
        area = side * side
    elif match := MP_TIER_RE.match(text):
        area = float(match.group(1)) * KILO_PX * KILO_PX
    else:
        raise ConfigError(
            source,
            field,
            f"{text!r} is not a resolution (0.5K, 1K, 2K, 4K, megapixels such as 1, or auto)",
        )
    if not 0 < area <= MAX_SIDE_PX * MAX_SIDE_PX:
        raise ConfigError(source, field, f"{text!r} is outside 0..{MAX_SIDE_PX // KILO_PX}K")
    return area


def is_auto(value: str | None) -> bool:
    return isinstance(value, str) and value.strip().lower() == AUTO


def ratio_name(width: float, height: float) -> str:
    """The reduced W:H name of a pixel size (1536x1024 -> 3:2)."""
    fraction = Fraction(int(width), int(height))
    return f"{fraction.numerator}:{fraction.denominator}"


# --- capability tables ----------------------------------------------------------------------------


def parse_capabilities(table: dict | None, source: str = "capabilities") -> Capabilities:
    """Validate a capability table; every problem names the key and the value."""
    table = table or {}
    if not isinstance(table, dict):
        raise ConfigError(source, "capabilities", "must be a table")
    for key in table:
        if key not in CAPABILITY_KEYS:
            raise ConfigError(
                source,
                f"capabilities.{key}",
                f"unknown key (known: {', '.join(sorted(CAPABILITY_KEYS))})",
            )

    def names(key: str, parse) -> tuple[str, ...]:
        values = table.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(
                source, f"capabilities.{key}", f"must be a list of strings, got {values!r}"
            )
        seen: dict[float, str] = {}
        for value in values:
            if is_auto(value):
                continue
            measure = parse(value, f"capabilities.{key}", source)
            if measure in seen:  # two names for one value would make the mapping depend on order
                raise ConfigError(
                    source,
                    f"capabilities.{key}",
                    f"{value!r} and {seen[measure]!r} are the same value",
                )
            seen[measure] = value
        return tuple(values)

    def number(key: str, kind: type, minimum: float):
        value = table.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or (kind is int and value != int(value))
        ):
            raise ConfigError(
                source, f"capabilities.{key}", f"must be {expected(kind)}, got {value!r}"
            )
        if value < minimum:
            raise ConfigError(
                source, f"capabilities.{key}", f"must be at least {minimum:g}, got {value!r}"
            )
        return kind(value)

    caps = Capabilities(
        aspect_ratios=names("aspect_ratios", parse_ratio),
        resolutions=names("resolutions", tier_area_px),
        sizes=names("sizes", parse_pixels),
        size_multiple=number("size_multiple", int, 1) or 1,
        short_side_multiple=number("short_side_multiple", int, 1),
        min_px=number("min_px", int, 1),
        max_px=number("max_px", int, 1),
        max_pixels=number("max_pixels", int, 1),
        max_ratio=number("max_ratio", float, 1),
    )
    if caps.sizes and (caps.aspect_ratios or caps.resolutions):
        raise ConfigError(
            source, "capabilities", "declare either sizes or aspect_ratios/resolutions, not both"
        )
    if caps.min_px and caps.max_px and caps.min_px > caps.max_px:
        raise ConfigError(source, "capabilities.min_px", "is larger than max_px")
    return caps


# --- nearest supported values ---------------------------------------------------------------------


def nearest_ratio(ratio: float, names: tuple[str, ...]) -> str:
    """The supported ratio nearest on a log scale; a tie goes to the squarer shape."""
    candidates = [n for n in names if not is_auto(n)]
    return min(
        candidates,
        key=lambda n: (
            round(abs(math.log(ratio) - math.log(parse_ratio(n))), 12),
            abs(math.log(parse_ratio(n))),
        ),
    )


def nearest_tier(area_px: float, names: tuple[str, ...]) -> str:
    """The supported tier nearest by log area; a tie goes to the larger (never quietly downgrade)."""
    candidates = [n for n in names if not is_auto(n)]
    return min(
        candidates,
        key=lambda n: (
            round(abs(math.log(area_px) - math.log(tier_area_px(n))), 12),
            -tier_area_px(n),
        ),
    )


def nearest_size(ratio: float, area_px: float, names: tuple[str, ...]) -> str:
    """The listed WxH nearest in shape (log ratio) first, then in scale (log area)."""
    candidates = [n for n in names if not is_auto(n)]

    def distance(name: str):
        w, h = parse_pixels(name)
        return (
            round(abs(math.log(ratio) - math.log(w / h)), 12),
            round(abs(math.log(area_px) - math.log(w * h)), 12),
            -w * h,
        )

    return min(candidates, key=distance)


def round_to_multiple(value: float, multiple: int) -> int:
    return max(multiple, math.floor(value / multiple + 0.5) * multiple)


def _multiples(
    width: float, height: float, caps: Capabilities, default_multiple: int
) -> tuple[int, int]:
    """(width multiple, height multiple): the short side may have its own multiple."""
    long_m = caps.size_multiple if caps.size_multiple > 1 else default_multiple
    short_m = caps.short_side_multiple or long_m
    return (long_m, short_m) if width >= height else (short_m, long_m)


def tier_dimensions(ratio: float, area_px: float, caps: Capabilities) -> tuple[int, int]:
    """The pixels a shape and a scale tier produce: the tier's area at the ratio, sides rounded.

    This reproduces the tables xAI publishes (16:9 at 1K is 1365x768, 9:19.5 at 2K is 1392x3015)
    with short_side_multiple = 2: the long side to the nearest pixel, the short side to an even one.
    """
    width, height = math.sqrt(area_px * ratio), math.sqrt(area_px / ratio)
    m_w, m_h = _multiples(width, height, caps, 1)
    return round_to_multiple(width, m_w), round_to_multiple(height, m_h)


def size_supported(width: int, height: int, caps: Capabilities, default_multiple: int = 1) -> bool:
    """Whether a free-form WxH meets the table's multiples and bounds."""
    m_w, m_h = _multiples(width, height, caps, default_multiple)
    short, long = min(width, height), max(width, height)
    return (
        width % m_w == 0
        and height % m_h == 0
        and (caps.min_px is None or short >= caps.min_px)
        and (caps.max_px is None or long <= caps.max_px)
        and (caps.max_pixels is None or width * height <= caps.max_pixels)
        and (caps.max_ratio is None or long / short <= caps.max_ratio + 1e-9)
    )


def fit_size(
    width: float,
    height: float,
    caps: Capabilities,
    default_multiple: int = 1,
    source: str = "request",
) -> tuple[int, int]:
    """The supported free-form size nearest a target: clamp shape and scale into bounds, then round."""
    if not caps.max_px or caps.max_px > MAX_SIDE_PX:  # what arena itself would refuse to send
        caps = replace(caps, max_px=MAX_SIDE_PX)
    ratio, area = width / height, width * height
    if caps.max_ratio:
        ratio = min(max(ratio, 1 / caps.max_ratio), caps.max_ratio)
    if caps.min_px and caps.max_px:  # no shape wider than max_px:min_px fits both bounds
        widest = caps.max_px / caps.min_px
        ratio = min(max(ratio, 1 / widest), widest)
    if caps.min_px and caps.max_pixels:  # nor one wider than max_pixels / min_px² in area
        widest = caps.max_pixels / caps.min_px**2
        ratio = min(max(ratio, 1 / widest), widest)
    if caps.max_pixels:
        area = min(area, caps.max_pixels)
    width, height = math.sqrt(area * ratio), math.sqrt(area / ratio)
    if caps.max_px and max(width, height) > caps.max_px:
        scale = caps.max_px / max(width, height)
        width, height = width * scale, height * scale
    if caps.min_px and min(width, height) < caps.min_px:
        scale = caps.min_px / min(width, height)
        width, height = width * scale, height * scale
    m_w, m_h = _multiples(width, height, caps, default_multiple)
    # Rounding can step just outside a bound; look one or two multiples either way for a size inside.
    base_w, base_h = math.floor(width / m_w), math.floor(height / m_h)
    candidates = [
        (w * m_w, h * m_h)
        for w in range(max(1, base_w - 2), base_w + 4)
        for h in range(max(1, base_h - 2), base_h + 4)
        if size_supported(w * m_w, h * m_h, caps, default_multiple)
    ]
    if not candidates:
        raise ConfigError(
            source,
            "capabilities",
            f"no size near {width:.0f}x{height:.0f} meets the table's bounds",
        )
    # Nearest side by side on a log scale: plain rounding whenever that lands inside the bounds.
    return min(
        candidates,
        key=lambda c: round(abs(math.log(c[0] / width)) + abs(math.log(c[1] / height)), 12),
    )


# --- resolving a request --------------------------------------------------------------------------


def _requested(size, aspect_ratio, resolution, source):
    """(exact (w, h) or None, ratio or None or AUTO, area or None or AUTO) from the request's fields."""
    exact, ratio, area = None, None, None
    if resolution is not None:
        area = AUTO if is_auto(resolution) else tier_area_px(resolution, "resolution", source)
    if size is not None and is_auto(size):
        return None, AUTO, AUTO
    if size is not None and RATIO_RE.match(str(size)):
        ratio = parse_ratio(size, "size", source)  # a W:H size is an aspect ratio
    elif size is not None:
        exact = parse_pixels(size, "size", source)
        return exact, exact[0] / exact[1], float(exact[0] * exact[1])
    elif aspect_ratio is not None:
        ratio = AUTO if is_auto(aspect_ratio) else parse_ratio(aspect_ratio, "aspect_ratio", source)
    return exact, ratio, area


def resolve_shape(
    size: str | None,
    aspect_ratio: str | None,
    resolution: str | None,
    caps: Capabilities,
    shape_form: str,
    source: str = "request",
) -> Shape:
    """Map the request's shape fields onto what the model takes (see the module docstring)."""
    exact, ratio, area = _requested(size, aspect_ratio, resolution, source)
    if exact is None and ratio is None and area is None:
        return Shape()  # nothing asked: the provider's default
    if caps.form(shape_form) == "size":
        return _resolve_size_form(size, exact, ratio, area, caps, source)
    return _resolve_ratio_form(size, aspect_ratio, resolution, exact, ratio, area, caps)


def _resolve_size_form(size, exact, ratio, area, caps: Capabilities, source: str) -> Shape:
    if ratio is AUTO and area in (AUTO, None) or ratio is None and area is AUTO:
        return Shape(size=AUTO) if not caps.sizes or AUTO in caps.sizes else Shape()
    ratio = 1.0 if ratio in (None, AUTO) else ratio  # a scale with no shape: square
    area = DEFAULT_AREA_PX if area in (None, AUTO) else area
    if caps.sizes:
        name = nearest_size(ratio, area, caps.sizes)
        width, height = parse_pixels(name)
        return Shape(size=name, width_px=width, height_px=height)
    if exact is not None and not caps.declared:  # no table: send as asked
        return Shape(size=f"{exact[0]}x{exact[1]}", width_px=exact[0], height_px=exact[1])
    target_w, target_h = exact or (math.sqrt(area * ratio), math.sqrt(area / ratio))
    default_multiple = 1 if caps.declared else DEFAULT_SIZE_MULTIPLE
    width, height = fit_size(target_w, target_h, caps, default_multiple, source)
    return Shape(size=f"{width}x{height}", width_px=width, height_px=height)


def _resolve_ratio_form(size, aspect_ratio, resolution, exact, ratio, area, caps) -> Shape:
    # A declared table that lists no ratios (or no tiers) means the model takes none: drop the field.
    if ratio is None or (caps.declared and not caps.aspect_ratios):
        ratio_out = None
    elif ratio is AUTO:
        ratio_out = AUTO if not caps.aspect_ratios or AUTO in caps.aspect_ratios else None
    elif caps.aspect_ratios:
        ratio_out = nearest_ratio(ratio, caps.aspect_ratios)
    elif exact is not None:
        ratio_out = ratio_name(*exact)
    else:  # no table: the ratio as asked, from aspect_ratio or a W:H size
        ratio_out = (size if size is not None else aspect_ratio).strip()
    if area is None or (caps.declared and not caps.resolutions):
        tier_out = None
    elif area is AUTO:
        tier_out = AUTO if not caps.resolutions or AUTO in caps.resolutions else None
    elif caps.resolutions:
        tier_out = nearest_tier(area, caps.resolutions)
    elif exact is not None:
        tier_out = nearest_tier(area, STANDARD_TIERS)
    else:
        tier_out = resolution.strip()
    width = height = None
    if ratio_out not in (None, AUTO) and tier_out not in (None, AUTO):
        width, height = tier_dimensions(parse_ratio(ratio_out), tier_area_px(tier_out), caps)
    return Shape(aspect_ratio=ratio_out, resolution=tier_out, width_px=width, height_px=height)


def normalize_request(request, capabilities: dict | None, shape_form: str, source: str = "request"):
    """The request with size / aspect_ratio / resolution mapped to what the route's model takes.

    `capabilities` is the route's table (or its adapter's default one); `shape_form` is the
    adapter's, deciding when the table does not.

    A model that takes sizes gets `size` set (aspect_ratio and resolution cleared); a model that
    takes ratios gets `aspect_ratio` and `resolution` set (size cleared). Other fields, and every
    parameter in request.params, pass through unchanged. Idempotent.
    """
    caps = parse_capabilities(capabilities, source)
    shape = resolve_shape(
        request.size, request.aspect_ratio, request.resolution, caps, shape_form, source
    )
    return replace(
        request, size=shape.size, aspect_ratio=shape.aspect_ratio, resolution=shape.resolution
    )


# --- a request's shape as asked ---------------------------------------------------------------
# What an adapter reads from a request to build its body. Normalization (above) has usually mapped
# the fields to the model's table already; these read whatever is left, in the spelling asked.


def requested_pixels(size: str | None) -> tuple[int, int] | None:
    """(width, height) when `size` names pixels ("1536x1024"), else None."""
    match = SIZE_RE.match(size or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def requested_ratio(size: str | None, aspect_ratio: str | None) -> str | None:
    """The shape as "W:H": a W:H size, else aspect_ratio, else the common ratio nearest a WxH size."""
    if size is not None and RATIO_RE.match(size):
        return size.strip()
    if aspect_ratio:
        return aspect_ratio
    pixels = requested_pixels(size)
    if pixels is None:
        return None
    return nearest_ratio(pixels[0] / pixels[1], COMMON_RATIOS)


def requested_tier(size: str | None, resolution: str | None) -> str | None:
    """The scale tier ("1K", "2K", ...): the resolution asked for, else the one nearest a WxH size."""
    if resolution and not is_auto(resolution):
        return resolution.upper()
    pixels = requested_pixels(size)
    if pixels is None:
        return None
    return nearest_tier(float(pixels[0] * pixels[1]), STANDARD_TIERS)


def requested_dimensions(
    size: str | None, aspect_ratio: str | None, resolution: str | None, multiple_px: int = 16
) -> tuple[int, int] | None:
    """(width, height): a WxH size, else the ratio at the tier's area (1K when none), sides rounded."""
    pixels = requested_pixels(size)
    if pixels:
        return pixels
    ratio = requested_ratio(size, aspect_ratio)
    if ratio is None or is_auto(ratio):
        return None
    tier = requested_tier(size, resolution) or "1K"
    caps = Capabilities(size_multiple=multiple_px)
    return tier_dimensions(parse_ratio(ratio), tier_area_px(tier), caps)


# --- keeping a request within what a protocol takes -------------------------------------------
# The last guard, in an adapter's body builder: whatever reaches it (a route's table, a caller that
# never normalized), a value the protocol cannot take is never sent. A value it takes passes as is.


def snap_ratio(
    name: str | None,
    fallback: tuple[str, ...],
    accepted: tuple[str, ...] = (),
    bounds: tuple[float, float] | None = None,
) -> str | None:
    """`name` when the protocol takes it (one of `accepted` by value, in its spelling, or within
    `bounds`), else the nearest of `fallback`; "auto" only when one of them lists it."""
    if name is None:
        return None
    if is_auto(name):
        return name if any(is_auto(a) for a in (*accepted, *fallback)) else None
    value = parse_ratio(name)
    same = [a for a in accepted if not is_auto(a) and abs(value - parse_ratio(a)) < 1e-9]
    if same:
        return same[0]  # in the protocol's spelling: "2:2" goes as "1:1"
    if bounds is not None and bounds[0] - 1e-9 <= value <= bounds[1] + 1e-9:
        return name
    return nearest_ratio(value, fallback)


def snap_tier(name: str | None, accepted: tuple[str, ...]) -> str | None:
    """The tier of `accepted` equal to `name` (in the protocol's spelling), else the nearest one."""
    if name is None:
        return None
    if is_auto(name):
        return next((a for a in accepted if is_auto(a)), None)
    area = tier_area_px(name)
    same = [a for a in accepted if not is_auto(a) and abs(tier_area_px(a) - area) < 1e-6]
    return same[0] if same else nearest_tier(area, accepted)


# --- how an adapter handles each parameter --------------------------------------------------------
# Each adapter class declares its table (Adapter.parameters); these are its building blocks.

HANDLING_KINDS = ("passthrough", "renamed", "converted", "emulated", "unsupported")


@dataclass(frozen=True)
class Handling:
    """What happens to one request parameter on its way to one protocol."""

    kind: str  # one of HANDLING_KINDS
    sent_as: str = ""  # the provider's field, when renamed or converted
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in HANDLING_KINDS:
            raise ValueError(f"handling kind {self.kind!r} is not one of {HANDLING_KINDS}")


# The shape parameters of a protocol that takes WxH, and of one that takes aspect_ratio + tier.
SHAPE_AS_SIZE = {
    "size": Handling(
        "converted", "size", "nearest supported WxH; a W:H size becomes WxH at the resolution"
    ),
    "aspect_ratio": Handling("converted", "size", "with resolution, to the nearest supported WxH"),
    "resolution": Handling("converted", "size", "with aspect_ratio, to the nearest supported WxH"),
}
SHAPE_AS_RATIO = {
    "size": Handling("converted", "aspect_ratio + resolution", "nearest supported ratio and tier"),
    "aspect_ratio": Handling("passthrough", "aspect_ratio", "nearest supported ratio"),
    "resolution": Handling(
        "passthrough", "resolution", "nearest supported tier, as the table spells it"
    ),
}
# Output parameters a protocol cannot take, made to hold by arena's emulation wrapper.
OUTPUT_EMULATED = {
    "output_format": Handling("emulated", "", "the returned image is converted to the format"),
    "output_compression": Handling(
        "emulated", "", "applied when arena converts the returned image"
    ),
    "response_format": Handling(
        "emulated", "", "arena downloads URLs at once; bytes are kept either way"
    ),
}
PARAMETERS = (
    "size",
    "aspect_ratio",
    "resolution",
    "n",
    "output_format",
    "output_compression",
    "response_format",
    "stream",
    "partial_images",
    "images",
)
PASSTHROUGH = Handling("passthrough", note="sent as given")
# A protocol that answers in one reply: it has no event stream to ask for (a `params` table naming
# these for one of its routes is refused, instead of sending a field the API ignores or rejects).
NO_STREAMING = {
    "stream": Handling("unsupported", "", "one reply, no event stream"),
    "partial_images": Handling("unsupported", "", "one reply, no event stream"),
}


def handling_for(parameters: dict[str, Handling], parameter: str) -> Handling:
    """How an adapter's table handles a parameter; parameters it does not list pass through."""
    return parameters.get(parameter, PASSTHROUGH)


def handling_table(parameters: dict[str, Handling]) -> dict[str, Handling]:
    """Every vocabulary parameter's handling in an adapter's table, in PARAMETERS order."""
    return {name: handling_for(parameters, name) for name in PARAMETERS}


# --- a `params` table (a route's or a challenge's) ------------------------------------------------
# Extra request parameters pass through to the provider (quality, seed, guidance_scale, ...); these
# checks catch what would be a mistake: a field arena sets itself, a typo of a vocabulary name, a
# parameter the route's protocol declares unsupported, a value no API takes, a key in a file.

RESERVED_PARAMS = {
    "prompt": "the prompt is the challenge's `prompt`",
    "model": "the model is the route's `model_id`",
    "model_id": "the model is the route's `model_id`",
    "size": "set `size` on the challenge: it is normalized to each model's table",
    "aspect_ratio": "set `aspect_ratio` on the challenge: it is normalized to each model's table",
    "resolution": "set `resolution` on the challenge: it is normalized to each model's table",
    "images": "input images are the challenge's `source_images`",
    "n": "arena asks one image per request; `samples` sets how many per challenge",
}
# A name with one of these words is a credential: keys come only from the environment.
SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "authorization", "auth"}
SECRET_WORDS |= {"credential", "credentials", "bearer"}
OUTPUT_FORMATS = ("png", "jpeg", "jpg", "webp")  # what arena can also convert to (emulation)
RESPONSE_FORMATS = ("url", "b64_json")
MAX_PARTIAL_IMAGES = 3  # OpenAI's limit


def _finite_json(value, source, field, error) -> None:
    """Values the request body can carry as JSON: no dates, no NaN or infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        raise error(source, field, f"must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite_json(item, source, f"{field}.{key}", error)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _finite_json(item, source, f"{field}[{index}]", error)
    elif not isinstance(value, str | int | float | bool):
        raise error(
            source,
            field,
            f"must be a string, number, boolean, array or table, got {type(value).__name__}",
        )


def _check_value(name: str, value, source, field, error) -> None:
    """The vocabulary parameters' values, where a wrong one would only fail at the provider."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if name == "stream" and not isinstance(value, bool):
        raise error(source, field, f"must be true or false, got {value!r}")
    if name == "partial_images" and not (is_int and 0 <= value <= MAX_PARTIAL_IMAGES):
        raise error(
            source, field, f"must be an integer from 0 to {MAX_PARTIAL_IMAGES}, got {value!r}"
        )
    if name == "output_compression" and not (is_int and 0 <= value <= 100):
        raise error(source, field, f"must be an integer from 0 to 100, got {value!r}")
    if name == "output_format" and str(value).lower() not in OUTPUT_FORMATS:
        raise error(source, field, f"{value!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    if name == "response_format" and value not in RESPONSE_FORMATS:
        raise error(source, field, f"{value!r} is not one of {', '.join(RESPONSE_FORMATS)}")
    _finite_json(value, source, field, error)


def check_params(params, source: str, where: str = "params", error=ConfigError) -> dict:
    """A `params` table checked on its own (no protocol yet); returns it as a plain dict.

    `error` is the exception to raise (ConfigError for arena.toml, ChallengeError for a challenge).
    """
    if not isinstance(params, dict):
        raise error(source, where, 'must be a table, e.g. { quality = "high" }')
    known = tuple(PARAMETERS)
    for name, value in params.items():
        field = f"{where}.{name}"
        if name in RESERVED_PARAMS:
            raise error(source, field, f"is not a request parameter: {RESERVED_PARAMS[name]}")
        if SECRET_WORDS & set(re.split(r"[^a-z0-9]+", name.lower())):
            raise error(
                source,
                field,
                "looks like a credential: keys come only from the environment (api_key_env)",
            )
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
            if close:
                raise error(
                    source, field, f"unknown parameter {name!r} (did you mean {close[0]!r}?)"
                )
        _check_value(name, value, source, field, error)
    return dict(params)


def check_params_for(
    params: Mapping,
    parameters: Mapping[str, Handling],
    protocol: str,
    source: str,
    where: str = "params",
    error=ConfigError,
    target: str = "",
) -> None:
    """Every parameter of a (checked) `params` table is one the protocol's handling table allows."""
    for name in params:
        handling = handling_for(dict(parameters), name)
        if handling.kind == "unsupported":
            on = f"{target} (protocol {protocol})" if target else f"protocol {protocol}"
            note = f": {handling.note}" if handling.note else ""
            raise error(source, f"{where}.{name}", f"not supported on {on}{note}")


def merge_params(route_params: Mapping, challenge_params: Mapping) -> dict:
    """A request's params: the route's, then the challenge's over them.

    The challenge wins because it is the one request every model is asked: a route's params adapt
    a provider (its own knobs, a default quality), and must not quietly change the task for one model.
    """
    return {**route_params, **challenge_params}

"""Load and validate challenge definitions: one TOML file per named challenge in challenges/."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from arena import params
from arena.errors import ChallengeError, ConfigError, ImageError
from arena.images import MAX_BYTES, MAX_PIXELS, inspect_image
from arena.params import check_params, check_params_for

TASKS = ("text-to-image", "edit")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # the store's challenge columns take 64
MAX_CATEGORY = 64  # the store's category columns (arena/store/tables.py; a test keeps them equal)
# A source image is sent to every edit model: it must decode, within the same limits arena holds a
# model's output to (arena.images: 64 MiB, 40 MP, 16..16384 px a side).
SOURCE_MAX_BYTES = MAX_BYTES
SOURCE_MAX_PIXELS = MAX_PIXELS
SIZE_RE = re.compile(r"^\d{2,5}[x:]\d{2,5}$")
RATIO_RE = re.compile(r"^\d+(\.\d+)?:\d+(\.\d+)?$")
KNOWN_FIELDS = {
    "slug",
    "title",
    "kind",
    "prompt",
    "prompt_format",
    "source_images",
    "category",
    "size",
    "aspect_ratio",
    "resolution",
    "notes",
    "attribution",
    "params",
}


@dataclass(frozen=True)
class Challenge:
    """A named prompt; for an edit, with the source image(s) it applies to."""

    slug: str
    title: str
    kind: str  # "text-to-image" or "edit"
    prompt: str  # sent verbatim; for prompt_format "json", the JSON text exactly as written
    category: str
    path: Path
    prompt_format: str = "text"  # "text" or "json"
    source_images: tuple[Path, ...] = ()
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    notes: str = ""
    attribution: str = ""
    params: dict = field(default_factory=dict)  # extra request parameters, over each route's own
    extra: dict = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.kind


def _require_str(data: dict, key: str, path: Path, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ChallengeError(path, key, "missing (required)")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ChallengeError(path, key, f"must be a non-empty string, got {value!r}")
    return value


def parse_challenge(data: dict, path: Path) -> Challenge:
    """Validate one challenge's TOML table; every problem names the file and the field."""
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise ChallengeError(
            path, unknown[0], f"unknown field (known: {', '.join(sorted(KNOWN_FIELDS))})"
        )
    slug = _require_str(data, "slug", path)
    if not SLUG_RE.match(slug):
        raise ChallengeError(path, "slug", f"{slug!r} must be lowercase letters, digits and dashes")
    if slug != path.stem:
        raise ChallengeError(path, "slug", f"{slug!r} must equal the file name {path.stem!r}")
    kind = _require_str(data, "kind", path)
    if kind not in TASKS:
        raise ChallengeError(path, "kind", f"{kind!r} is not one of {', '.join(TASKS)}")
    prompt = _require_str(data, "prompt", path)
    prompt_format = data.get("prompt_format", "text")
    if prompt_format not in ("text", "json"):
        raise ChallengeError(path, "prompt_format", f"{prompt_format!r} is not 'text' or 'json'")
    if prompt_format == "json":
        try:
            parsed = json.loads(prompt)
        except json.JSONDecodeError as exc:
            raise ChallengeError(
                path, "prompt", f"prompt_format is json but the prompt is not JSON: {exc}"
            ) from None
        if not isinstance(parsed, dict):
            raise ChallengeError(path, "prompt", "a structured JSON prompt must be a JSON object")
    sources_raw = data.get("source_images", [])
    if not isinstance(sources_raw, list) or not all(isinstance(s, str) and s for s in sources_raw):
        raise ChallengeError(path, "source_images", "must be a list of file names")
    if kind == "edit" and not sources_raw:
        raise ChallengeError(path, "source_images", "an edit needs at least one source image")
    if kind == "text-to-image" and sources_raw:
        raise ChallengeError(
            path, "source_images", "a text-to-image challenge takes no source image"
        )
    sources = []
    for name in sources_raw:
        source = (path.parent / name).resolve()
        if path.parent.resolve() not in source.parents:
            raise ChallengeError(path, "source_images", f"{name!r} must be inside {path.parent}")
        if not source.is_file():
            raise ChallengeError(path, "source_images", f"{name!r} not found at {source}")
        _check_source(source, name, path)
        sources.append(source)
    size = _require_str(data, "size", path, required=False)
    if size is not None and not SIZE_RE.match(size):
        raise ChallengeError(path, "size", f"{size!r} is not WxH or W:H (e.g. 1024x1024)")
    if size is not None and any(int(part) == 0 for part in re.split("[x:]", size)):
        raise ChallengeError(path, "size", f"{size!r} has a zero side")
    ratio = _require_str(data, "aspect_ratio", path, required=False)
    if ratio is not None and not RATIO_RE.match(ratio):
        raise ChallengeError(path, "aspect_ratio", f"{ratio!r} is not W:H (e.g. 16:9)")
    resolution = _require_str(data, "resolution", path, required=False)
    _check_shape(size, ratio, resolution, path)
    category = _require_str(data, "category", path)
    if len(category) > MAX_CATEGORY:
        raise ChallengeError(
            path,
            "category",
            f"is {len(category)} characters; the store takes at most {MAX_CATEGORY}",
        )
    return Challenge(
        slug=slug,
        title=_require_str(data, "title", path),
        kind=kind,
        prompt=prompt,
        category=category,
        path=path,
        prompt_format=prompt_format,
        source_images=tuple(sources),
        size=size,
        aspect_ratio=ratio,
        resolution=resolution,
        notes=_require_str(data, "notes", path, required=False) or "",
        attribution=_require_str(data, "attribution", path, required=False) or "",
        params=check_params(data.get("params", {}), path, "params", ChallengeError),
    )


def check_params_on_route(challenge: Challenge, target: str, protocol: str, parameters) -> None:
    """The challenge's `params` against the handling table of one route's protocol (at planning)."""
    check_params_for(
        challenge.params, parameters, protocol, challenge.path, "params", ChallengeError, target
    )


def _check_shape(size, ratio, resolution, path: Path) -> None:
    """The shape fields in the one vocabulary (arena.params): what every route's request is built from."""
    try:
        if size is not None and not params.is_auto(size):
            if params.RATIO_RE.match(size):
                params.parse_ratio(size, "size", str(path))
            else:
                params.parse_pixels(size, "size", str(path))
        if ratio is not None and not params.is_auto(ratio):
            params.parse_ratio(ratio, "aspect_ratio", str(path))
        if resolution is not None and not params.is_auto(resolution):
            params.tier_area_px(resolution, "resolution", str(path))
    except ConfigError as exc:
        raise ChallengeError(path, exc.field, exc.problem) from None


def _check_source(source: Path, name: str, path: Path) -> None:
    """A source image decodes in full within the limits, or it is the challenge's error, not a provider's."""
    try:
        size_bytes = source.stat().st_size
        if size_bytes > SOURCE_MAX_BYTES:
            raise ImageError(f"{size_bytes} bytes, over the {SOURCE_MAX_BYTES}-byte limit")
        inspect_image(source.read_bytes(), full=True)
    except ImageError as exc:
        raise ChallengeError(path, "source_images", f"{name!r}: {exc}") from None
    except OSError as exc:
        raise ChallengeError(
            path, "source_images", f"{name!r} cannot be read: {exc.strerror}"
        ) from None


def load_challenge(path: Path) -> Challenge:
    """Read and validate one challenge file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ChallengeError(path, None, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ChallengeError(path, None, "not UTF-8 text") from None
    except OSError as exc:
        raise ChallengeError(path, None, f"cannot be read: {exc.strerror}") from None
    return parse_challenge(data, path)


def load_challenges(directory: Path, only: list[str] | None = None) -> list[Challenge]:
    """All challenges in a directory, sorted by slug; `only` keeps the named slugs (all must exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ChallengeError(directory, None, "challenge directory not found")
    challenges = [load_challenge(p) for p in sorted(directory.glob("*.toml"))]
    if not challenges:
        raise ChallengeError(directory, None, "no challenge files (*.toml) found")
    if only:
        by_slug = {c.slug: c for c in challenges}
        missing = [s for s in only if s not in by_slug]
        if missing:
            raise ChallengeError(
                directory,
                None,
                f"unknown challenge {missing[0]!r} (known: {', '.join(sorted(by_slug))})",
            )
        challenges = [by_slug[s] for s in only]
    return challenges

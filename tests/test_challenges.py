"""The shipped challenges in challenges/ and the loader's validation of malformed ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.images import make_png

from arena.challenges import Challenge, load_challenge, load_challenges
from arena.errors import ArenaError, ChallengeError

CHALLENGES_DIR = Path(__file__).resolve().parent.parent / "challenges"
IMAGES_DIR = CHALLENGES_DIR / "images"

BALD_MAN_PROMPT = (
    "Give the person a full, thick head of natural hair with realistic texture, density, "
    "and a natural hairline. Preserve facial features and lighting."
)

REQUIRED = {
    "bald-man": "edit",
    "studio-ghibli": "edit",
    "night-sky": "edit",
    "duchenne-smile": "edit",
    "outfit-transfer": "edit",
    "hair-in-the-wind": "edit",
    "california-coast-drive": "edit",
    "tv-anchor-caricature": "edit",
    "golden-hour-stroll": "text-to-image",
    "vintage-cafe-logo": "text-to-image",
    "modern-clean-menu": "text-to-image",
    "anime-scene": "text-to-image",
}

CATEGORIES = {
    "portrait-edit",
    "style-transfer",
    "scene-edit",
    "photorealism",
    "typography",
    "illustration",
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, Challenge]:
    return {c.slug: c for c in load_challenges(CHALLENGES_DIR)}


# --- the shipped challenges ----------------------------------------------------------------


def test_every_challenge_file_loads(shipped):
    files = sorted(CHALLENGES_DIR.glob("*.toml"))
    assert len(files) >= len(REQUIRED)
    for path in files:
        challenge = load_challenge(path)
        assert challenge.slug == path.stem
        assert challenge.title.strip() and challenge.category.strip()
    assert sorted(shipped) == [p.stem for p in files]


def test_required_challenges_are_shipped_with_their_kinds(shipped):
    missing = sorted(set(REQUIRED) - set(shipped))
    assert not missing, f"missing challenges: {missing}"
    assert {slug: shipped[slug].kind for slug in REQUIRED} == REQUIRED


def test_bald_man_prompt_is_the_trackers_text_exactly(shipped):
    bald = shipped["bald-man"]
    assert bald.prompt == BALD_MAN_PROMPT
    assert bald.prompt_format == "text"
    # No bald man's photo is available offline: the stand-in must be explained in the notes.
    assert "astronaut.png" in bald.notes and "bald" in bald.notes
    assert [p.name for p in bald.source_images] == ["astronaut.png"]


def test_outfit_transfer_takes_the_person_then_the_outfit(shipped):
    outfit = shipped["outfit-transfer"]
    assert [p.name for p in outfit.source_images] == ["astronaut.png", "grace_hopper.jpg"]
    assert all(p.is_file() for p in outfit.source_images)
    assert "first image" in outfit.prompt and "second image" in outfit.prompt


def test_every_other_edit_has_exactly_one_existing_source(shipped):
    for challenge in shipped.values():
        if challenge.kind == "text-to-image":
            assert challenge.source_images == ()
            continue
        assert challenge.source_images, challenge.slug
        for source in challenge.source_images:
            assert source.is_file()
            assert source.parent == IMAGES_DIR.resolve(), (challenge.slug, source)
        if challenge.slug != "outfit-transfer":
            assert len(challenge.source_images) == 1, challenge.slug


def test_duchenne_prompt_is_structured_json_kept_verbatim(shipped):
    smile = shipped["duchenne-smile"]
    assert smile.prompt_format == "json"
    parsed = json.loads(smile.prompt)
    assert isinstance(parsed, dict)
    assert {"task", "subject", "changes", "preserve", "constraints"} <= set(parsed)
    assert isinstance(parsed["changes"], dict) and isinstance(parsed["preserve"], list)
    assert "Duchenne" in parsed["changes"]["expression"]
    assert "crow's feet" in json.dumps(parsed["changes"])
    # Byte for byte the text between the ''' delimiters (TOML drops the newline after the opener),
    # not a re-serialization of the parsed object.
    raw = smile.path.read_text(encoding="utf-8")
    start = raw.index("prompt = '''\n") + len("prompt = '''\n")
    end = raw.index("'''", start)
    assert smile.prompt == raw[start:end]


def test_json_prompt_keeps_whitespace_and_key_order(tmp_path):
    text = '{"z": 1,   "a": [ 2,3 ],\n\t"m": {"k": "v"} }'
    path = _write(tmp_path, "json-order", prompt_format='"json"', prompt=f"'''{text}'''")
    assert load_challenge(path).prompt == text


def test_text_prompts_are_single_clean_lines(shipped):
    # Prompts are wrapped in the files with line-ending backslashes; a missing space before one
    # would glue two words together, a missing backslash would leave a newline in the prompt.
    for challenge in shipped.values():
        if challenge.prompt_format == "json":
            continue
        assert "\n" not in challenge.prompt, challenge.slug
        assert "  " not in challenge.prompt, challenge.slug
        assert challenge.prompt == challenge.prompt.strip(), challenge.slug
        assert len(challenge.prompt) >= 80, challenge.slug


def test_categories_are_a_short_shared_set(shipped):
    used = [c.category for c in shipped.values()]
    assert set(used) == CATEGORIES
    assert max(used.count(cat) for cat in CATEGORIES) >= 2


def test_text_to_image_shapes(shipped):
    assert shipped["modern-clean-menu"].aspect_ratio == "2:3"
    assert shipped["vintage-cafe-logo"].size == "1024x1024"
    for slug in ("golden-hour-stroll", "anime-scene"):
        assert shipped[slug].aspect_ratio or shipped[slug].size, slug


def test_specific_prompts_say_what_their_challenge_is_about(shipped):
    assert "Studio Ghibli" in shipped["studio-ghibli"].prompt
    assert "star" in shipped["night-sky"].prompt and "night" in shipped["night-sky"].prompt
    assert "wind" in shipped["hair-in-the-wind"].prompt
    coast = shipped["california-coast-drive"].prompt
    assert "convertible" in coast and "Highway 1" in coast
    assert "caricature" in shipped["tv-anchor-caricature"].prompt
    assert "news anchor" in shipped["tv-anchor-caricature"].prompt
    assert "golden hour" in shipped["golden-hour-stroll"].prompt
    assert '"The Copper Kettle Café"' in shipped["vintage-cafe-logo"].prompt
    assert "menu" in shipped["modern-clean-menu"].prompt
    assert "anime" in shipped["anime-scene"].prompt.lower()


# --- images and attribution ----------------------------------------------------------------


def _sources_md() -> str:
    return (IMAGES_DIR / "SOURCES.md").read_text(encoding="utf-8")


def _listed_files() -> set[str]:
    # The first cell of each table row, e.g. "| astronaut.png | ... |".
    return set(re.findall(r"^\|\s*([\w.-]+\.(?:png|jpe?g|webp))\s*\|", _sources_md(), re.M))


def test_every_image_is_attributed_in_sources_md():
    images = {p.name for p in IMAGES_DIR.iterdir() if p.name != "SOURCES.md"}
    assert images, "no images shipped"
    assert images <= _listed_files()
    for line in _sources_md().splitlines():
        name = next((n for n in images if line.startswith(f"| {n} |")), None)
        if name:
            assert re.search(r"public domain|CC0", line), line


def test_every_image_is_used_and_every_listed_file_exists(shipped):
    images = {p.name for p in IMAGES_DIR.iterdir() if p.name != "SOURCES.md"}
    used = {s.name for c in shipped.values() for s in c.source_images}
    assert images == used
    assert _listed_files() == images


def test_each_edit_names_its_photos_source_and_license(shipped):
    origin = {
        "astronaut.png": ("NASA", "public domain"),
        "grace_hopper.jpg": ("U.S. Navy", "public domain"),
        "chelsea.png": ("Stefan van der Walt", "CC0"),
        "rocket.jpg": ("SpaceX", "public domain"),
    }
    for challenge in shipped.values():
        if challenge.kind != "edit":
            continue
        for source in challenge.source_images:
            who, license_ = origin[source.name]
            assert who in challenge.attribution, (challenge.slug, source.name)
            assert license_ in challenge.attribution, (challenge.slug, source.name)


# --- malformed challenges --------------------------------------------------------------------

VALID_EDIT = {
    "title": '"A test edit"',
    "kind": '"edit"',
    "category": '"portrait-edit"',
    "prompt": '"Make it blue."',
    "source_images": '["images/photo.png"]',
}


def _write(
    directory: Path,
    stem: str,
    /,
    *,
    raw: str | None = None,
    drop: tuple[str, ...] = (),
    **fields: str,
) -> Path:
    """Write challenges/<slug>.toml from TOML value literals (a valid edit, then the overrides)."""
    images = directory / "images"
    images.mkdir(exist_ok=True)
    (images / "photo.png").write_bytes(make_png(32, 32))  # sources are decoded when loaded
    path = directory / f"{stem}.toml"
    if raw is None:
        values = {"slug": f'"{stem}"', **VALID_EDIT, **fields}
        raw = "".join(f"{key} = {value}\n" for key, value in values.items() if key not in drop)
    path.write_text(raw, encoding="utf-8")
    return path


def _error(path: Path) -> ChallengeError:
    with pytest.raises(ChallengeError) as info:
        load_challenge(path)
    return info.value


def _assert_names(error: ChallengeError, path: Path, field: str | None, problem: str) -> None:
    assert error.path == str(path)
    assert error.field == field
    assert problem in error.problem
    message = str(error)
    assert str(path) in message and problem in message
    if field:
        assert f": {field}: " in message


def test_the_base_of_the_malformed_cases_is_valid(tmp_path):
    challenge = load_challenge(_write(tmp_path, "base"))
    assert challenge.kind == "edit"
    assert challenge.source_images == ((tmp_path / "images" / "photo.png").resolve(),)


def test_missing_prompt(tmp_path):
    path = _write(tmp_path, "no-prompt", drop=("prompt",))
    _assert_names(_error(path), path, "prompt", "missing (required)")


def test_blank_prompt(tmp_path):
    path = _write(tmp_path, "blank-prompt", prompt='"   "')
    _assert_names(_error(path), path, "prompt", "must be a non-empty string")


def test_unknown_kind(tmp_path):
    path = _write(tmp_path, "bad-kind", kind='"image-to-video"')
    _assert_names(_error(path), path, "kind", "'image-to-video' is not one of text-to-image, edit")


def test_slug_must_match_the_file_name(tmp_path):
    path = _write(tmp_path, "file-name", slug='"other-name"')
    _assert_names(_error(path), path, "slug", "'other-name' must equal the file name 'file-name'")


def test_edit_without_sources(tmp_path):
    path = _write(tmp_path, "no-sources", drop=("source_images",))
    _assert_names(_error(path), path, "source_images", "needs at least one source image")
    path = _write(tmp_path, "empty-sources", source_images="[]")
    _assert_names(_error(path), path, "source_images", "needs at least one source image")


def test_text_to_image_with_a_source(tmp_path):
    path = _write(tmp_path, "t2i-source", kind='"text-to-image"')
    _assert_names(_error(path), path, "source_images", "takes no source image")


def test_missing_source_file(tmp_path):
    path = _write(tmp_path, "gone", source_images='["images/photo.png", "images/nope.png"]')
    _assert_names(_error(path), path, "source_images", "'images/nope.png' not found")


def test_sources_must_be_a_list_of_names(tmp_path):
    path = _write(tmp_path, "not-a-list", source_images='"images/photo.png"')
    _assert_names(_error(path), path, "source_images", "must be a list of file names")


def test_invalid_toml(tmp_path):
    path = _write(tmp_path, "broken", raw='slug = "broken"\ntitle = "unterminated\n')
    _assert_names(_error(path), path, None, "not valid TOML")


def test_bad_json_prompt(tmp_path):
    path = _write(
        tmp_path, "bad-json", prompt_format='"json"', prompt="'''{\"task\": \"smile\",}'''"
    )
    _assert_names(_error(path), path, "prompt", "prompt_format is json but the prompt is not JSON")


def test_unknown_prompt_format(tmp_path):
    path = _write(tmp_path, "yaml", prompt_format='"yaml"')
    _assert_names(_error(path), path, "prompt_format", "'yaml' is not 'text' or 'json'")


@pytest.mark.parametrize("size", ["big", "1024", "1024x1024px", "1024 x 1024", "1x1"])
def test_bad_size(tmp_path, size):
    path = _write(
        tmp_path, "bad-size", kind='"text-to-image"', drop=("source_images",), size=json.dumps(size)
    )
    _assert_names(_error(path), path, "size", f"{size!r} is not WxH or W:H")


def test_good_size_and_aspect_ratio(tmp_path):
    path = _write(
        tmp_path,
        "sizes",
        kind='"text-to-image"',
        drop=("source_images",),
        size='"1536x1024"',
        aspect_ratio='"3:2"',
    )
    challenge = load_challenge(path)
    assert (challenge.size, challenge.aspect_ratio) == ("1536x1024", "3:2")


def test_bad_aspect_ratio(tmp_path):
    path = _write(tmp_path, "bad-ratio", aspect_ratio='"wide"')
    _assert_names(_error(path), path, "aspect_ratio", "'wide' is not W:H")


def test_unknown_field(tmp_path):
    path = _write(tmp_path, "typo", negative_prompt='"blurry"')
    _assert_names(_error(path), path, "negative_prompt", "unknown field")


def test_a_bad_file_stops_the_directory_load_and_is_named(tmp_path):
    _write(tmp_path, "good")
    bad = _write(tmp_path, "zz-bad", kind='"video"')
    with pytest.raises(ChallengeError) as info:
        load_challenges(tmp_path)
    assert info.value.path == str(bad) and info.value.field == "kind"


def test_directory_without_challenges(tmp_path):
    with pytest.raises(ChallengeError, match="no challenge files"):
        load_challenges(tmp_path)
    with pytest.raises(ChallengeError, match="challenge directory not found"):
        load_challenges(tmp_path / "absent")


def test_only_selects_in_order_and_rejects_unknown_slugs():
    picked = load_challenges(CHALLENGES_DIR, only=["night-sky", "bald-man"])
    assert [c.slug for c in picked] == ["night-sky", "bald-man"]
    with pytest.raises(ChallengeError, match="unknown challenge 'no-such-challenge'"):
        load_challenges(CHALLENGES_DIR, only=["bald-man", "no-such-challenge"])


def test_non_utf8_file_is_a_challenge_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('slug = "latin1"\ntitle = "Café"\n'.encode("latin-1"))
    with pytest.raises(ArenaError) as info:
        load_challenge(path)
    assert isinstance(info.value, ChallengeError) and info.value.path == str(path)
    assert "UTF-8" in str(info.value)


def test_source_outside_challenges_dir_and_json_scalar_are_rejected(tmp_path):
    (tmp_path / "outside.png").write_bytes(b"x")
    inner = tmp_path / "set"
    inner.mkdir()
    path = inner / "escape.toml"
    path.write_text(
        'slug = "escape"\ntitle = "t"\nkind = "edit"\nprompt = "p"\ncategory = "c"\n'
        'source_images = ["../outside.png"]\n'
    )
    with pytest.raises(ChallengeError, match="source_images.*must be inside"):
        load_challenge(path)
    path = inner / "scalar.toml"
    path.write_text(
        'slug = "scalar"\ntitle = "t"\nkind = "text-to-image"\nprompt = "42"\n'
        'prompt_format = "json"\ncategory = "c"\n'
    )
    with pytest.raises(
        ChallengeError, match="prompt: a structured JSON prompt must be a JSON object"
    ):
        load_challenge(path)

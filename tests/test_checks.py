"""The checks that need no model, on the shipped source photos and the local baselines' outputs."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageFilter
from support.images import make_bomb_png, make_png

from arena import checks, stats
from arena.challenges import load_challenges
from arena.checks import CheckError
from arena.config import CheckSettings
from arena.errors import ArenaError
from arena.providers.local.models import run_model

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "challenges" / "images"
SETTINGS = CheckSettings()
CHALLENGES = {c.slug: c for c in load_challenges(ROOT / "challenges")}
EDITS = sorted(slug for slug, c in CHALLENGES.items() if c.kind == "edit")
PORTRAITS = ("astronaut.png", "grace_hopper.jpg")  # the shipped photos with a face
NO_FACE = ("chelsea.png", "rocket.jpg")  # a cat, a rocket on its pad


def _bytes(name: str) -> bytes:
    return (IMAGES / name).read_bytes()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(data: bytes, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


_FACTS: dict[str, checks.SourceFacts] = {}


def _facts(slug: str) -> checks.SourceFacts:
    if slug not in _FACTS:
        sources = [p.read_bytes() for p in CHALLENGES[slug].source_images]
        _FACTS[slug] = checks.describe_sources(sources, SETTINGS)
    return _FACTS[slug]


def _edit(model: str, slug: str) -> bytes:
    """What a local baseline returns for an edit challenge."""
    challenge = CHALLENGES[slug]
    sources = [p.read_bytes() for p in challenge.source_images]
    return run_model(model, challenge.prompt, sources, None)


def _results(data: bytes, slug: str | None = None, requested: float | None = None) -> dict:
    sources = _facts(slug) if slug and CHALLENGES[slug].source_images else None
    found = checks.check_output(data, SETTINGS, sources=sources, requested=requested)
    return {r.check: r for r in found}


# --- unchanged ----------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", EDITS)
def test_identity_edits_are_flagged_unchanged(slug):
    result = _results(_edit("identity", slug), slug)["unchanged"]
    assert result.flagged and result.value == 0
    assert result.threshold == SETTINGS.unchanged_max_distance


@pytest.mark.parametrize("model", ["cartoon", "night"])
@pytest.mark.parametrize("slug", EDITS)
def test_cartoon_and_night_edits_are_not_unchanged(slug, model):
    result = _results(_edit(model, slug), slug)["unchanged"]
    assert not result.flagged, result.detail
    # The margin the threshold was chosen for (docs/checks.md): a colour grade is 8+ bits away.
    assert result.value >= 2 * SETTINGS.unchanged_max_distance


@pytest.mark.parametrize("name", PORTRAITS + NO_FACE)
def test_a_re_encoded_or_resized_source_is_still_unchanged(name):
    facts = checks.describe_sources([_bytes(name)], SETTINGS)
    image = Image.open(IMAGES / name).convert("RGB")
    for variant in (
        _jpeg(_bytes(name), 50),
        _png(image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)),
        _png(image.resize((1024, 1024), Image.Resampling.LANCZOS)),
    ):
        result = checks.check_output(variant, SETTINGS, sources=facts)[0]
        assert result.check == "unchanged" and result.flagged, result.detail


def test_an_edit_with_two_sources_returning_the_second_is_unchanged():
    # outfit-transfer: the person (astronaut) and the outfit (Grace Hopper); the nearest counts.
    result = _results(_bytes("grace_hopper.jpg"), "outfit-transfer")["unchanged"]
    assert result.flagged and result.value == 0 and "source 2 of 2" in result.detail
    first = _results(_bytes("astronaut.png"), "outfit-transfer")["unchanged"]
    assert first.flagged and "source 1 of 2" in first.detail


def test_a_text_to_image_output_has_no_unchanged_or_faces_row():
    data = run_model("prompt-card", "a cafe logo", [], (1024, 1024))
    assert set(_results(data, "vintage-cafe-logo")) == {"blank"}


def test_a_stricter_threshold_flags_less_and_zero_still_flags_an_identical_image():
    facts = _facts("night-sky")
    strict = CheckSettings(unchanged_max_distance=0)
    assert checks.check_output(_edit("identity", "night-sky"), strict, sources=facts)[0].flagged
    night = _edit("night", "night-sky")
    loose = CheckSettings(unchanged_max_distance=64)
    assert checks.check_output(night, loose, sources=facts)[0].flagged
    assert not checks.check_output(night, strict, sources=facts)[0].flagged


# --- aspect -------------------------------------------------------------------------------------


def test_a_cropped_square_of_a_16_9_request_is_flagged_and_the_16_9_output_is_not():
    requested = checks.requested_ratio(None, "16:9")
    wide = run_model("palette", "an anime scene", [], (1360, 768))  # the local baseline's 16:9
    ok = _results(wide, requested=requested)["aspect"]
    assert not ok.flagged and ok.value < 0.005
    square = _png(Image.open(io.BytesIO(wide)).crop((296, 0, 1064, 768)))
    bad = _results(square, requested=requested)["aspect"]
    assert bad.flagged and bad.value == pytest.approx(16 / 9 - 1, rel=1e-4)
    assert "768x768" in bad.detail and "16:9" in bad.detail


def test_the_aspect_check_uses_the_returned_size_not_a_shrunk_copy():
    # A JPEG wider than the working copy: its own 2400x1350 is 16:9 exactly.
    image = Image.new("RGB", (2400, 1350), (30, 60, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    result = _results(buffer.getvalue(), requested=16 / 9)["aspect"]
    assert result.value == pytest.approx(0.0, abs=1e-9) and "2400x1350" in result.detail


def test_each_local_text_to_image_output_matches_its_challenge():
    for slug, challenge in CHALLENGES.items():
        requested = checks.requested_ratio(challenge.size, challenge.aspect_ratio)
        if challenge.kind != "text-to-image":
            continue
        from arena.params import requested_dimensions

        size = requested_dimensions(challenge.size, challenge.aspect_ratio, challenge.resolution)
        data = run_model("prompt-card", challenge.prompt, [], size)
        assert not _results(data, requested=requested)["aspect"].flagged, slug


def test_requested_ratio_reads_size_then_aspect_ratio():
    assert checks.requested_ratio("1536x1024", "1:1") == pytest.approx(1.5)  # a WxH size wins
    assert checks.requested_ratio("16:9", None) == pytest.approx(16 / 9)
    assert checks.requested_ratio(None, "9:19.5") == pytest.approx(9 / 19.5)
    assert checks.requested_ratio(None, "auto") is None
    assert checks.requested_ratio("auto", None) is None
    assert checks.requested_ratio(None, None) is None


def test_no_requested_shape_means_no_aspect_row():
    assert "aspect" not in _results(_edit("identity", "bald-man"), "bald-man")


def test_the_tolerance_sits_between_rounding_and_the_nearest_other_ratio():
    # 704x1472 is the worst a 1:2 request gets at 1K with sides rounded to 64 px (4.5% off);
    # 5:4 returned for 4:3 is the nearest two common ratios come (6.7% apart).
    tolerance = SETTINGS.aspect_tolerance
    assert not checks.check_aspect(704, 1472, 1 / 2, tolerance).flagged
    assert checks.check_aspect(1280, 1024, 4 / 3, tolerance).flagged


@given(
    st.integers(16, 8192),
    st.integers(16, 8192),
    st.floats(0.01, 100, allow_nan=False, allow_infinity=False),
)
def test_aspect_error_is_symmetric_and_zero_only_when_exact(width, height, requested):
    error = checks.aspect_error(width, height, requested)
    assert error >= 0
    assert error == pytest.approx(checks.aspect_error(height, width, 1 / requested), rel=1e-9)
    assert checks.aspect_error(width, height, width / height) == pytest.approx(0, abs=1e-12)
    # Twice as wide as asked and twice as tall as asked are equally far off.
    assert checks.aspect_error(2 * width, height, width / height) == pytest.approx(
        checks.aspect_error(width, 2 * height, width / height)
    )


# --- faces --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PORTRAITS)
def test_the_face_check_finds_the_faces_in_the_shipped_portraits(name):
    assert checks.describe_sources([_bytes(name)], SETTINGS).faces == (1,)


@pytest.mark.parametrize("name", NO_FACE)
def test_no_face_is_found_in_the_cat_or_the_rocket(name):
    assert checks.describe_sources([_bytes(name)], SETTINGS).faces == (0,)


@pytest.mark.parametrize("model", ["identity", "cartoon", "night"])
@pytest.mark.parametrize("slug", ["bald-man", "duchenne-smile", "outfit-transfer"])
def test_portrait_edits_that_keep_the_face_pass(slug, model):
    result = _results(_edit(model, slug), slug)["faces"]
    assert not result.flagged and result.value >= 1, result.detail


@pytest.mark.parametrize("slug", ["bald-man", "duchenne-smile"])
def test_a_portrait_edit_that_lost_the_face_is_flagged(slug):
    source = Image.open(CHALLENGES[slug].source_images[0]).convert("RGB")
    filled = _png(Image.new("RGB", source.size, (128, 110, 100)))
    landscape = _bytes("rocket.jpg")
    blurred = _png(source.filter(ImageFilter.GaussianBlur(40)))  # the face smeared away
    for output in (filled, landscape, blurred):
        result = _results(output, slug)["faces"]
        assert result.flagged and result.value == 0, result.detail
        assert "1 face in the source, 0 faces in the output" in result.detail


def test_an_edit_of_a_photo_without_a_face_has_no_faces_row():
    assert "faces" not in _results(_bytes("rocket.jpg"), "night-sky")
    assert "faces" not in _results(_bytes("chelsea.png"), "studio-ghibli")


def test_an_opencv_without_the_cascade_is_one_clear_error(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2.data, "haarcascades", "/nonexistent/")
    caught: list[BaseException] = []

    def count():  # a fresh thread: its own (not yet loaded) classifier
        try:
            checks.count_faces(Image.open(IMAGES / "astronaut.png"), 5)
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            caught.append(exc)

    worker = threading.Thread(target=count)
    worker.start()
    worker.join()
    assert len(caught) == 1 and isinstance(caught[0], checks.CheckSetupError)
    assert "Haar cascade" in str(caught[0]) and "/nonexistent/" in str(caught[0])


# --- blank --------------------------------------------------------------------------------------


def test_a_uniform_image_is_blank_and_the_photos_are_not():
    uniform = _results(make_png(512, 512, (40, 40, 40)))["blank"]
    assert uniform.flagged and uniform.value == 0
    for name in PORTRAITS + NO_FACE:
        result = _results(_bytes(name))["blank"]
        assert not result.flagged and result.value > 4 * SETTINGS.blank_max_stddev, name


def test_sensor_noise_on_a_flat_grey_is_blank_and_the_darkest_baseline_output_is_not():
    noise = np.random.default_rng(0).normal(128, 1.5, (256, 256)).clip(0, 255).astype(np.uint8)
    assert _results(_png(Image.fromarray(noise)))["blank"].flagged
    # night-grade of the dusk rocket: the flattest real output measured (12.5 grey levels).
    assert not _results(_edit("night", "night-sky"))["blank"].flagged


def test_a_fully_transparent_png_is_blank():
    clear = Image.new("RGBA", (128, 128), (255, 0, 0, 0))
    clear.putpixel((3, 3), (0, 0, 0, 0))
    assert _results(_png(clear))["blank"].flagged


# --- bad images ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, words",
    [
        (_bytes("astronaut.png")[:5000], "does not decode"),
        (b"<html>not an image</html>", "not an image"),
        (b"", "empty image"),
        (make_bomb_png(), "decompression bomb"),
    ],
    ids=["truncated", "html", "empty", "bomb"],
)
def test_a_bad_output_is_one_clear_check_error(data, words):
    with pytest.raises(CheckError) as info:
        checks.check_output(data, SETTINGS)
    assert isinstance(info.value, ArenaError)
    message = str(info.value)
    assert message.startswith("output: ") and words in message and "\n" not in message


# --- counting -----------------------------------------------------------------------------------


def test_count_flagged_counts_outputs_per_model_provider_and_check_in_check_order():
    frame = pd.DataFrame(
        [
            {"model": "a", "provider": "p", "check": "blank", "flagged": False},
            {"model": "a", "provider": "p", "check": "unchanged", "flagged": True},
            {"model": "a", "provider": "p", "check": "unchanged", "flagged": False},
            {"model": "a", "provider": "q", "check": "unchanged", "flagged": True},
            {"model": "b", "provider": "p", "check": "unchanged", "flagged": False},
        ]
    )
    counted = stats.count_flagged(frame)
    assert counted.to_dict(orient="records") == [
        {"model": "a", "provider": "p", "check": "unchanged", "outputs": 2, "flagged": 1},
        {"model": "a", "provider": "q", "check": "unchanged", "outputs": 1, "flagged": 1},
        {"model": "b", "provider": "p", "check": "unchanged", "outputs": 1, "flagged": 0},
        {"model": "a", "provider": "p", "check": "blank", "outputs": 1, "flagged": 0},
    ]
    assert stats.count_flagged(frame.iloc[0:0]).empty

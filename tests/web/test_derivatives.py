"""Blind derivatives: one box, one format, sRGB pixels, orientation applied, no metadata at all."""

from __future__ import annotations

import io

from PIL import Image, ImageCms

from arena.derivatives import LETTERBOX_RGB, box_for_challenge, box_for_ratio, make_derivative

from .factory import telling_png, write_challenges


def _chunks(webp: bytes) -> list[bytes]:
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    chunks, at = [], 12
    while at < len(webp):
        size = int.from_bytes(webp[at + 4 : at + 8], "little")
        chunks.append(webp[at : at + 4])
        at += 8 + size + (size & 1)
    return chunks


def test_every_output_of_a_challenge_lands_in_the_same_box_with_no_metadata():
    box = (128, 72)
    for size in ((1024, 1024), (1344, 768), (300, 1000)):
        data = telling_png("zephyr-xl-9000", 3, size)
        out = make_derivative(data, box)
        assert _chunks(out) == [
            b"VP8 "
        ]  # no EXIF, XMP, ICCP chunk; the container cannot carry PNG text
        assert b"zephyr" not in out.lower()
        assert Image.open(io.BytesIO(out)).size == box


def test_letterboxing_keeps_the_aspect_ratio_and_fills_with_the_page_colour():
    tall = Image.new("RGB", (100, 400), (250, 250, 250))
    buffer = io.BytesIO()
    tall.save(buffer, format="PNG")
    out = Image.open(io.BytesIO(make_derivative(buffer.getvalue(), (200, 200)))).convert("RGB")
    assert all(abs(a - b) < 8 for a, b in zip(out.getpixel((5, 100)), LETTERBOX_RGB, strict=True))
    assert all(v > 235 for v in out.getpixel((100, 100)))


def test_exif_orientation_is_applied_before_the_tag_is_dropped():
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))  # red on the left half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    out = Image.open(io.BytesIO(make_derivative(buffer.getvalue(), (100, 200)))).convert("RGB")
    top, bottom = out.getpixel((50, 40)), out.getpixel((50, 160))
    assert top[0] > 200 and top[2] < 60  # the left half became the top half
    assert bottom[2] > 200 and bottom[0] < 60


def test_an_srgb_tagged_image_keeps_its_colour_through_the_profile_conversion():
    grey = Image.new("RGB", (64, 64), (200, 30, 30))
    buffer = io.BytesIO()
    grey.save(
        buffer,
        format="PNG",
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
    )
    out = Image.open(io.BytesIO(make_derivative(buffer.getvalue(), (64, 64)))).convert("RGB")
    r, g, b = out.getpixel((32, 32))
    assert abs(r - 200) < 10 and g < 45 and b < 45


def test_the_box_follows_the_edit_source_or_the_requested_ratio(tmp_path):
    from arena.challenges import load_challenges

    challenges = {c.slug: c for c in load_challenges(write_challenges(tmp_path / "ch"))}
    assert box_for_challenge(challenges["hat"], 768) == (768, 512)  # the 300x200 source
    assert box_for_challenge(challenges["fox"], 768) == (768, 432)  # aspect_ratio 16:9
    assert box_for_ratio(1, 1, 640) == (640, 640)

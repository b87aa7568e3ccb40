"""Safe image decoding: real formats only, size and pixel limits, content-addressed storage."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from support.images import make_bomb_png, make_png

from arena.errors import ImageError
from arena.images import image_path, inspect_image, save_image


def test_valid_png_and_jpeg_are_described():
    png = make_png(100, 60)
    info = inspect_image(png)
    assert (info.format, info.width, info.height, info.size_bytes) == ("PNG", 100, 60, len(png))
    assert info.sha256 == hashlib.sha256(png).hexdigest()
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20)).save(buffer, format="JPEG")
    assert inspect_image(buffer.getvalue()).format == "JPEG"


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "empty"),
        (b"<html>nope</html>", "not an image"),
        (make_png(64, 64)[:80], "does not decode"),
        (make_bomb_png(60000), "decompression bomb refused"),  # Pillow's own guard fires first
        (
            make_bomb_png(7000),
            "over the 40000000-pixel limit",
        ),  # ours: 49 MP claimed, never decoded
        (make_png(4, 4), "implausible image size"),
    ],
)
def test_bad_bytes_are_image_errors(data, problem):
    with pytest.raises(ImageError, match=problem):
        inspect_image(data)


def test_formats_outside_the_allow_list_are_refused():
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, format="BMP")
    with pytest.raises(ImageError, match="allowed format"):
        inspect_image(buffer.getvalue())


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data):
    try:
        info = inspect_image(data)
    except ImageError:
        return  # the one way to refuse
    # Bytes it accepts are an image that decodes, of the size it reports (accepting all would fail).
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.size == (info.width, info.height)


def test_save_is_idempotent_and_content_addressed(tmp_path):
    png = make_png(20, 20)
    info = inspect_image(png)
    first = save_image(tmp_path, png, info)
    assert first == image_path(tmp_path, info) and first.read_bytes() == png
    mtime = first.stat().st_mtime_ns
    assert save_image(tmp_path, png, info) == first and first.stat().st_mtime_ns == mtime
    assert first.parent.name == info.sha256[:2]
    assert not list(tmp_path.rglob("*.tmp*"))


def test_corrupted_png_data_and_truncated_jpeg_are_caught_by_the_cheap_check():
    png = bytearray(make_png(64, 64, (10, 200, 30)))
    idat = png.index(b"IDAT")
    png[idat + 8] ^= 0xFF  # flip a byte of compressed pixel data: the chunk's CRC no longer matches
    with pytest.raises(ImageError, match="does not decode"):
        inspect_image(bytes(png))
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(buffer, format="JPEG", quality=90)
    jpeg = buffer.getvalue()
    assert inspect_image(jpeg).format == "JPEG"
    with pytest.raises(ImageError, match="does not decode"):
        inspect_image(jpeg[: len(jpeg) // 2])


def test_full_and_cheap_checks_agree_on_valid_images():
    for fmt in ("PNG", "JPEG", "WEBP"):
        buffer = io.BytesIO()
        Image.effect_noise((120, 90), 40).convert("RGB").save(buffer, format=fmt)
        data = buffer.getvalue()
        assert inspect_image(data) == inspect_image(data, full=True)
        assert (inspect_image(data).width, inspect_image(data).height) == (120, 90)

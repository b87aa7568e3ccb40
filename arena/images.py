"""Decode images safely, validate them, hash them, and store them once by sha256 under the data dir."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from arena.errors import ImageError

# Real image formats only; Pillow would otherwise try every plugin it has (EPS, PSD, ...).
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
MAX_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 40_000_000  # 40 MP: above any current model's output (4K is 8.3 MP)
MIN_SIDE_PX = 16
MAX_SIDE_PX = 16384
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True)
class ImageInfo:
    """What we record about a valid image."""

    sha256: str
    format: str
    width: int
    height: int
    size_bytes: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    @property
    def mime(self) -> str:
        return MIME_TYPES[self.format]


def open_image(data: bytes, full: bool = True) -> Image.Image:
    """Open and decode an image within the limits (see _decode); full=True decodes every pixel."""
    return _decode(data, full)[0]


def _decode(data: bytes, full: bool) -> tuple[Image.Image, str, int, int]:
    """Open and decode bytes within the size and pixel limits; raise ImageError otherwise.

    full=False is the harness's check, cheap enough to run on every reply at 100 replies/s: a PNG
    has every chunk's CRC (image data included) and its end marker verified without inflating the
    pixels; a JPEG is entropy-decoded in full at 1/8 scale (draft mode); other formats decode fully.
    """
    if not data:
        raise ImageError("empty image (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"image is {len(data)} bytes, over the {MAX_BYTES}-byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = image.size
            # Check the header's claim before decoding a single pixel: a bomb is small on the wire.
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"image claims {width}x{height} pixels, over the {MAX_PIXELS}-pixel limit"
                )
            if full or image.format not in ("PNG", "JPEG"):
                image.load()
            elif image.format == "PNG":
                image.verify()  # walks every chunk to IEND checking CRCs; raises on truncation
            else:
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"not an image in an allowed format ({', '.join(ALLOWED_FORMATS)})"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"image does not decode: {exc}") from None
    if not (MIN_SIDE_PX <= width <= MAX_SIDE_PX and MIN_SIDE_PX <= height <= MAX_SIDE_PX):
        raise ImageError(f"implausible image size {width}x{height}")
    return (
        image,
        image.format or "PNG",
        width,
        height,
    )  # size from the header: draft mode shrinks image.size


def inspect_image(data: bytes, full: bool = False) -> ImageInfo:
    """Check (safely) and describe an image; raise ImageError when it is not a plausible image."""
    _, fmt, width, height = _decode(data, full)
    return ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        width=width,
        height=height,
        size_bytes=len(data),
    )


def image_path(images_dir: Path, info: ImageInfo) -> Path:
    """Content-addressed location: images/ab/abcdef....ext."""
    return Path(images_dir) / info.sha256[:2] / f"{info.sha256}.{info.extension}"


def save_image(images_dir: Path, data: bytes, info: ImageInfo) -> Path:
    """Write bytes once under their sha256; an existing file is left as it is."""
    path = image_path(images_dir, info)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written image under its name
    except BaseException:
        # A full disk leaves a half-written temp file; it must not stay there taking the space.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()

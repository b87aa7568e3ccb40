"""The blind derivative of an image: decoded, sRGB, fitted into one box, one format, no metadata."""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, ImageOps

from arena.images import open_image

BOX_LONG_SIDE_PX = 768  # two of these as WebP plus an edit's source stay well under 400 KB a page
WEBP_QUALITY = 80
LETTERBOX_RGB = (24, 24, 24)  # the page's own background: bars read as frame, not content
_SRGB = ImageCms.createProfile("sRGB")
_RATIO_RE = re.compile(r"^(\d+(?:\.\d+)?)[:x](\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class View:
    """A derivative as stored: its own hash, where it is, and its size."""

    sha256: str
    path: Path
    width: int
    height: int
    size_bytes: int


def box_for_ratio(
    width: float, height: float, long_side_px: int = BOX_LONG_SIDE_PX
) -> tuple[int, int]:
    """The box with this aspect ratio whose long side is long_side_px (even sides, at least 16 px)."""
    if width <= 0 or height <= 0:
        return long_side_px, long_side_px
    scale = long_side_px / max(width, height)
    return max(16, round(width * scale / 2) * 2), max(16, round(height * scale / 2) * 2)


def box_for_challenge(challenge, long_side_px: int = BOX_LONG_SIDE_PX) -> tuple[int, int]:
    """Edits: the first source image's aspect ratio; text-to-image: the requested ratio, else square."""
    if challenge.source_images:
        with Image.open(challenge.source_images[0]) as source:
            width, height = ImageOps.exif_transpose(source).size
        return box_for_ratio(width, height, long_side_px)
    for text in (challenge.aspect_ratio, challenge.size):
        match = _RATIO_RE.match(text or "")
        if match:
            return box_for_ratio(float(match[1]), float(match[2]), long_side_px)
    return long_side_px, long_side_px


def box_name(box: tuple[int, int]) -> str:
    return f"{box[0]}x{box[1]}"


def _to_srgb(image: Image.Image) -> Image.Image:
    """Pixels in sRGB: an embedded ICC profile is applied, alpha is flattened onto the letterbox colour."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB"
            if image.mode not in ("RGB", "RGBA", "CMYK", "L"):
                image = image.convert("RGBA" if mode == "RGBA" else "RGB")
            image = ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: treat the pixels as sRGB rather than refuse the output
    if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, LETTERBOX_RGB)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def make_derivative(data: bytes, box: tuple[int, int], quality: int = WEBP_QUALITY) -> bytes:
    """Re-encode an image for a blind battle: same box, format and quality for every model, no metadata.

    A new image is built from the pixels alone, so nothing of the original's EXIF, XMP, ICC, PNG
    text or C2PA chunks can reach the encoder.
    """
    image = ImageOps.exif_transpose(
        open_image(data)
    )  # orientation applied, since the tag is dropped
    pixels = _to_srgb(image)
    fitted = ImageOps.contain(pixels, box, method=Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", box, LETTERBOX_RGB)
    canvas.paste(fitted, ((box[0] - fitted.width) // 2, (box[1] - fitted.height) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, format="WEBP", quality=quality, method=4)
    return buffer.getvalue()


def view_path(directory: Path, sha256: str) -> Path:
    """Content-addressed: derivatives/ab/abcdef....webp."""
    return Path(directory) / sha256[:2] / f"{sha256}.webp"


def save_view(directory: Path, data: bytes, box: tuple[int, int]) -> View:
    """Write a derivative once under its sha256 (atomically); an existing file is kept."""
    sha = hashlib.sha256(data).hexdigest()
    path = view_path(directory, sha)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return View(sha256=sha, path=path, width=box[0], height=box[1], size_bytes=len(data))

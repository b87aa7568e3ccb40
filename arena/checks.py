"""Checks that need no model: unchanged edits, wrong aspect ratios, lost faces, blank images.

Each check looks at one output's bytes (and, for edits, facts about the challenge's source
images, worked out once per challenge by `describe_sources`) and returns a `CheckResult`, or None
when it does not apply (a text-to-image output has no source to be unchanged from, a challenge that
asks for no shape has no aspect ratio to miss, a source without a face has no face to lose). The
thresholds are `[checks]` in arena.toml (CheckSettings); docs/checks.md says how each was chosen.

No store, no network: the app layer (arena.app.check) reads the files and stores the results.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2  # at import, in one thread: cv2's first import is not safe from several at once
import imagehash
import numpy as np
from PIL import Image

from arena import params
from arena.config import CHECK_NAMES, CheckSettings
from arena.errors import ArenaError, ConfigError, ImageError
from arena.images import open_image

CHECKS = CHECK_NAMES
# 16 x 16 = 256-bit perceptual hash: the 64-bit default cannot tell a colour grade (2-4 bits from
# its source on the shipped photos) from a re-encode (0 bits); at 256 bits the two are 2 and 8+.
HASH_SIZE = 16
# Checks work on a copy whose long side is at most this: the cascade's time grows with the pixel
# count, and neither the hash (32 x 32 px inside) nor the grey spread needs more.
WORK_SIDE_PX = 1024
FACE_CASCADE = "haarcascade_frontalface_default.xml"
FACE_SCALE_FACTOR = 1.1  # the cascade's step between scales (OpenCV's usual value)
FACE_MIN_SHARE = 0.1  # a face is at least a tenth of the short side: a portrait's, not a texture's


class CheckError(ArenaError):
    """A check that cannot run: an image that does not decode, or (CheckSetupError) no cascade."""


class CheckSetupError(CheckError):
    """This installation cannot run a check at all (OpenCV without its Haar cascades)."""


@dataclass(frozen=True)
class CheckResult:
    """One check on one output: flagged or not, the measured value and the setting it was held to."""

    check: str  # one of CHECKS
    flagged: bool
    value: (
        float | None
    )  # unchanged: hash bits; aspect: relative error; faces: faces found; blank: grey stddev
    threshold: float | None  # the [checks] setting used (faces: the cascade's min_neighbors)
    detail: str  # one line for a person


@dataclass(frozen=True)
class SourceFacts:
    """What the checks need of an edit's source images, computed once per challenge."""

    hashes: tuple[str, ...] = ()  # hex perceptual hashes, in the challenge's order
    faces: tuple[int, ...] = ()  # faces found in each source


# --- decoding -----------------------------------------------------------------------------------


def decode(data: bytes, what: str = "image") -> Image.Image:
    """Bytes to an RGB image (transparency over white), at most WORK_SIDE_PX a side.

    Decoding goes through arena.images (formats, byte and pixel limits); a corrupt image is a
    CheckError naming `what`, never a traceback.
    """
    return _decode(data, what)[0]


def _decode(data: bytes, what: str) -> tuple[Image.Image, int, int]:
    """decode(), with the image's own width and height (before the working copy shrinks it)."""
    try:
        image = open_image(data, full=True)
    except ImageError as exc:
        raise CheckError(f"{what}: {exc}") from None
    width, height = image.size
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # A transparent pixel shows the page behind it: a fully transparent output is blank.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    image.thumbnail((WORK_SIDE_PX, WORK_SIDE_PX), Image.Resampling.LANCZOS)
    return image, width, height


# --- the requested shape ------------------------------------------------------------------------


def requested_ratio(size: str | None, aspect_ratio: str | None) -> float | None:
    """Width / height a challenge asks for: a WxH size's own ratio, a W:H size, else aspect_ratio;
    None when it asks for no shape (or "auto")."""
    try:
        if size and not params.is_auto(size):
            pixels = params.requested_pixels(size)
            if pixels is not None:
                return pixels[0] / pixels[1]
            return params.parse_ratio(size, "size")
        if aspect_ratio and not params.is_auto(aspect_ratio):
            return params.parse_ratio(aspect_ratio)
    except ConfigError as exc:
        raise CheckError(f"the requested shape: {exc}") from None
    return None


# --- the checks ---------------------------------------------------------------------------------


def perceptual_hash(image: Image.Image) -> str:
    return str(imagehash.phash(image, hash_size=HASH_SIZE))


def check_unchanged(
    output: Image.Image, sources: SourceFacts, max_distance: int
) -> CheckResult | None:
    """An edit whose output is (perceptually) one of its sources: the smallest Hamming distance
    between the output's hash and each source's is at most max_distance bits. None without sources.

    With several sources the minimum counts: returning any input unchanged is no edit."""
    if not sources.hashes:
        return None
    mine = imagehash.hex_to_hash(perceptual_hash(output))
    distances = [mine - imagehash.hex_to_hash(h) for h in sources.hashes]
    nearest = min(range(len(distances)), key=distances.__getitem__)
    distance = int(distances[nearest])
    which = f"source {nearest + 1} of {len(distances)}" if len(distances) > 1 else "the source"
    flagged = distance <= max_distance
    verdict = "unchanged" if flagged else "changed"
    return CheckResult(
        "unchanged",
        flagged,
        float(distance),
        float(max_distance),
        f"{verdict}: {distance} of {HASH_SIZE * HASH_SIZE} hash bits differ from {which} "
        f"(at most {max_distance} is unchanged)",
    )


def aspect_error(width: int, height: int, requested: float) -> float:
    """How far a returned shape is off the requested ratio, relative and symmetric: 0 exact, 0.1
    when one is 10% wider (or taller) than the other (1:2 for 2:1 is 3.0, like 2:1 for 1:2)."""
    returned = width / height
    return max(returned / requested, requested / returned) - 1.0


def check_aspect(
    width: int, height: int, requested: float | None, tolerance: float
) -> CheckResult | None:
    """The returned aspect ratio more than `tolerance` (relative) off the requested one; None when
    the challenge asks for no shape."""
    if requested is None:
        return None
    error = aspect_error(width, height, requested)
    flagged = error > tolerance
    asked = params.ratio_name(*_ratio_terms(requested))
    return CheckResult(
        "aspect",
        flagged,
        round(error, 6),
        tolerance,
        f"{width}x{height} is {width / height:.3f}, {error:.1%} off the requested {asked} "
        f"({requested:.3f}; at most {tolerance:.1%} passes)",
    )


def _ratio_terms(ratio: float) -> tuple[int, int]:
    """A ratio as small integer terms for its name (16/9 -> 16, 9), within 0.1%."""
    for height in range(1, 101):
        width = round(ratio * height)
        if width and abs(width / height - ratio) <= ratio * 1e-3:
            return width, height
    return round(ratio * 1000), 1000


def check_faces(
    output: Image.Image, sources: SourceFacts, min_neighbors: int
) -> CheckResult | None:
    """An edit whose sources show a face but whose output shows none; None when no source has a
    face (nothing to lose) or the challenge has no source."""
    in_sources = max(sources.faces, default=0)
    if in_sources == 0:
        return None
    found = count_faces(output, min_neighbors)
    flagged = found == 0
    return CheckResult(
        "faces",
        flagged,
        float(found),
        float(min_neighbors),
        f"{_faces(in_sources)} in the source, {_faces(found)} in the output "
        f"(Haar cascade, min_neighbors {min_neighbors})",
    )


def _faces(count: int) -> str:
    return f"{count} face" if count == 1 else f"{count} faces"


def check_blank(output: Image.Image, max_stddev: float) -> CheckResult:
    """A near-uniform image: the standard deviation of its grey levels (0-255) at most max_stddev."""
    grey = np.asarray(output.convert("L"), dtype=np.float64)
    spread = float(grey.std())
    flagged = spread <= max_stddev
    return CheckResult(
        "blank",
        flagged,
        round(spread, 3),
        max_stddev,
        f"grey levels spread {spread:.1f} (standard deviation; at most {max_stddev:g} is blank)",
    )


# --- faces --------------------------------------------------------------------------------------

_local = threading.local()  # one classifier per thread: a CascadeClassifier is not shareable


def _cascade():
    classifier = getattr(_local, "cascade", None)
    if classifier is None:
        path = cv2.data.haarcascades + FACE_CASCADE
        if not hasattr(cv2, "CascadeClassifier"):
            raise CheckSetupError(
                f"the faces check needs OpenCV's Haar cascades, which OpenCV {cv2.__version__} "
                "no longer has: install opencv-python-headless 4.x (pip install 'opencv-python-headless<5')"
            )
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise CheckSetupError(
                f"the faces check: OpenCV's Haar cascade {path} is missing or unreadable"
            )
        _local.cascade = classifier
    return classifier


def count_faces(image: Image.Image, min_neighbors: int) -> int:
    """Frontal faces OpenCV's Haar cascade finds, each at least FACE_MIN_SHARE of the short side."""
    grey = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    grey = cv2.equalizeHist(
        grey
    )  # as OpenCV's face-detection tutorial: a dark grade keeps its face
    side = max(24, math.floor(min(grey.shape) * FACE_MIN_SHARE))  # the cascade's window is 24 px
    found = _cascade().detectMultiScale(
        grey, scaleFactor=FACE_SCALE_FACTOR, minNeighbors=min_neighbors, minSize=(side, side)
    )
    return len(found)


# --- one output ---------------------------------------------------------------------------------


def describe_sources(sources: Sequence[bytes], settings: CheckSettings) -> SourceFacts:
    """Hashes and face counts of an edit's source images (CheckError when one does not decode)."""
    images = [decode(data, f"source image {k + 1}") for k, data in enumerate(sources)]
    return SourceFacts(
        hashes=tuple(perceptual_hash(image) for image in images),
        faces=tuple(count_faces(image, settings.faces_min_neighbors) for image in images),
    )


def check_output(
    data: bytes,
    settings: CheckSettings,
    *,
    sources: SourceFacts | None = None,
    requested: float | None = None,
) -> list[CheckResult]:
    """Every check that applies to one output, in CHECKS order; CheckError when it does not decode.

    `sources`: describe_sources() of an edit's source images (None for text-to-image);
    `requested`: the width / height the challenge asks for (requested_ratio()), None if none."""
    image, width, height = _decode(data, "output")
    sources = sources or SourceFacts()
    results = [
        check_unchanged(image, sources, settings.unchanged_max_distance),
        check_aspect(width, height, requested, settings.aspect_tolerance),
        check_faces(image, sources, settings.faces_min_neighbors),
        check_blank(image, settings.blank_max_stddev),
    ]
    return [r for r in results if r is not None]


# --- counting -----------------------------------------------------------------------------------

"""The site's copies of stored images: full-size files and small WebP thumbnails, named by sha256.

Both are content-addressed, so a rebuild into the same folder reuses what is already there and a
page never points at a file that changed under it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

THUMB_PX = 256
THUMB_QUALITY = 78


@dataclass(frozen=True)
class Picture:
    """Paths relative to the site root."""

    full: str
    thumb: str


class Pictures:
    """Copies images into OUT/images/{full,thumb}/ once per sha and remembers what it wrote."""

    def __init__(
        self, out_dir: Path, data_dir: Path | None, stored: dict[str, tuple[str, str]]
    ) -> None:
        self.out_dir = Path(out_dir)
        self.data_dir = Path(data_dir) if data_dir else None
        self.stored = stored
        self.written: set[str] = set()
        self._known: dict[str, Picture | None] = {}

    def of_sha(self, sha: str | None) -> Picture | None:
        """The site picture of a stored image, or None when its file is not in the data dir."""
        if not sha:
            return None
        if sha not in self._known:
            entry = self.stored.get(sha)
            source = self.data_dir / entry[0] if entry and self.data_dir else None
            self._known[sha] = (
                self._copy(source, sha) if source is not None and source.is_file() else None
            )
        return self._known[sha]

    def of_file(self, path: Path) -> Picture | None:
        """The site picture of a file outside the store (a challenge's source image)."""
        path = Path(path)
        if not path.is_file():
            return None
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if sha not in self._known:
            self._known[sha] = self._copy(path, sha)
        return self._known[sha]

    def _copy(self, source: Path, sha: str) -> Picture | None:
        suffix = source.suffix.lower() or ".img"
        full = f"images/full/{sha[:2]}/{sha}{suffix}"
        thumb = f"images/thumb/{sha[:2]}/{sha}.webp"
        full_path, thumb_path = self.out_dir / full, self.out_dir / thumb
        if not full_path.is_file() or full_path.stat().st_size != source.stat().st_size:
            full_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, full_path)
        if not thumb_path.is_file():
            try:
                with Image.open(source) as image:
                    image.thumbnail((THUMB_PX, THUMB_PX))
                    if image.mode not in ("RGB", "RGBA"):
                        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
                    thumb_path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = thumb_path.with_suffix(".tmp")
                    image.save(tmp, format="WEBP", quality=THUMB_QUALITY, method=4)
                    tmp.replace(thumb_path)
            except OSError:
                return None  # unreadable file: the page says the image is missing
        self.written.update((full, thumb))
        return Picture(full=full, thumb=thumb)

"""response_format=url: images kept under <data_dir>/gateway-files and served at /v1/files/{opaque id} until they expire.

Files, not memory, so that any gateway worker on the host serves what another one saved. The id is
128 random bits (the URL is the only way in) plus the image's extension; a file older than
file_ttl_s is gone (404) and swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from arena.gateway.replies import GatewayError
from arena.images import ImageInfo

log = logging.getLogger("arena.gateway")
FILE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}\.(png|jpg|webp|gif)$")
MIME_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
}
SWEEP_EVERY_S = 300.0


class FileStore:
    """Saves images for url replies and finds them again, from any process on the host."""

    def __init__(self, directory: Path, ttl_s: float, public_url: str) -> None:
        self.directory = Path(directory)
        self.ttl_s = ttl_s
        self.public_url = public_url.rstrip("/")

    def save(self, data: bytes, info: ImageInfo) -> str:
        """Write one image (blocking: call it in a thread); returns its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        file_id = f"{secrets.token_urlsafe(16)}.{info.extension}"
        path = self.directory / file_id
        tmp = path.with_name(f".{file_id}.tmp{os.getpid()}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)  # whole or absent: another worker never serves half a file
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return f"{self.public_url}/v1/files/{file_id}"

    def find(self, file_id: str) -> Path | None:
        """The file of an id while it lives; None for an unknown, malformed or expired id."""
        if not FILE_ID_RE.match(file_id):
            return None
        path = self.directory / file_id
        try:
            age_s = time.time() - path.stat().st_mtime
        except OSError:
            return None
        if age_s > self.ttl_s:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return path

    def sweep(self) -> int:
        """Remove expired files (and temp files left by a crash); returns how many."""
        removed = 0
        cutoff = time.time() - self.ttl_s
        if not self.directory.is_dir():
            return 0
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    async def run(self) -> None:
        """The lifespan task: sweep now and then; a failed sweep is logged and tried again later."""
        while True:
            try:
                await asyncio.to_thread(self.sweep)
            except Exception as exc:
                log.warning("gateway: sweeping %s failed: %s", self.directory, exc)
            await asyncio.sleep(min(SWEEP_EVERY_S, max(self.ttl_s, 1.0)))


async def serve_file(request: Request) -> Response:
    """GET /v1/files/{id}: the image, or 404 in OpenAI's shape once it expired."""
    files: FileStore = request.app.state.gateway.files
    file_id = request.path_params["file_id"]
    path = await asyncio.to_thread(files.find, file_id)
    if path is None:
        raise GatewayError(
            404,
            f"file {file_id[:40]!r} is unknown or expired (files are kept {files.ttl_s:g} s)",
            param="file_id",
            code="file_not_found",
        )
    mime = MIME_BY_EXTENSION[file_id.rsplit(".", 1)[1]]
    return FileResponse(path, media_type=mime, headers={"Cache-Control": "private, max-age=60"})

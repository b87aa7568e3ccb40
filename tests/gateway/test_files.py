"""The url replies' file store: an opaque id per image, found by any process until it expires, swept after."""

from __future__ import annotations

import os
import time

from support.images import make_png

from arena.gateway.files import FileStore
from arena.images import inspect_image


def test_saved_found_expired_and_swept(tmp_path):
    files = FileStore(tmp_path / "gateway-files", ttl_s=60.0, public_url="https://img.example/")
    data = make_png(20, 20)
    url = files.save(data, inspect_image(data))
    assert url.startswith("https://img.example/v1/files/") and url.endswith(".png")
    file_id = url.rsplit("/", 1)[1]
    again = FileStore(tmp_path / "gateway-files", ttl_s=60.0, public_url="https://img.example")
    assert again.find(file_id).read_bytes() == data  # another worker on the host finds it
    for bad in ("../../etc/passwd", file_id[:-4] + ".exe", "x.png", file_id + "/"):
        assert again.find(bad) is None
    other = files.save(data, inspect_image(data))
    assert other != url  # an id per image, never derived from its content
    old = time.time() - 120
    os.utime(tmp_path / "gateway-files" / file_id, (old, old))
    (tmp_path / "gateway-files" / ".left.tmp123").write_bytes(b"half")
    os.utime(tmp_path / "gateway-files" / ".left.tmp123", (old, old))
    assert files.find(file_id) is None  # expired: gone
    assert files.sweep() == 1  # the crash's temp file; the expired one went on find
    assert sorted(p.name for p in (tmp_path / "gateway-files").iterdir()) == [
        other.rsplit("/", 1)[1]
    ]

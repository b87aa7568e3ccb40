"""The spill file: results the store could not take, kept as JSON lines until a resume replays them.

`<data_dir>/spill/<RUN_ID>.jsonl`, one line per result; when the data dir itself cannot take it
(a full disk), what does not fit goes to `<temp dir>/arena-spill/<RUN_ID>.jsonl`. A line:

    {"v": 1, "final": true, "attempt": {the attempts table's columns},
     "image": null | {"sha256", "format", "width", "height", "size_bytes",
                      "path": the saved file, relative to the data dir   (when it was saved)
                      "b64": the image bytes                            (when it was not)}}

Every line is written whole and synced before the next, and a line cut short is cut off again,
so a reader meets at most one incomplete line, at the end, after a crash mid-write.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from arena.errors import StoreError, plural
from arena.images import ImageInfo
from arena.store.tables import Attempt, StoredImage

SPILL_VERSION = 1
ATTEMPT_COLUMNS = tuple(c.name for c in Attempt.__table__.columns if c.name != "id")
_DATETIME_COLUMNS = frozenset(
    c.name for c in Attempt.__table__.columns if c.type.python_type is datetime
)


@dataclass
class HeldResult:
    """One result the writer holds until the store takes it: the attempt, its image, its job's end."""

    attempt: object  # the harness's AttemptRecord: the attempts table's columns as attributes
    image: bytes | None
    info: ImageInfo | None
    final: bool
    stored: StoredImage | None = None  # set once the image file is saved under the data dir


@dataclass
class SpillReport:
    """Where held results went: how many each file kept, how many nothing could keep, and why."""

    kept: dict[Path, int] = field(default_factory=dict)
    lost: int = 0
    problem: str | None = None  # why a file (or every file) could not take a line

    def add(self, other: SpillReport) -> None:
        for path, count in other.kept.items():
            self.kept[path] = self.kept.get(path, 0) + count
        self.lost += other.lost
        self.problem = other.problem or self.problem

    def describe(self) -> str:
        kept = "; ".join(f"{plural(n, 'result')} kept in {p}" for p, n in self.kept.items())
        if not self.lost:
            return kept or "no result was waiting to be saved"
        lost = (
            f"{plural(self.lost, 'result')} could not be written anywhere ({self.problem}): "
            "their jobs stay pending and are sent again on resume"
        )
        return f"{kept}; {lost}" if kept else lost


def spill_paths(data_dir: Path, run_id: str) -> list[Path]:
    """Where a run's spill may be: under the data dir first, then the fallback in the temp dir."""
    return [
        Path(data_dir) / "spill" / f"{run_id}.jsonl",
        Path(tempfile.gettempdir()) / "arena-spill" / f"{run_id}.jsonl",
    ]


def spill_keys(data_dir: Path, run_id: str) -> list[str]:
    """The names of a run's spill files: the run's own, and each worker's ("<run>.<token>")."""
    keys = {run_id}
    for folder in {path.parent for path in spill_paths(data_dir, run_id)}:
        if folder.is_dir():
            keys.update(p.stem for p in folder.glob(f"{run_id}.*.jsonl"))
    return sorted(keys)


def write_spill(data_dir: Path, run_id: str, results: list[HeldResult]) -> SpillReport:
    """Append results to the run's spill file, then to the fallback for what did not fit.

    Never raises for a file that cannot be written: what no file could take is counted as lost,
    and the report says so (the caller prints it; the jobs stay pending).
    """
    report = SpillReport()
    lines = [_line(r) for r in results]
    for path in spill_paths(data_dir, run_id):
        if not lines:
            break
        written, problem = _append_lines(path, lines)
        if written:
            report.kept[path] = written
        lines = lines[written:]
        report.problem = problem or report.problem
    report.lost = len(lines)
    return report


def _append_lines(path: Path, lines: list[bytes]) -> tuple[int, str | None]:
    """Write whole lines, each synced, until one fails; a line cut short is cut off again."""
    written = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        return 0, _os_problem(exc, path)
    try:
        for line in lines:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)  # frees what the torn line took
                return written, _os_problem(exc, path)
            written += 1
    finally:
        os.close(fd)
    return written, None


def _os_problem(exc: OSError, path: Path) -> str:
    return f"{exc.strerror or exc}: {path}"


def _line(result: HeldResult) -> bytes:
    attempt = {}
    for column in ATTEMPT_COLUMNS:
        value = getattr(result.attempt, column, None)
        attempt[column] = value.isoformat() if isinstance(value, datetime) else value
    image = None
    info = result.info
    if info is not None and (result.stored is not None or result.image is not None):
        image = {
            "sha256": info.sha256,
            "format": info.format,
            "width": info.width,
            "height": info.height,
            "size_bytes": info.size_bytes,
        }
        if result.stored is not None:
            image["path"] = result.stored.path
        else:  # the image file could not be written either: the bytes travel in the line
            image["b64"] = base64.b64encode(result.image).decode("ascii")
    record = {"v": SPILL_VERSION, "final": result.final, "attempt": attempt, "image": image}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def read_spill(path: Path) -> tuple[list[HeldResult], bool]:
    """The results in a spill file, and whether its last line was cut short (that result is lost:
    its job stays pending). Any other unreadable line is a StoreError naming the file and line."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines[-1] != b""  # a crash in the middle of a write; every whole line ends with \n
    results = []
    for number, raw in enumerate(lines[:-1], start=1):
        try:
            record = json.loads(raw)
            if record.get("v") != SPILL_VERSION:
                raise ValueError(f"version {record.get('v')!r}, expected {SPILL_VERSION}")
            results.append(_result(record))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{path}: line {number}: not a spilled result ({exc})") from None
    return results, torn


def _result(record: dict) -> HeldResult:
    values = dict(record["attempt"])
    for column in _DATETIME_COLUMNS:
        if values.get(column) is not None:
            values[column] = datetime.fromisoformat(values[column])
    image, info, stored = record["image"], None, None
    data = None
    if image is not None:
        info = ImageInfo(
            sha256=image["sha256"],
            format=image["format"],
            width=int(image["width"]),
            height=int(image["height"]),
            size_bytes=int(image["size_bytes"]),
        )
        if "b64" in image:
            data = base64.b64decode(image["b64"], validate=True)
        else:
            stored = StoredImage(
                sha256=info.sha256,
                path=str(image["path"]),
                format=info.format,
                width=info.width,
                height=info.height,
                size_bytes=info.size_bytes,
            )
    return HeldResult(SimpleNamespace(**values), data, info, bool(record["final"]), stored)

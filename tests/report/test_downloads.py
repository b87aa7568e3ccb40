"""The downloads: CSVs written in chunks with pre-quoted cells (byte for byte what csv.writer
writes), the schema version they carry, and vote files read with or without one."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

from arena.errors import VoteDataError
from arena.ratings.frames import read_votes_file
from arena.report import downloads


def test_chunked_csv_is_what_csv_writer_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "CSV_CHUNK_ROWS", 3)
    labels = ["plain", 'say "hi"', "a,b", "two\nlines", "tab\there", "", " lead", "ünï"]
    frame = pd.DataFrame(
        {
            "id": [f"x{k}" if k != 4 else 'q"uote,' for k in range(len(labels))],
            "label": pd.Categorical([labels[k] if k != 2 else None for k in range(len(labels))]),
            "text": labels[::-1],
            "at": pd.to_datetime(["2025-01-02 03:04:05.678"] * len(labels), utc=True),
            "flag": [k % 2 == 0 for k in range(len(labels))],
            "x": [1.5, np.nan, 2.0, 1e-7, 123456.789, 0.1, np.nan, 3.0],
            "n": [200.0, np.nan, 404.0, 200.0, 200.0, 500.0, np.nan, 201.0],
            "i": np.arange(len(labels)),
        }
    )
    fields = tuple(frame.columns)
    assert downloads._write_csv(frame, fields, tmp_path / "out.csv", whole={"n"}) == len(frame)
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(fields)
    for k in range(len(frame)):
        row = frame.iloc[k]
        writer.writerow(
            [
                row["id"],
                "" if pd.isna(row["label"]) else row["label"],
                row["text"],
                "2025-01-02T03:04:05.678Z",
                str(bool(row["flag"])),
                "" if np.isnan(row["x"]) else str(np.float64(row["x"])),
                "" if np.isnan(row["n"]) else str(int(row["n"])),
                str(row["i"]),
            ]
        )
    written = (tmp_path / "out.csv").read_bytes()
    assert written == expected.getvalue().encode("utf-8")
    assert [r["text"] for r in csv.DictReader(io.StringIO(written.decode(), newline=""))] == labels[
        ::-1
    ]


def test_an_empty_frame_is_its_header(tmp_path):
    frame = pd.DataFrame({name: [] for name in downloads.VOTE_FIELDS})
    downloads.write_votes_csv(frame, tmp_path / "votes.csv")
    assert (tmp_path / "votes.csv").read_text() == ",".join(downloads.VOTE_FIELDS) + "\n"


# --- the schema version the downloads carry -------------------------------------------------------


def test_the_downloads_carry_their_schema_version_and_the_manifest_lists_every_file(golden_site):
    folder = golden_site.out_dir / "downloads"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == downloads.manifest()
    assert manifest["schema_version"] == downloads.DOWNLOADS_SCHEMA_VERSION == 1
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) | {"manifest.json"} == {p.name for p in folder.iterdir()}
    for name, entry in listed.items():
        if entry["format"] == "csv":  # the columns listed are the file's header, in order
            with open(folder / name, newline="", encoding="utf-8") as handle:
                assert next(csv.reader(handle)) == entry["columns"]
    board = json.loads((folder / "leaderboard.json").read_text())
    assert board["schema_version"] == downloads.DOWNLOADS_SCHEMA_VERSION


def test_the_votes_download_reads_back_and_a_newer_manifest_is_refused(golden_site, tmp_path):
    folder = golden_site.out_dir / "downloads"
    copy = tmp_path / "downloads"
    copy.mkdir()
    (copy / "votes.csv").write_bytes((folder / "votes.csv").read_bytes())
    assert len(read_votes_file(copy / "votes.csv")) > 0  # no manifest beside it: read as it is
    manifest = json.loads((folder / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert len(read_votes_file(copy / "votes.csv")) > 0  # this arena's own version
    (copy / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 2}))
    with pytest.raises(VoteDataError) as info:
        read_votes_file(copy / "votes.csv")
    message = str(info.value)
    assert "\n" not in message and "manifest.json: schema_version: version 2 is newer" in message


VOTE = {"model_a": "m1", "model_b": "m2", "winner": "model_a"}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("v.jsonl", json.dumps({**VOTE, "schema_version": 1}) + "\n" + json.dumps(VOTE) + "\n"),
        ("v.json", json.dumps({"schema_version": 1, "votes": [VOTE, VOTE]})),
        ("v.json", json.dumps({"votes": [VOTE, VOTE]})),
        ("v.csv", "model_a,model_b,winner,schema_version\nm1,m2,model_a,1\nm1,m2,model_a,\n"),
        ("v.csv", "model_a,model_b,winner\nm1,m2,model_a\nm1,m2,model_a\n"),
    ],
)
def test_vote_files_with_or_without_a_schema_version_are_read(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    votes = read_votes_file(tmp_path / name)
    assert list(votes["outcome"]) == ["left", "left"] and "schema_version" not in votes


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("v.jsonl", json.dumps({**VOTE, "schema_version": 3}), "version 3 is newer"),
        ("v.json", json.dumps({"schema_version": 2, "votes": [VOTE]}), "version 2 is newer"),
        ("v.csv", "model_a,model_b,winner,schema_version\nm1,m2,model_a,9\n", "version 9 is newer"),
        (
            "v.csv",
            "model_a,model_b,winner,schema_version\nm1,m2,model_a,v1\n",
            "'v1' is not a whole",
        ),
    ],
)
def test_a_vote_file_newer_than_the_reader_is_one_line(tmp_path, name, content, problem):
    (tmp_path / name).write_text(content)
    with pytest.raises(VoteDataError) as info:
        read_votes_file(tmp_path / name)
    message = str(info.value)
    assert "\n" not in message and problem in message and "schema_version" in message

"""The CSV downloads: written in chunks with pre-quoted cells, byte for byte what csv.writer writes."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

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

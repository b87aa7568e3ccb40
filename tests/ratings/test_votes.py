"""Reading released votes (CSV, JSONL) into the canonical frame, and the errors bad rows give."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from arena.errors import VoteDataError
from arena.ratings.frames import CANONICAL_COLUMNS, check_vote_frame, read_votes_file


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_winner_spellings_map_to_outcomes(tmp_path):
    path = write(
        tmp_path / "votes.csv",
        "model_a,model_b,winner\n"
        "a,b,model_a\n"
        "a,b,model_b\n"
        "a,b,tie\n"
        "a,b,tie (bothbad)\n"
        "a,b,both_bad\n"
        "a,b, Tie (BothBad) \n",
    )
    votes = read_votes_file(path)
    assert list(votes.columns) == list(CANONICAL_COLUMNS)
    assert votes["outcome"].tolist() == ["left", "right", "tie", "both_bad", "both_bad", "both_bad"]
    assert (votes["model_left"] == "a").all() and (votes["model_right"] == "b").all()
    assert votes["task"].eq("text-to-image").all()
    assert votes["flagged"].dtype == bool and not votes["flagged"].any()


def test_jsonl_with_optional_columns(tmp_path):
    rows = [
        {
            "model_a": "x",
            "model_b": "y",
            "winner": "model_b",
            "tstamp": 1700000000.5,
            "voter": "v1",
            "challenge": "cat-photo",
            "task": "edit",
            "category": "photo",
        },
        {
            "model_a": "y",
            "model_b": "x",
            "winner": "tie",
            "tstamp": "2024-05-01T12:00:00Z",
            "voter": None,
        },
    ]
    path = write(tmp_path / "votes.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    votes = read_votes_file(path)
    assert votes["outcome"].tolist() == ["right", "tie"]
    assert votes["task"].tolist() == ["edit", "text-to-image"]
    assert votes["category"].tolist() == ["photo", "uncategorized"]
    assert votes["challenge"].tolist() == ["cat-photo", ""]
    assert votes["voter"].tolist() == ["v1", ""]
    assert votes["created_at"].iloc[0] == pd.Timestamp(1700000000.5, unit="s", tz="UTC")
    assert votes["created_at"].iloc[1] == pd.Timestamp("2024-05-01T12:00:00Z")


def test_json_array_file(tmp_path):
    path = write(
        tmp_path / "votes.json", json.dumps([{"model_a": "x", "model_b": "y", "winner": "model_a"}])
    )
    assert read_votes_file(path)["outcome"].tolist() == ["left"]


def test_canonical_columns_are_read_back(tmp_path):
    path = write(
        tmp_path / "votes.csv",
        "model_left,model_right,outcome,flagged\nx,y,left,true\nx,y,both_bad,\n",
    )
    votes = read_votes_file(path)
    assert votes["outcome"].tolist() == ["left", "both_bad"]
    assert votes["flagged"].tolist() == [True, False]


def test_unknown_winner_names_the_row(tmp_path):
    path = write(tmp_path / "votes.csv", "model_a,model_b,winner\na,b,model_a\na,b,left-ish\n")
    with pytest.raises(VoteDataError, match=r"votes\.csv: row 2: unknown winner 'left-ish'"):
        read_votes_file(path)


def test_unknown_winner_in_jsonl_names_the_line(tmp_path):
    lines = [
        '{"model_a": "a", "model_b": "b", "winner": "model_a"}',
        "",
        '{"model_a": "a", "model_b": "b", "winner": "draw"}',
    ]
    path = write(tmp_path / "votes.jsonl", "\n".join(lines))
    with pytest.raises(VoteDataError, match=r"line 3: unknown winner 'draw'"):
        read_votes_file(path)


def test_invalid_json_line_names_the_line(tmp_path):
    path = write(
        tmp_path / "votes.jsonl", '{"model_a": "a", "model_b": "b", "winner": "tie"}\n{not json}\n'
    )
    with pytest.raises(VoteDataError, match=r"line 2: not valid JSON"):
        read_votes_file(path)


def test_non_object_json_line(tmp_path):
    path = write(tmp_path / "votes.jsonl", "[1, 2]\n")
    with pytest.raises(VoteDataError, match=r"expected a JSON object"):
        read_votes_file(path)


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path / "votes.csv", "model_a,winner\na,model_a\n")
    with pytest.raises(VoteDataError, match=r"missing column\(s\) model_b"):
        read_votes_file(path)


@pytest.mark.parametrize("text", ["", "model_a,model_b,winner\n"])
def test_no_votes_in_file(tmp_path, text):
    path = write(tmp_path / "votes.csv", text)
    with pytest.raises(VoteDataError, match=r"no votes"):
        read_votes_file(path)


def test_empty_jsonl_has_no_votes(tmp_path):
    with pytest.raises(VoteDataError, match=r"no votes"):
        read_votes_file(write(tmp_path / "votes.jsonl", "\n"))


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(VoteDataError, match=r"no such votes file"):
        read_votes_file(tmp_path / "absent.csv")
    with pytest.raises(VoteDataError, match=r"use \.csv or \.jsonl"):
        read_votes_file(write(tmp_path / "votes.parquet", "x"))


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("a,a,model_a", r"row 1: model 'a' is on both sides"),
        (",b,model_a", r"row 1: empty model name in model_a"),
        ("a,,model_a", r"row 1: empty model name in model_b"),
    ],
)
def test_bad_model_names_name_the_row(tmp_path, row, problem):
    path = write(tmp_path / "votes.csv", f"model_a,model_b,winner\n{row}\n")
    with pytest.raises(VoteDataError, match=problem):
        read_votes_file(path)


def test_bad_task_time_and_flag_name_the_row(tmp_path):
    header = "model_a,model_b,winner,task,tstamp,flagged\n"
    good = "a,b,tie,edit,1700000000,no\n"
    cases = [
        ("a,b,tie,video,,\n", r"row 2: unknown task 'video'"),
        ("a,b,tie,edit,yesterday,\n", r"row 2: unreadable time 'yesterday'"),
        ("a,b,tie,edit,,maybe\n", r"row 2: flagged must be true or false"),
    ]
    for bad, problem in cases:
        path = write(tmp_path / "votes.csv", header + good + bad)
        with pytest.raises(VoteDataError, match=problem):
            read_votes_file(path)


def test_check_vote_frame_fills_defaults_and_names_bad_rows():
    frame = pd.DataFrame(
        {"model_left": ["a", "b"], "model_right": ["b", "a"], "outcome": ["left", "tie"]}
    )
    checked = check_vote_frame(frame)
    assert set(CANONICAL_COLUMNS) <= set(checked.columns)
    assert checked["flagged"].dtype == bool and checked["task"].eq("text-to-image").all()
    bad = frame.assign(outcome=["left", "win"])
    with pytest.raises(VoteDataError, match=r"row 2: unknown outcome 'win'"):
        check_vote_frame(bad)
    with pytest.raises(VoteDataError, match=r"missing column\(s\) outcome"):
        check_vote_frame(frame.drop(columns="outcome"))


def test_check_vote_frame_of_a_few_columns_checks_and_keeps_only_those():
    frame = pd.DataFrame(
        {
            "model_left": ["a", "b"],
            "model_right": ["b", "a"],
            "outcome": ["left", "both_bad"],
            "challenge": [None, "c1"],
            "voter": ["v", "w"],
            "flagged": [None, True],
        }
    )
    checked = check_vote_frame(frame, ("challenge", "created_at"))
    assert list(checked.columns) == [
        "model_left",
        "model_right",
        "outcome",
        "challenge",
        "flagged",
        "created_at",
    ]
    assert checked["challenge"].tolist() == ["", "c1"] and checked["created_at"].isna().all()
    assert checked["flagged"].tolist() == [False, True]
    with pytest.raises(VoteDataError, match=r"row 1: unknown outcome 'win'"):
        check_vote_frame(frame.assign(outcome=["win", "tie"]), ("created_at",))

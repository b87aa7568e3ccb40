"""`arena check` as a user runs it, on a demo store: counts, stored rows, one-line errors, and a
corrupt image file that is reported while the other outputs are still checked."""

from __future__ import annotations

import json
import shutil

import pytest

from arena import store
from arena.cli import main
from arena.store import votepath
from arena.store.tables import OutputCheck

DEMO = "bald-man,outfit-transfer,night-sky,anime-scene"  # 3 edits x 3 models, 1 text x 2 models


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """A demo run's data dir, made once; each test gets a copy of its own."""
    data = tmp_path_factory.mktemp("demo") / "d"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARENA_DATA_DIR", str(data))
        patch.setenv("ARENA_DEMO_CHALLENGES", DEMO)
        patch.chdir(data.parent)
        assert main(["demo", "--out", str(data.parent / "site")]) == 0
    return data


@pytest.fixture
def data_dir(demo_store, tmp_path, monkeypatch):
    copy = tmp_path / "d"
    shutil.copytree(demo_store, copy)
    monkeypatch.setenv("ARENA_DATA_DIR", str(copy))
    return copy


def _engine(data_dir):
    return store.open_engine(f"sqlite:///{data_dir / 'arena.db'}")


def test_check_has_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "usage: arena check" in out and "--run RUN_ID" in out


@pytest.mark.slow
def test_check_counts_and_stores_every_output_and_a_second_run_replaces(data_dir, capsys):
    assert main(["check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run_id"] is None and report["outputs"] == 11 and report["checked"] == 11
    assert report["problems"] == []
    assert report["flagged"] == {
        "unchanged": {"flagged": 3, "outputs": 9},  # identity, on each of the 3 edits
        "aspect": {"flagged": 0, "outputs": 2},  # only anime-scene asks for a shape (16:9)
        "faces": {"flagged": 0, "outputs": 6},  # the two portrait edits x 3 models
        "blank": {"flagged": 0, "outputs": 11},
    }
    assert {
        "model": "identity",
        "provider": "local",
        "check": "unchanged",
        "outputs": 3,
        "flagged": 3,
    } in report["rows"]
    frame = store.read_checks(_engine(data_dir))
    unchanged = frame[frame["check"] == "unchanged"]
    assert set(unchanged[unchanged["flagged"]]["model"]) == {"identity"}
    stored = len(frame)

    assert main(["check", "--run", "last"]) == 0
    out = capsys.readouterr().out
    run_id = store.get_run(_engine(data_dir), "last").id
    assert f"checked 11 outputs of run {run_id}: unchanged 3 of 9 flagged;" in out
    assert "unchanged   identity           local            3         3    100%" in out
    assert len(store.read_checks(_engine(data_dir))) == stored  # replaced, not added


@pytest.mark.slow
def test_a_corrupt_image_file_is_reported_and_the_others_are_still_checked(data_dir, capsys):
    outputs = votepath.successful_outputs(_engine(data_dir))
    night = next(
        o for o in outputs if o["model"] == "night-grade" and o["challenge"] == "night-sky"
    )
    (data_dir / night["path"]).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with _engine(data_dir).begin() as conn:  # the demo checked its outputs: start from none
        conn.execute(OutputCheck.__table__.delete())
    assert main(["check", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["outputs"] == 11 and report["checked"] == 10
    assert len(report["problems"]) == 1 and night["image_sha256"][:12] in report["problems"][0]
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arena: not checked: image ")
    assert "(night-sky)" in lines[0] and "output: " in lines[0]
    assert report["flagged"]["unchanged"] == {"flagged": 3, "outputs": 8}
    frame = store.read_checks(_engine(data_dir))
    assert night["image_sha256"] not in set(frame["image_sha256"])
    assert len(frame[frame["check"] == "blank"]) == 10


@pytest.mark.slow
def test_an_image_two_challenges_share_is_read_once_and_reported_once(data_dir, capsys):
    # night-grade of the astronaut answers bald-man and outfit-transfer with the same bytes.
    outputs = votepath.successful_outputs(_engine(data_dir))
    shared = [o for o in outputs if o["model"] == "night-grade" and o["challenge"] != "night-sky"]
    assert len({o["image_sha256"] for o in shared}) == 1 and len(shared) == 2
    (data_dir / shared[0]["path"]).write_bytes(b"GIF89a" + b"\0" * 10)
    assert main(["check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] == 9
    assert len(report["problems"]) == 1 and "(bald-man, outfit-transfer)" in report["problems"][0]


@pytest.mark.slow
def test_a_missing_image_file_is_reported_too(data_dir, capsys):
    outputs = votepath.successful_outputs(_engine(data_dir))
    card = next(o for o in outputs if o["model"] == "prompt-card")
    (data_dir / card["path"]).unlink()
    assert main(["check"]) == 0
    captured = capsys.readouterr()
    assert "checked 10 outputs of every run" in captured.out
    assert "1 image could not be checked" in captured.out
    assert "cannot be read: No such file or directory" in captured.err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["check", "--run", "nope"], "arena: error: --run nope: no run with id 'nope'"),
        (["check", "--run", "last"], "arena: error: --run last: the store has no runs yet"),
    ],
)
def test_a_bad_run_is_exit_2_with_one_line(argv, words, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "empty"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(words) and err.count("\n") == 1


def test_an_empty_store_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path / "empty"))
    assert main(["check"]) == 0
    assert "no successful outputs in the store" in capsys.readouterr().out


@pytest.mark.slow
def test_an_opencv_without_cascades_is_exit_2_with_one_line(data_dir, monkeypatch, capsys):
    import cv2

    monkeypatch.setattr(cv2.data, "haarcascades", str(data_dir / "no-cascades") + "/")
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arena: error: ") and "Haar cascade" in err and err.count("\n") == 1

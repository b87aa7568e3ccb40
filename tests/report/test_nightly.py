"""`arena nightly` and scripts/nightly: run then report, exit codes, the lock and the log per night."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arena import store
from arena.cli import main

from .conftest import ROOT

# Real runs of the local baseline; the scripts/nightly ones in subprocesses, building a venv.
pytestmark = pytest.mark.slow

CONFIG = """\
data_dir = "{data}"
challenges_dir = "{challenges}"
challenges = ["night-sky", "vintage-cafe-logo"]

[providers.local]
protocol = "local"

[models.identity]
tasks = ["edit"]
[models.identity.providers.local]
model_id = "identity"

[models.prompt-card]
tasks = ["text-to-image"]
[models.prompt-card.providers.local]
model_id = "prompt-card"
"""


@pytest.fixture
def nightly_config(tmp_path) -> Path:
    path = tmp_path / "arena.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data", challenges=ROOT / "challenges"))
    return path


def test_arena_nightly_runs_then_builds_the_report(nightly_config, tmp_path, capsys):
    assert main(["nightly", "--config", str(nightly_config), "--out", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    assert "completed; 2 attempts, 2 succeeded" in out
    assert (tmp_path / "site" / "models" / "identity.html").is_file()
    assert (tmp_path / "site" / "challenges" / "night-sky.html").is_file()
    engine = store.open_engine(f"sqlite:///{tmp_path / 'data' / 'arena.db'}")
    assert len(store.list_runs(engine)) == 1
    # the night's outputs were checked before the report, and the quality page shows them: the
    # identity edit of night-sky returned its source, the prompt card is no blank
    assert "checks:  checked 2 outputs of run " in out and "unchanged 1 of 1 flagged" in out
    checks = store.read_checks(engine)
    flagged = {(r.check, r.model) for r in checks.itertuples() if r.flagged}
    assert flagged == {("unchanged", "identity")}
    assert ("blank", "prompt-card") in {(r.check, r.model) for r in checks.itertuples()}
    page = (tmp_path / "site" / "quality.html").read_text()
    assert 'data-check="unchanged" data-model="identity"' in page


def test_a_night_whose_checks_cannot_run_still_builds_its_report(
    nightly_config, tmp_path, capsys, monkeypatch
):
    from arena.app import check
    from arena.checks import CheckSetupError

    def no_cascade(settings, run=None):
        raise CheckSetupError("OpenCV has no Haar cascades here")

    monkeypatch.setattr(check, "check_outputs", no_cascade)
    assert main(["nightly", "--config", str(nightly_config), "--out", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    assert "checks:  not run (OpenCV has no Haar cascades here)" in out
    assert (tmp_path / "site" / "quality.html").is_file()


def test_arena_nightly_that_cannot_run_exits_non_zero_with_the_reason_last(tmp_path, capsys):
    config = tmp_path / "arena.toml"
    config.write_text(CONFIG.format(data=tmp_path / "data", challenges=tmp_path / "no-such-dir"))
    assert main(["nightly", "--config", str(config), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("arena: error: nightly: the run could not start:")
    assert "challenge directory not found" in err[-1]
    assert not (tmp_path / "site" / "index.html").exists()


def _script(config: Path, out: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ARENA_CONFIG": str(config),
        "ARENA_REPORT_DIR": str(out),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    return subprocess.run(
        [str(ROOT / "scripts" / "nightly")], env=env, capture_output=True, text=True, timeout=120
    )


def test_scripts_nightly_twice_in_a_row_and_never_over_a_held_lock(nightly_config, tmp_path):
    data = tmp_path / "data"
    out = tmp_path / "site"
    first = _script(nightly_config, out)
    assert first.returncode == 0, first.stderr
    second = _script(nightly_config, out)
    assert second.returncode == 0, second.stderr
    logs = list((data / "logs").glob("nightly-*.log"))
    assert len(logs) == 1  # one file per night: both runs of tonight in it, in order
    log = logs[0].read_text()
    assert log.count("nightly started") == 2 and log.count("finished with exit code 0") == 2
    assert log.index("finished with exit code 0") < log.rindex("nightly started")  # no overlap
    assert log.count("report:  ") == 2 and (out / "index.html").is_file()
    engine = store.open_engine(f"sqlite:///{data / 'arena.db'}")
    assert len(store.list_runs(engine)) == 2
    # A night still running holds the lock: the next one does not start, and says why.
    with open(data / "nightly.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        third = _script(nightly_config, out)
    assert third.returncode == 75
    assert "another night still holds" in third.stderr.strip().splitlines()[-1]
    assert len(store.list_runs(engine)) == 2


def test_scripts_nightly_reports_why_a_night_failed_on_its_last_line(tmp_path):
    config = tmp_path / "arena.toml"
    config.write_text(CONFIG.format(data=tmp_path / "data", challenges=tmp_path / "missing"))
    result = _script(config, tmp_path / "site")
    assert result.returncode == 2
    assert "the run could not start" in result.stderr.strip().splitlines()[-1]

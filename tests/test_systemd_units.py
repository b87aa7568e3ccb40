"""The systemd units in scripts/systemd/: they start real arena commands with real flags, keep the
hardening they promise, and pass `systemd-analyze verify` with no complaint."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest

from arena.cli import build_parser
from arena.config import ProviderConfig, Settings

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "scripts" / "systemd"
OPERATIONS = ROOT / "docs" / "operations.md"
INSTALL_ROOT = Path("/srv/arena")  # where the units expect the checkout (and its .venv)
ARENA = INSTALL_ROOT / ".venv" / "bin" / "arena"
INSTANCES = ("last", "20261201-140213-9f3a")  # what arena-worker@ is started with
SERVE_KILL_AFTER_S = 30  # arena/app/workers.py: the parent kills a worker still running after 30 s
SYSTEM_UNITS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections, each a list of (key, value) in order (keys repeat, as systemd allows):
    comments start with # or ;, a trailing backslash joins the next line, and an empty
    assignment resets a list, which the readers below honour."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        if current is None or "=" not in line:
            raise ValueError(f"line {number}: not a section or key=value: {raw!r}")
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict, section: str, key: str) -> list[str]:
    """Every value of a key (space-separated lists split), as systemd reads them: '' resets."""
    found: list[str] = []
    for name, value in unit.get(section, []):
        if name != key:
            continue
        if value == "":
            found = []
        else:
            found.extend(value.split() if key not in ("ExecStart", "Environment") else [value])
    return found


def value(unit: dict, section: str, key: str) -> str | None:
    """The last value of a key, as systemd applies it to a single-valued setting."""
    found = [v for name, v in unit.get(section, []) if name == key]
    return found[-1] if found else None


def environment(unit: dict) -> dict[str, str]:
    env = {}
    for assignment in values(unit, "Service", "Environment"):
        for word in shlex.split(assignment):
            name, _, val = word.partition("=")
            env[name] = val
    return env


def seconds(span: str) -> float:
    """A systemd time span ('6min', '45s', '1min 30s', '90') in seconds."""
    per = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
    per["d"] = 86400
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span.strip())
    if not parts or re.sub(r"[\d.\sa-z]", "", span):
        raise ValueError(f"not a time span: {span!r}")
    for number, unit in parts:
        if unit not in per and unit:
            raise ValueError(f"not a time span: {span!r}")
        total += float(number) * per.get(unit, 1)
    return total


def specifiers(text: str, instance: str) -> str:
    """The specifiers the units use, filled in as systemd would for a system unit."""
    return text.replace("%i", instance).replace("%S", "/var/lib").replace("%%", "%")


def exec_argv(unit: dict, instance: str = "last") -> list[str]:
    commands = values(unit, "Service", "ExecStart")
    assert len(commands) == 1, f"one ExecStart, got {commands}"
    argv = shlex.split(specifiers(commands[0], instance))
    argv[0] = argv[0].lstrip("-@:+!")  # systemd's prefixes
    return argv


def arena_problem(args: list[str]) -> str | None:
    """None when `arena ARGS` parses with the real parser, else what the parser said."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as exc:
        return f"`arena {' '.join(args)}` (exit {exc.code}): {stderr.getvalue().strip()}"
    return None


def command_problem(argv: list[str]) -> str | None:
    """None when argv runs a real arena command with flags it has, else why not."""
    program = Path(argv[0])
    if program == ARENA:
        return arena_problem(argv[1:])
    if program.parent == INSTALL_ROOT / "scripts":  # a script of the checkout: arena nightly's args
        script = ROOT / "scripts" / program.name
        if not (script.is_file() and os.access(script, os.X_OK)):
            return f"{program}: no executable scripts/{program.name} in the checkout"
        if program.name == "nightly":
            return arena_problem(["nightly", *argv[1:]])
        return None
    return f"{program}: neither {ARENA} nor a script under {INSTALL_ROOT / 'scripts'}"


def unit_files(suffix: str = "") -> list[Path]:
    return sorted(
        p for p in UNITS.iterdir() if p.suffix in (".service", ".timer") and p.name.endswith(suffix)
    )


def load(path: Path) -> dict:
    return parse_unit(path.read_text(encoding="utf-8"))


SERVICES = unit_files(".service")


def test_the_units_are_there():
    names = {p.name for p in unit_files()}
    assert {
        "arena-worker@.service",
        "arena-serve.service",
        "arena-gateway.service",
        "arena-nightly.service",
        "arena-nightly.timer",
    } <= names


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_each_service_starts_a_real_arena_command(path):
    unit = load(path)
    for instance in INSTANCES if "@" in path.name else ("",):
        problem = command_problem(exec_argv(unit, instance))
        assert problem is None, f"{path.name}: ExecStart: {problem}"


def test_the_command_check_refuses_what_arena_does_not_have():
    assert command_problem([str(ARENA), "worker", "--runn", "last"]) is not None
    assert command_problem([str(ARENA), "serve", "--port", "eighty"]) is not None
    assert command_problem([str(ARENA), "nosuchcommand"]) is not None
    assert (
        command_problem([str(INSTALL_ROOT / "scripts" / "nightly"), "--max-cost", "x"]) is not None
    )
    assert command_problem([str(INSTALL_ROOT / "scripts" / "nosuchscript")]) is not None
    assert command_problem(["/usr/bin/arena", "serve"]) is not None
    assert command_problem([str(ARENA), "serve", "--host", "0.0.0.0", "--workers", "2"]) is None


def test_the_worker_template_runs_its_instance():
    unit = load(UNITS / "arena-worker@.service")
    (command,) = values(unit, "Service", "ExecStart")
    assert "%I" not in command, "%I turns a run id's dashes into slashes: use %i"
    for instance in INSTANCES:
        argv = exec_argv(unit, instance)
        assert argv[1] == "worker" and argv[argv.index("--run") + 1] == instance


def test_worker_waits_long_enough_to_stop():
    """SIGTERM, then room for a request in flight and a failing store before systemd kills it."""
    unit = load(UNITS / "arena-worker@.service")
    defaults = {f.name: f.default for f in fields(ProviderConfig)}
    store_retry_s = {f.name: f.default for f in fields(Settings)}["store_retry_s"]
    assert value(unit, "Service", "KillSignal") == "SIGTERM"
    stop_s = seconds(value(unit, "Service", "TimeoutStopSec"))
    assert stop_s >= defaults["timeout_s"] + store_retry_s
    assert value(unit, "Service", "Restart") == "on-failure"


@pytest.mark.parametrize("name", ["arena-serve.service", "arena-gateway.service"])
def test_servers_outlast_their_own_shutdown(name):
    """The parent passes SIGTERM to its workers and kills them after 30 s: systemd waits longer,
    and signals only the parent."""
    unit = load(UNITS / name)
    assert value(unit, "Service", "KillMode") == "mixed"
    assert seconds(value(unit, "Service", "TimeoutStopSec")) > SERVE_KILL_AFTER_S


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_each_service_is_hardened_and_can_write_its_data_dir(path):
    unit = load(path)
    service = dict(unit["Service"])
    assert service.get("User") not in (None, "", "root", "0")
    assert service.get("NoNewPrivileges") == "yes"
    assert service.get("ProtectSystem") == "strict"
    assert service.get("PrivateTmp") == "yes"
    assert values(unit, "Service", "EnvironmentFile"), "keys come from an EnvironmentFile"
    env = environment(unit)
    data_dir = env.get("ARENA_DATA_DIR")
    assert data_dir, "ARENA_DATA_DIR names the data dir the unit may write"
    writable = [p.lstrip("-") for p in values(unit, "Service", "ReadWritePaths")]
    assert data_dir in writable
    assert data_dir in values(unit, "Unit", "RequiresMountsFor")
    if "ARENA_REPORT_DIR" in env:
        assert env["ARENA_REPORT_DIR"] in writable
    if "TMPDIR" in env:  # the spill's fallback must outlive the unit: not the private /tmp
        state = [f"/var/lib/{d}" for d in values(unit, "Service", "StateDirectory")]
        assert env["TMPDIR"] in state + writable
    assert "143" in values(unit, "Service", "SuccessExitStatus"), (
        "a stop (SIGTERM) is not a failure"
    )


def test_the_timer_starts_the_nightly_service():
    timer = load(UNITS / "arena-nightly.timer")
    target = value(timer, "Timer", "Unit") or "arena-nightly.service"
    assert (UNITS / target).is_file()
    assert value(timer, "Timer", "OnCalendar")


def test_operations_docs_name_every_unit():
    text = OPERATIONS.read_text(encoding="utf-8")
    missing = [p.name for p in UNITS.iterdir() if p.name not in text]
    assert not missing, f"docs/operations.md does not mention {missing}"


def test_the_parser_reads_what_systemd_reads():
    unit = parse_unit(
        "[Service]\n# a comment\n; another\nEnvironment=A=1\nEnvironment=B=2 C=3\n"
        "ReadWritePaths=/a\nReadWritePaths=\nReadWritePaths=/b /c\n"
        "ExecStart=/x \\\n  --flag y\n"
    )
    assert environment(unit) == {"A": "1", "B": "2", "C": "3"}
    assert values(unit, "Service", "ReadWritePaths") == ["/b", "/c"]
    assert values(unit, "Service", "ExecStart")[0].split() == ["/x", "--flag", "y"]
    assert seconds("6min") == 360 and seconds("1min 30s") == 90 and seconds("45") == 45
    with pytest.raises(ValueError):
        seconds("six minutes")
    with pytest.raises(ValueError):
        parse_unit("[Service]\nnot an assignment\n")


# --- systemd's own reading -----------------------------------------------------------------------


def _system_units() -> Path | None:
    return next((d for d in SYSTEM_UNITS if (d / "sysinit.target").exists()), None)


needs_systemd = pytest.mark.skipif(
    not shutil.which("systemd-analyze") or _system_units() is None,
    reason="systemd-analyze and systemd's own units are not installed here",
)


def _verify(tmp_path: Path, units: dict[str, str]) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` of these units in a root of their own, where the programs they
    start exist (stubs) and systemd's own units are a copy of this machine's."""
    root = tmp_path / "root"
    shutil.copytree(_system_units(), root / "usr/lib/systemd/system", symlinks=True)
    installed = root / "etc/systemd/system"
    installed.mkdir(parents=True)
    for name, text in units.items():
        (installed / name).write_text(text, encoding="utf-8")
        unit = parse_unit(text)
        for instance in INSTANCES[:1] if "@" in name else ("",):
            for command in values(unit, "Service", "ExecStart"):
                program = root / shlex.split(specifiers(command, instance))[0].lstrip("-@:+!/")
                program.parent.mkdir(parents=True, exist_ok=True)
                program.write_text("#!/bin/sh\n")
                program.chmod(0o755)
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}"]
        + [f"/etc/systemd/system/{name}" for name in units],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_systemd
def test_systemd_analyze_verify_finds_nothing(tmp_path):
    units = {p.name: p.read_text(encoding="utf-8") for p in unit_files()}
    result = _verify(tmp_path, units)
    said = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not said, said


@needs_systemd
def test_systemd_analyze_verify_catches_a_bad_setting(tmp_path):
    """The check above can fail: a misspelt value is reported (verify still exits 0 for it)."""
    text = (UNITS / "arena-serve.service").read_text(encoding="utf-8")
    result = _verify(
        tmp_path, {"arena-serve.service": text.replace("KillMode=mixed", "KillMode=mixd")}
    )
    assert "mixd" in result.stdout + result.stderr

"""Server processes for tests: start a command, wait until its health URL answers, and fail with the
end of its output when it does not; and waiting for any other condition with the same patience."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

# A healthy start takes a few seconds; a machine running several suites on two cores has been seen
# to take more than 30 s before a two-worker PostgreSQL server answered. A deadline only bounds how
# long a broken server keeps the suite waiting, so it is generous.
READY_WITHIN_S = 120.0
POLL_S = 0.1
PROBE_TIMEOUT_S = 5.0  # one health request; a loaded server may be slow to answer, not down
TAIL_LINES = 40


def wait_until(
    condition: Callable[[], object], *, what: str, within_s: float = READY_WITHIN_S
) -> None:
    """Poll condition() until it is true; fail the test, saying `what` was awaited, if within_s passes first."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {within_s:g} s for {what}", pytrace=False)
        time.sleep(POLL_S)


def start_server(
    command: Sequence[str],
    *,
    health_url: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_within_s: float = READY_WITHIN_S,
) -> subprocess.Popen:
    """Start `command` (stdout and stderr into log_path) and return it once health_url answers 200.
    If it exits first, or ready_within_s passes, it is killed and the test fails with its log's tail."""
    with open(log_path, "w") as log:  # the child keeps its own descriptor
        # A session of its own, so that stop() can end the server's workers with it even when
        # the server itself dies or must be killed (a killed parent would orphan them).
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + ready_within_s
    with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
        while not _answers(client, health_url):
            if proc.poll() is not None:
                problem = f"exited with status {proc.returncode} before {health_url} answered"
            elif time.monotonic() > deadline:
                problem = f"did not answer 200 on {health_url} within {ready_within_s:g} s"
            else:
                time.sleep(POLL_S)
                continue
            stop(proc)
            pytest.fail(
                f"{' '.join(command)}\n{problem}; the end of its output:\n{tail(log_path)}",
                pytrace=False,
            )
    return proc


def stop(proc: subprocess.Popen, within_s: float = 20.0) -> None:
    """Terminate a server process and reap it; kill it if it has not exited within_s.

    Whatever is left of its session afterwards (workers of a server that died) is killed too.
    """
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no output: {exc})"


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False  # not listening yet, or too busy to answer in time

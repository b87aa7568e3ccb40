"""Every upstream attempt written to the attempts table (source "traffic"), in batches, off the event loop.

The rows are the harness's (harness.outcome_fields: the same columns and definitions) with
run_id "traffic", no job, challenge "", the gateway key's name and the request's id. The writer is
the harness's StoreWriter: its own thread, batches, and a store outage held and retried, then
spilled under the data dir (a file per process); a reply never waits for it and never fails
because of it. The spills are replayed when a gateway starts. Prompts and output images (through
the harness's image store) are kept only with [gateway] keep_outputs; an output's sha256, size and
format are recorded either way.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from arena.config import Route
from arena.harness import AttemptRecord, CallResult, outcome_fields
from arena.store import StoreWriter, replay_spill
from arena.store.spill import spill_paths

log = logging.getLogger("arena.gateway")
TRAFFIC_RUN_ID = "traffic"
SPILL_PREFIX = "traffic-"  # <data_dir>/spill/traffic-<pid>.jsonl: what a store outage left


class TrafficLog:
    """submit() one attempt per upstream call; close() flushes (blocking: run it in a thread)."""

    def __init__(
        self, engine, data_dir: Path, *, keep_outputs: bool, retry_s: float = 60.0
    ) -> None:
        self.engine = engine
        self.data_dir = Path(data_dir)
        self.keep_outputs = keep_outputs
        self.retry_s = retry_s
        self.writer: StoreWriter | None = None

    def start(self) -> None:
        """Replay what earlier gateways spilled, then start the writer's thread."""
        try:
            replayed = self.replay()
            if replayed:
                log.warning(
                    "gateway: saved %d traffic attempts an earlier gateway spilled", replayed
                )
        except Exception as exc:  # the store is down: the spill stays for the next start
            log.warning("gateway: could not replay the traffic spill yet: %s", exc)
        # A spill file per process: workers sharing a data dir never append to one another's.
        self.writer = StoreWriter(
            self.engine, self.data_dir, run_id=f"{SPILL_PREFIX}{os.getpid()}", retry_s=self.retry_s
        )

    def replay(self) -> int:
        """Save every traffic spill file found, each claimed first by an atomic rename so that two
        workers starting together never save one twice; returns how many attempts were saved."""
        replayed = 0
        for directory in {path.parent for path in spill_paths(self.data_dir, "x")}:
            for path in sorted(directory.glob(f"{SPILL_PREFIX}*.jsonl")):
                claimed = path.with_name(f"{SPILL_PREFIX}replay-{secrets.token_hex(6)}.jsonl")
                try:
                    os.rename(path, claimed)
                except OSError:
                    continue  # another worker claimed it
                replayed += replay_spill(self.engine, self.data_dir, claimed.stem)
        return replayed

    def record(
        self,
        route: Route,
        task: str,
        result: CallResult,
        *,
        number: int,
        limiter_wait_ms: float,
        key_name: str | None,
        request_id: str,
        prompt: str | None = None,
    ) -> AttemptRecord:
        """The attempt's row, handed to the writer (never blocks); the prompt and the image are
        kept only with keep_outputs."""
        attempt = AttemptRecord(
            run_id=TRAFFIC_RUN_ID,
            job_id=None,
            attempt=number,
            warmup=False,
            challenge="",
            task=task,
            category="",
            model=route.model,
            provider=route.provider,
            limiter_wait_ms=limiter_wait_ms,
            source="traffic",
            gateway_key=key_name,
            gateway_request_id=request_id,
            prompt=prompt if self.keep_outputs else None,
            **outcome_fields(result),
        )
        if self.writer is not None:
            keep = self.keep_outputs and result.image is not None
            self.writer.submit(
                attempt, result.image if keep else None, result.info if keep else None, False
            )
        return attempt

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

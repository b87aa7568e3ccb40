"""Process-wide knobs (garbage collector, thread switch interval, malloc arenas) as named context managers.

Each knob changes the whole process, so no library module turns one: only the command line
(`arena.cli`), the servers' start-up (`arena.web`'s lifespan and worker processes) and processes
arena starts for itself (the report's vote worker) apply them, each around the work it tunes.
import-linter's "tuning is applied at the edges" contract in pyproject.toml keeps it that way.
Benchmarks in scripts/bench apply the same knobs as the command they measure.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from collections.abc import Iterator

TIMING_SWITCH_INTERVAL_S = 0.0005  # 0.5 ms: the event loop gets the GIL back soon after a read


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect once, then keep everything alive now out of the cyclic collector's passes.

    Modules, config and pools live as long as a server or a run; scanning them made each full
    collection stop the event loop for 20-70 ms, a few times a second. Frozen objects are still
    freed by reference counting.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """How often a thread holding the GIL is asked to let another run (default 5 ms)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection while millions of short-lived rows are made (they form no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


M_ARENA_MAX = -8  # glibc's mallopt parameter number


@contextlib.contextmanager
def one_malloc_arena() -> Iterator[None]:
    """Ask glibc to keep one malloc arena for every thread (a no-op elsewhere).

    glibc gives each thread an arena of its own and keeps what the thread freed there: the
    ratings' bootstrap threads left ~90 MB behind that later steps did not reuse.
    """
    libc = None
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, 1)
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(M_ARENA_MAX, 0)  # 0: glibc's default (8 per core)


@contextlib.contextmanager
def timed_run() -> Iterator[None]:
    """The knobs a benchmark run is measured under: a short switch interval and a frozen heap.

    The event loop waits on sockets (releasing the GIL) while the writer and image-check threads
    work; with the default 5 ms interval a reply's wake-up could wait that long for the GIL, and a
    full collection over the run's plan stalled the loop for tens of milliseconds.
    """
    with switch_interval(TIMING_SWITCH_INTERVAL_S), frozen_heap():
        yield

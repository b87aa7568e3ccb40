"""SIGTERM handled as Ctrl-C while a run executes, and the memory that it came (for exit code 143).

`systemctl stop` and `kill` send SIGTERM; by default it ends the process at once, leaving the run
`running` and the results in the writer's queue unsaved. While a run executes, SIGTERM does what
Ctrl-C does: it goes to the SIGINT handler in place (asyncio.run's, which cancels the run so it
can end cleanly, or Python's, which raises KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import signal

_terminated = False


def terminated() -> bool:
    """Whether a SIGTERM came while a run executed."""
    return _terminated


def _on_sigterm(signum, frame) -> None:
    global _terminated
    _terminated = True
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored (a background job): SIGTERM still stops the run
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_ctrl_c():
    """Within the block, SIGTERM stops the run as Ctrl-C would."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

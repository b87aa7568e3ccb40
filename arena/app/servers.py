"""The processes of `arena serve --workers N` and `arena gateway --workers N`: each worker listens on a
SO_REUSEPORT socket of its own and builds its app from a factory named by a dotted path
("arena.web:app_from_env", "arena.gateway:app_from_env").

uvicorn's own `--workers` shares one listening socket among its processes, and whichever process
wakes first accepts every connection waiting in the backlog (up to 100 per wake-up). Long-lived
keep-alive connections then stay where they landed: in the voting benchmark one of two workers
held nearly all 64 connections and the other sat idle. With one SO_REUSEPORT socket per worker the
kernel spreads new connections over the workers by a hash of their addresses (Linux; the way
nginx's `reuseport` and gunicorn's `--reuse-port` do).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import signal
import socket
import time

from arena.errors import ArenaError

log = logging.getLogger("arena.app")
RESTART_BACKOFF_S = 1.0


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that other SO_REUSEPORT sockets of this user may share."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def pick_port(host: str, port: int) -> int:
    """The port the workers will share: `port`, checked to be free for them, or a free one for port 0."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ArenaError(
            "--workers above 1 needs SO_REUSEPORT (Linux or a BSD); run one worker here"
        )
    try:
        with reuseport_socket(host, port) as probe:
            return probe.getsockname()[1]
    except OSError as exc:
        raise ArenaError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def load_factory(path: str):
    """The callable a dotted path "package.module:function" names (a worker's app factory)."""
    module_name, _, name = path.partition(":")
    if not module_name or not name:
        raise ArenaError(f"app factory {path!r}: expected 'package.module:function'")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ArenaError(f"app factory {path!r} cannot load: {exc}") from None


def _run_worker(
    host: str, port: int, uvicorn_options: dict, factory: str, config_path: str | None
) -> None:
    """One worker process: its own socket, then uvicorn serving the app the factory builds."""
    import uvicorn

    sock = reuseport_socket(host, port)
    config = uvicorn.Config(load_factory(factory)(config_path), **uvicorn_options)
    uvicorn.Server(config).run(sockets=[sock])


def serve_workers(
    host: str,
    port: int,
    workers: int,
    uvicorn_options: dict,
    config_path: str | None = None,
    *,
    factory: str = "arena.web:app_from_env",
    name: str = "arena-web",
) -> None:
    """Start `workers` processes on host:port, each serving factory(config_path), and keep them
    running until Ctrl-C or SIGTERM.

    A worker that dies is started again (after RESTART_BACKOFF_S); on shutdown every worker gets
    SIGTERM, which uvicorn answers by finishing the requests in flight.
    """
    port = pick_port(host, port)
    ctx = multiprocessing.get_context(
        "spawn"
    )  # a fresh interpreter: no event loop or DB connection inherited

    def start(index: int):
        proc = ctx.Process(
            target=_run_worker,
            args=(host, port, uvicorn_options, factory, config_path),
            name=f"{name}-{index}",
        )
        proc.start()
        return proc

    procs = [start(i) for i in range(workers)]
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping:
            for index, proc in enumerate(procs):
                if not proc.is_alive() and not stopping:
                    log.warning(
                        "%s worker %s exited with %s; starting it again",
                        name,
                        proc.pid,
                        proc.exitcode,
                    )
                    time.sleep(RESTART_BACKOFF_S)
                    procs[index] = start(index)
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for proc in procs:
            if proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + 30
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()

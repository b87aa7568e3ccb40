"""The built-in `local` baseline provider: honest baseline models behind an OpenAI-images-compatible server on loopback.

adapter.py (the `local` protocol's facts) is light; the server and its models load on first use,
so reading the registry's facts does not import the image stack.
"""

from __future__ import annotations

import contextlib

__all__ = ["LocalProvider", "LocalServer", "free_port"]


@contextlib.contextmanager
def started_local_providers(settings):
    """Start an in-process local provider for every `local` provider without a base_url; yields
    {provider name: base URL} (the runs, the probe and the gateway each start theirs so)."""
    from arena.providers.local.server import LocalServer

    with contextlib.ExitStack() as stack:
        urls = {}
        for name, provider in settings.providers.items():
            if provider.protocol == "local" and not provider.base_url:
                server = stack.enter_context(LocalServer())
                urls[name] = server.base_url
        yield urls


def __getattr__(name: str):
    if name in __all__:
        from arena.providers.local import server

        return getattr(server, name)
    raise AttributeError(f"module 'arena.providers.local' has no attribute {name!r}")

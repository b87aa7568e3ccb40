"""The built-in `local` baseline provider: honest baseline models behind an OpenAI-images-compatible server on loopback.

adapter.py (the `local` protocol's facts) is light; the server and its models load on first use,
so reading the registry's facts does not import the image stack.
"""

from __future__ import annotations

__all__ = ["LocalProvider", "LocalServer", "free_port"]


def __getattr__(name: str):
    if name in __all__:
        from arena.providers.local import server

        return getattr(server, name)
    raise AttributeError(f"module 'arena.providers.local' has no attribute {name!r}")

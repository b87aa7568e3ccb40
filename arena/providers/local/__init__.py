"""The built-in `local` baseline provider: honest baseline models behind an OpenAI-images-compatible server on loopback."""

from arena.providers.local.server import LocalProvider, LocalServer, free_port

__all__ = ["LocalProvider", "LocalServer", "free_port"]

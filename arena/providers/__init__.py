"""Adapter registry: built-in protocols plus third-party ones from the `arena.providers` entry points."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from arena.errors import ConfigError

# protocol -> "module:Class"; imported lazily so one broken adapter cannot break the others.
BUILTIN = {
    "openai": "arena.providers.openai:OpenAIAdapter",
    "local": "arena.providers.openai:OpenAIAdapter",  # the local server speaks the OpenAI protocol
    "xai": "arena.providers.xai:XAIAdapter",
    "fal": "arena.providers.fal:FalAdapter",
    "bfl": "arena.providers.bfl:BFLAdapter",
    "replicate": "arena.providers.replicate:ReplicateAdapter",
    "gemini": "arena.providers.gemini:GeminiAdapter",
}


def plugin_protocols() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="arena.providers")}


def known_protocols() -> set[str]:
    return set(BUILTIN) | set(plugin_protocols())


def adapter_class(protocol: str):
    """The Adapter class for a protocol name."""
    target = BUILTIN.get(protocol) or plugin_protocols().get(protocol)
    if target is None:
        raise ConfigError(
            "providers",
            "protocol",
            f"no adapter for protocol {protocol!r} (known: {', '.join(sorted(BUILTIN))})",
        )
    module_name, _, class_name = target.partition(":")
    return getattr(import_module(module_name), class_name)

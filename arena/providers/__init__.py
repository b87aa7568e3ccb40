"""Provider adapters; the registry (registry.py) is the one list of them, re-exported here."""

from arena.providers.registry import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    adapter_class,
    facts_of,
    known_protocols,
    plugin_protocols,
    protocol_facts,
    route_capabilities,
)

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "adapter_class",
    "facts_of",
    "known_protocols",
    "plugin_protocols",
    "protocol_facts",
    "route_capabilities",
]

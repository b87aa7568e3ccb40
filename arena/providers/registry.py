"""The one list of adapters: built-in protocols plus third-party ones from the `arena.providers` entry points.

Everything that needs a protocol's facts (config, normalization, emulation, `arena providers`)
reads them from the adapter classes listed here, so a plugin is as first-class as a built-in.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from arena.config import ProtocolFacts
from arena.errors import ConfigError
from arena.params import SHAPE_FORMS, Handling, parse_capabilities

ENTRY_POINT_GROUP = "arena.providers"

# protocol -> "module:Class"; imported when first needed.
BUILTIN = {
    "openai": "arena.providers.openai:OpenAIAdapter",
    "local": "arena.providers.local.adapter:LocalAdapter",
    "xai": "arena.providers.xai:XAIAdapter",
    "fal": "arena.providers.fal:FalAdapter",
    "bfl": "arena.providers.bfl:BFLAdapter",
    "replicate": "arena.providers.replicate:ReplicateAdapter",
    "gemini": "arena.providers.gemini:GeminiAdapter",
}


def plugin_protocols() -> dict[str, str]:
    """protocol -> "module:Class" for every installed plugin (a built-in name cannot be taken)."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {name: target for name, target in found.items() if name not in BUILTIN}


def targets() -> dict[str, str]:
    """Every protocol, built-ins first."""
    return {**BUILTIN, **plugin_protocols()}


def known_protocols() -> set[str]:
    return set(targets())


def _load(protocol: str, target: str):
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            "providers", "protocol", f"the adapter for {protocol!r} ({target}) cannot load: {exc}"
        ) from None
    _check_facts(cls, protocol, target)
    return cls


def _check_facts(cls, protocol: str, target: str) -> None:
    """A plugin's facts fail here, naming the class, rather than deep inside a run."""

    def fail(problem: str):
        raise ConfigError("providers", "protocol", f"{target}: {problem}")

    if getattr(cls, "protocol", None) != protocol:
        fail(f"declares protocol {getattr(cls, 'protocol', None)!r}, registered as {protocol!r}")
    if cls.shape_form not in SHAPE_FORMS:
        fail(f"shape_form {cls.shape_form!r} is not one of {SHAPE_FORMS}")
    if not all(isinstance(h, Handling) for h in cls.parameters.values()):
        fail("parameters must map each parameter to an arena.params.Handling")
    parse_capabilities(cls.default_capabilities, f"{target}.default_capabilities")


def adapter_class(protocol: str):
    """The Adapter class for a protocol name."""
    target = targets().get(protocol)
    if target is None:
        raise ConfigError(
            "providers",
            "protocol",
            f"no adapter for protocol {protocol!r} (known: {', '.join(sorted(targets()))})",
        )
    return _load(protocol, target)


def facts_of(cls) -> ProtocolFacts:
    """What config needs from an adapter class."""
    return ProtocolFacts(
        needs_key=cls.needs_key,
        baseline=cls.baseline,
        base_url_required=cls.default_base_url is None,
        parameters=dict(cls.parameters),
    )


def protocol_facts() -> dict[str, ProtocolFacts]:
    """Every protocol's facts, for config.load_settings / parse_settings / demo_settings.

    A plugin that cannot load is left out (a config naming it then says the protocol is unknown),
    so one broken plugin cannot stop the others; adapter_class() names its import error.
    """
    facts = {name: facts_of(adapter_class(name)) for name in BUILTIN}
    for name, target in plugin_protocols().items():
        try:
            facts[name] = facts_of(_load(name, target))
        except ConfigError:
            continue
    return facts


def route_capabilities(capabilities: dict | None, adapter, model_id: str | None = None) -> dict:
    """The capability table that applies to a route: its own, else its adapter's default (for
    `model_id`, when the adapter says some models take less)."""
    if capabilities:
        return capabilities
    return adapter.default_capabilities if model_id is None else adapter.capabilities_for(model_id)

"""What each configured provider serves: models, capability tables, prices, and how each parameter is handled."""

from __future__ import annotations

import os

from arena.config import Settings
from arena.params import PROTOCOLS_SHAPE_NOTE, handling_table, parse_capabilities
from arena.providers import adapter_class, route_capabilities


def provider_catalog(settings: Settings) -> list[dict]:
    """One plain record per provider, in config order; capability tables are validated on the way."""
    catalog = []
    for name, provider in settings.providers.items():
        adapter = adapter_class(provider.protocol)
        models = []
        for model in settings.models.values():
            for route in model.routes:
                if route.provider != name:
                    continue
                applied = route_capabilities(route.capabilities, adapter, route.model_id)
                caps = parse_capabilities(
                    applied, f"{settings.source}: models.{model.name}.providers.{name}"
                )
                models.append(
                    {
                        "model": model.name,
                        "model_id": route.model_id,
                        "tasks": list(model.tasks),
                        "baseline": model.baseline,
                        "price_usd": route.price_usd,
                        "price_usd_by_tier": dict(route.price_usd_by_tier),
                        "starting_price_usd": route.starting_price_usd,
                        "capabilities": dict(route.capabilities),
                        # The adapter's table, when the route declares none and it applies instead.
                        "default_capabilities": None if route.capabilities else dict(applied),
                        "takes": caps.form(adapter.shape_form),
                    }
                )
        prices = [m["starting_price_usd"] for m in models if m["starting_price_usd"] is not None]
        catalog.append(
            {
                "name": name,
                "protocol": provider.protocol,
                "base_url": provider.base_url or None,
                "baseline": provider.baseline,
                "api_key_env": provider.api_key_env,
                # Whether the key is present, never its value.
                "api_key_set": bool(provider.api_key_env and os.environ.get(provider.api_key_env)),
                "rate_limit_per_s": provider.rate_limit_per_s,
                "max_concurrency": provider.max_concurrency,
                "timeout_s": provider.timeout_s,
                "starting_price_usd": min(prices) if prices else None,
                "models": models,
                "parameters": {
                    param: {"kind": h.kind, "sent_as": h.sent_as, "note": h.note}
                    for param, h in handling_table(adapter.parameters).items()
                },
            }
        )
    return catalog


def _price(value: float | None) -> str:
    if value is None:
        return "price not set"
    return "free" if value == 0 else f"${value:.4g}/image"


def _capabilities(model: dict) -> str:
    caps = model["capabilities"] or model["default_capabilities"]
    if not caps:
        return f"no capability table: {PROTOCOLS_SHAPE_NOTE[model['takes']]}"
    parts = []
    for key, value in caps.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}: {shown}")
    default = "" if model["capabilities"] else "the protocol's default table: "
    return default + "; ".join(parts)


def format_catalog(catalog: list[dict]) -> str:
    """The catalog as text for a terminal."""
    lines = []
    for provider in catalog:
        where = provider["base_url"] or "started on loopback on demand"
        key = provider["api_key_env"]
        key_text = (
            f"key ${key} ({'set' if provider['api_key_set'] else 'NOT set'})" if key else "no key"
        )
        label = " [baseline]" if provider["baseline"] else ""
        starting = provider["starting_price_usd"]
        lines.append(
            f"{provider['name']}{label}: protocol {provider['protocol']}, {where}, {key_text}"
        )
        lines.append(
            f"  limits: {provider['rate_limit_per_s']:g} req/s, {provider['max_concurrency']} at once, "
            f"timeout {provider['timeout_s']:g} s; prices starting from {_price(starting)}"
        )
        lines.append("  models:")
        for model in provider["models"]:
            tiers = model["price_usd_by_tier"]
            tier_text = (
                f" ({', '.join(f'{t} {_price(p)}' for t, p in tiers.items())})" if tiers else ""
            )
            lines.append(
                f"    {model['model']} (id {model['model_id']}; {', '.join(model['tasks'])}): "
                f"from {_price(model['starting_price_usd'])}{tier_text}"
            )
            lines.append(f"      takes {model['takes']}: {_capabilities(model)}")
        lines.append("  parameters:")
        for param, handling in provider["parameters"].items():
            sent = (
                f" -> {handling['sent_as']}"
                if handling["sent_as"] and handling["sent_as"] != param
                else ""
            )
            note = f" ({handling['note']})" if handling["note"] else ""
            lines.append(f"    {param:<19} {handling['kind']}{sent}{note}")
        lines.append(f"    {'anything else':<19} passthrough (sent as given)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

"""What each configured provider serves: models, capability tables, prices, and how each parameter is handled."""

from __future__ import annotations

import os

from arena.config import Settings
from arena.params import handling_table, parse_capabilities
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
                        "params": dict(route.params),
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

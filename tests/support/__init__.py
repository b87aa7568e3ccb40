"""Helpers the tests share: config files, loopback servers, server processes, and images."""

from __future__ import annotations

from .config import write_challenges, write_config, write_slow_config

__all__ = ["write_challenges", "write_config", "write_slow_config"]

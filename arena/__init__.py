"""arena: benchmark image generation and editing models across providers, rank them by blind votes."""

__version__ = "0.1.0"

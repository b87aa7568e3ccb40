"""Adapter tests against loopback provider servers (a package, so its conftest does not shadow tests/conftest.py)."""

"""Judges: vision-language models that vote on pairs of outputs, one client per protocol."""

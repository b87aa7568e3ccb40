"""Checks that need no model: unchanged edits, wrong aspect ratios, lost faces, blank images."""

#!/usr/bin/env bash
# Temporary: builds README.md from the sections written side by side; removed once merged.
cd "$(dirname "$0")/.."
{ cat docs/_head.md; for f in providers params ratings voting report; do [ -f docs/$f.md ] && { cat docs/$f.md; echo; }; done; cat docs/_tail.md; } > README.md

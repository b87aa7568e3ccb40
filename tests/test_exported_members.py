"""The packages' public faces are truthful: __all__ lists what each offers, and nothing else."""

from __future__ import annotations

import types

import pytest

import arena.ratings
import arena.store


@pytest.mark.parametrize("package", [arena.ratings, arena.store], ids=lambda p: p.__name__)
def test_all_lists_every_public_name_and_only_those(package):
    exported = package.__all__
    assert len(set(exported)) == len(exported), "a name is listed twice"
    assert [name for name in exported if name.startswith("_")] == []
    assert [name for name in exported if not hasattr(package, name)] == [], "stale names"
    offered = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert offered - set(exported) == set(), "imported into the package but not in __all__"

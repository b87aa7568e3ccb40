"""`arena db`: where the configured database's schema stands, its upgrade, the revisions there are."""

from __future__ import annotations

from arena import store
from arena.config import Settings
from arena.store import migrations
from arena.store.migrations import Revision, SchemaState


def database_state(settings: Settings) -> SchemaState:
    """The configured database's revision beside the code's; changes nothing."""
    engine = store.open_engine(settings.database_url, create=False)
    try:
        return migrations.schema_state(engine)
    finally:
        engine.dispose()


def upgrade_database(settings: Settings) -> tuple[SchemaState, SchemaState]:
    """The configured database upgraded to the newest revision: its state before and after."""
    engine = store.open_engine(settings.database_url, create=False)
    try:
        return migrations.upgrade(engine)
    finally:
        engine.dispose()


def schema_history() -> list[Revision]:
    """Every revision the code has, oldest first (the last is the head)."""
    return migrations.revisions()

"""`arena db`: where the configured database's schema stands, its upgrade, the revisions there are."""

from __future__ import annotations

from pathlib import Path

from arena import store
from arena.config import Settings
from arena.errors import StoreError
from arena.store import migrations
from arena.store.migrations import Revision, SchemaState


def database_state(settings: Settings) -> SchemaState:
    """The configured database's revision beside the code's; changes nothing."""
    engine = store.open_engine(settings.database_url, create=False)
    try:
        return migrations.schema_state(engine)
    finally:
        engine.dispose()


def check_database(settings: Settings) -> SchemaState | None:
    """The configured database reached and its schema read, as `arena run` would open it; changes
    nothing. None for a SQLite file that does not exist yet (a run creates it)."""
    url = store.engine_url(settings.database_url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).exists():
            return None
    state = database_state(settings)
    if state.status == "newer":
        raise StoreError(
            f"the database at {settings.database_url.rsplit('@', 1)[-1]} is at schema revision "
            f"{state.revision}, which this arena does not know (its newest is {state.head}): "
            "a newer arena has upgraded it; upgrade arena to use it"
        )
    return state


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

"""Engines on new, empty databases, one per test (the store tests change the schema itself)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from ledger.store.engine import create_engine_for
from tests.databases import postgres_database, sqlite_database

BACKENDS = ("postgresql", "sqlite")


@contextmanager
def fresh_engine(backend: str, directory: Path):
    """An engine on a new empty database of `backend`; disposed and dropped afterwards."""
    database = postgres_database() if backend == "postgresql" else sqlite_database(directory)
    with database as url:
        engine: Engine = create_engine_for(url, pool_size=2)
        try:
            yield engine
        finally:
            engine.dispose()

"""Runs the Alembic migrations in migrations/ against an engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from ledger.store import prepared
from ledger.store.engine import without_session_statement_timeout

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    # Alembic's Config is a ConfigParser with %-interpolation: a percent-encoded URL (a
    # password with an @, a socket directory in ?host=%2F...) must have its % doubled, or
    # set_main_option fails with "invalid interpolation syntax". get_main_option undoes it.
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step, revision: str) -> None:
    """Runs step (Alembic's upgrade or downgrade) on one connection, each migration in a
    transaction of its own (migrations/env.py), without the per-statement limit: an index
    built over a big ledger takes as long as the ledger is big."""
    config = alembic_config(engine)
    with engine.connect() as connection:
        without_session_statement_timeout(connection)
        try:
            config.attributes["connection"] = connection
            step(config, revision)
        finally:
            connection.invalidate()  # the session without a limit is closed, not pooled
    prepared.forget_everywhere()  # statements prepared against the old schema


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

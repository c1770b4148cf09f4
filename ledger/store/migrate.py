"""Runs the Alembic migrations in migrations/ against an engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from ledger.store import prepared
from ledger.store.engine import without_statement_timeout

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        without_statement_timeout(connection)  # an index built over a big ledger takes its time
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    prepared.forget_everywhere()  # statements prepared against the old schema


def downgrade(engine: Engine, revision: str = "base") -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        without_statement_timeout(connection)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    prepared.forget_everywhere()  # statements prepared against the old schema


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

"""Throw-away databases for tests: a fresh PostgreSQL database or SQLite file per test session.

PostgreSQL is required: tests never skip it. Set LOYALTY_TEST_POSTGRES_URL to
point at another server (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("LOYALTY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def connect(url: str, **options):
    """A plain psycopg2 session (autocommit) on the database of a SQLAlchemy URL; options go
    to psycopg2.connect (an application_name, say)."""
    parsed = make_url(url)
    conn = psycopg2.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        connect_timeout=5,
        **options,
    )
    conn.autocommit = True
    return conn


def admin_connection():
    return connect(ADMIN_URL)


@contextmanager
def postgres_database(prefix: str = "loyalty_test"):
    """Yields the SQLAlchemy URL of a new empty database; drops it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = admin_connection()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = admin_connection()
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@contextmanager
def sqlite_database(directory: Path):
    yield f"sqlite:///{directory / f'loyalty_{secrets.token_hex(4)}.db'}"

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


def admin_connection():
    url = make_url(ADMIN_URL)
    conn = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connect_timeout=5,
    )
    conn.autocommit = True
    return conn


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

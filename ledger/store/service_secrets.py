"""The service's own secrets, one row per purpose (written by migrations)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from ledger.store.tables import service_secrets

PAGE_TOKEN = "page_token"


def read(conn: Connection, name: str) -> bytes:
    found = conn.execute(select(service_secrets.c.secret).where(service_secrets.c.name == name)).scalar_one_or_none()
    if found is None:
        raise RuntimeError(f"no service secret {name!r}: the database is not migrated (loyalty-ledger migrate)")
    return bytes.fromhex(found)

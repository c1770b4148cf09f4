"""API key rows: hashed secrets, roles and revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from ledger.domain.kinds import Role
from ledger.store.postgres import prefetch
from ledger.store.instants import to_micros
from ledger.store.tables import api_keys


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    program_id: str
    role: Role
    secret_hash: str
    revoked: bool


# Hot-path reads are built once: SQLAlchemy then finds them compiled without rebuilding them.
_by_id = select(api_keys).where(api_keys.c.key_id == bindparam("key_id"))
_revocation = select(api_keys.c.revoked_at).where(api_keys.c.key_id == bindparam("key_id"))
REVOCATION = prefetch.Read("api_key_revocation", _revocation, ("key_id",))


def get(conn: Connection, key_id: str) -> StoredKey | None:
    row = conn.execute(_by_id, {"key_id": key_id}).first()
    if row is None:
        return None
    return StoredKey(row.key_id, row.program_id, Role(row.role), row.secret_hash, row.revoked_at is not None)


def is_live(conn: Connection, key_id: str) -> bool:
    """The key exists and is not revoked (read, or taken from what prefetch fetched ahead)."""
    row = prefetch.read(conn, REVOCATION, {"key_id": key_id})
    return row is not None and row.revoked_at is None


@dataclass(frozen=True)
class KeyListing:
    key_id: str
    role: Role
    created_at: int  # microseconds since the epoch
    revoked_at: int | None


def of_program(conn: Connection, program_id: str) -> list[KeyListing]:
    """The program's keys, oldest first: ids, roles and times, never secrets."""
    rows = conn.execute(
        select(api_keys.c.key_id, api_keys.c.role, api_keys.c.created_at, api_keys.c.revoked_at)
        .where(api_keys.c.program_id == program_id)
        .order_by(api_keys.c.created_at, api_keys.c.key_id)
    ).all()
    return [KeyListing(row.key_id, Role(row.role), row.created_at, row.revoked_at) for row in rows]


def insert_key(conn: Connection, key_id: str, program_id: str, role: Role, secret_hash: str, now: datetime) -> None:
    conn.execute(
        insert(api_keys).values(
            key_id=key_id, program_id=program_id, role=role.value, secret_hash=secret_hash, created_at=to_micros(now)
        )
    )


def revoke_by_prefix(conn: Connection, prefix: str, now: datetime) -> list[str]:
    """Revokes every unrevoked key whose id starts with prefix; returns their ids."""
    rows = conn.execute(
        select(api_keys.c.key_id).where(api_keys.c.key_id.startswith(prefix, autoescape=True), api_keys.c.revoked_at.is_(None))
    ).all()
    ids = [row.key_id for row in rows]
    if ids:
        conn.execute(update(api_keys).where(api_keys.c.key_id.in_(ids)).values(revoked_at=to_micros(now)))
    return ids

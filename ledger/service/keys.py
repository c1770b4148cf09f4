"""Use cases for API keys: issue, revoke, and authenticate a presented key."""

from __future__ import annotations

from sqlalchemy import Engine

from ledger.domain import credentials, errors
from ledger.domain.kinds import Role
from ledger.service import clock, lookups, unit_of_work
from ledger.service.caller import Caller
from ledger.store import api_keys


def create_key(engine: Engine, program_id: str, role: Role) -> str:
    def work(conn) -> str:
        lookups.program_rules(conn, program_id)
        key = credentials.issue_key()
        api_keys.insert_key(conn, key.key_id, program_id, role, key.secret_hash, clock.now())
        return key.plaintext

    return unit_of_work.run(engine, work)


def revoke_keys(engine: Engine, prefix: str) -> list[str]:
    """Revokes by key id prefix; a whole key (e.g. one that leaked) revokes exactly that key."""
    prefix = credentials.key_id_of(prefix) or prefix
    if len(prefix) < len(credentials.KEY_PREFIX) + 4:
        raise errors.invalid_field("key_prefix", "give at least 4 characters after 'lk_' so one key is meant")
    return unit_of_work.run(engine, lambda conn: api_keys.revoke_by_prefix(conn, prefix, clock.now()))


def _unauthenticated(message: str) -> errors.LedgerError:
    return errors.LedgerError(errors.Category.UNAUTHENTICATED, "API_KEY_INVALID", message)


def authenticate(engine: Engine, presented: str) -> Caller:
    """The caller of a presented key; UNAUTHENTICATED for unknown, malformed or revoked keys."""
    key_id = credentials.key_id_of(presented)
    if key_id is None:
        raise _unauthenticated("the API key is malformed")
    stored = unit_of_work.run(engine, lambda conn: api_keys.get(conn, key_id), read_only=True)
    if stored is None or not credentials.key_matches(presented, stored.secret_hash):
        raise _unauthenticated("the API key is not known")
    if stored.revoked:
        raise _unauthenticated("the API key was revoked")
    return Caller(stored.program_id, stored.key_id, stored.role)

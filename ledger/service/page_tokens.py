"""Page tokens of the List RPCs, signed with the database's page-token secret.

The secret is read once per db (a database) and kept: it never changes while the
database lives, and every server process on that database reads the same one, so a
client's next page may go to any of them (see ledger/domain/page_tokens.py for why the
tokens are signed rather than only checked field by field).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from ledger.store.database import Database

from ledger.domain import page_tokens
from ledger.store import unit_of_work
from ledger.store import service_secrets

_lock = threading.Lock()
_secrets: weakref.WeakKeyDictionary[Database, bytes] = weakref.WeakKeyDictionary()


def secret(db: Database) -> bytes:
    with _lock:
        found = _secrets.get(db)
    if found is None:
        found = unit_of_work.run(
            db, lambda conn: service_secrets.read(conn, service_secrets.PAGE_TOKEN), read_only=True
        )
        with _lock:
            _secrets[db] = found
    return found


@dataclass(frozen=True)
class Pages:
    """The tokens of one list of one program under one query."""

    secret: bytes
    scope: tuple[str, ...]

    def position(self, token: str) -> str | None:
        """Where a request's page_token says to go on (None for the first page)."""
        return page_tokens.read(self.secret, self.scope, token) if token else None

    def token_after(self, position: str) -> str:
        return page_tokens.issue(self.secret, self.scope, position)


def pages(db: Database, rpc: str, program_id: str, *query: str) -> Pages:
    """Pages of rpc in program_id; query is every filter of the request (not the page size)."""
    return Pages(secret(db), (rpc, program_id, *query))

"""Use case: a member's statement, newest first, in pages.

The page token is opaque to clients: base64 of the last sequence number served
plus a fingerprint of the query, so a token is refused when reused with other
filters. Sequence numbers only grow, so new transactions never shift a page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from ledger.domain import errors
from ledger.domain.kinds import TransactionKind
from ledger.domain.limits import INT64_MAX
from ledger.domain.records import TransactionView
from ledger.service import keys, lookups, unit_of_work
from ledger.service.caller import Caller
from ledger.store import members, transactions


@dataclass(frozen=True)
class StatementQuery:
    member_id: str
    page_size: int
    page_token: str
    kinds: tuple[TransactionKind, ...]
    created_after: datetime | None
    created_before: datetime | None

    def fingerprint(self) -> str:
        parts = [
            self.member_id,
            ",".join(sorted(k.value for k in self.kinds)),
            self.created_after.isoformat() if self.created_after else "",
            self.created_before.isoformat() if self.created_before else "",
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StatementPage:
    transactions: list[TransactionView]
    next_page_token: str


def _encode(seq: int, fingerprint: str) -> str:
    raw = json.dumps({"s": seq, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, fingerprint: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        seq, token_fingerprint = int(data["s"]), str(data["f"])
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise errors.invalid_field("page_token", "is not a token this service issued") from exc
    if not 0 < seq <= INT64_MAX:
        raise errors.invalid_field("page_token", "is not a token this service issued")
    if token_fingerprint != fingerprint:
        raise errors.invalid_field("page_token", "was issued for a different member or filter")
    return seq


def list_transactions(engine: Engine, caller: Caller, query: StatementQuery) -> StatementPage:
    fingerprint = query.fingerprint()
    before = _decode(query.page_token, fingerprint) if query.page_token else None

    def work(conn) -> StatementPage:
        keys.read_ahead_live(conn, caller, query.member_id, (members.BY_ID,))
        lookups.member(conn, caller.program_id, query.member_id)
        rows = transactions.statement_page(
            conn,
            caller.program_id,
            query.member_id,
            before_seq=before,
            limit=query.page_size + 1,
            kinds=query.kinds,
            created_after=query.created_after,
            created_before=query.created_before,
        )
        page = rows[: query.page_size]
        token = _encode(page[-1].sequence, fingerprint) if len(rows) > query.page_size else ""
        return StatementPage(page, token)

    return unit_of_work.run(engine, work, read_only=True)

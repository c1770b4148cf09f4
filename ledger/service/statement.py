"""Use case: a member's statement, newest first, in pages.

The page token is opaque to clients and signed (ledger/domain/page_tokens.py): it carries
the last sequence number served and is bound to the program, the member and the filters,
so a token is refused when reused with another query or program, or altered. Sequence
numbers only grow, so new transactions never shift a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.store.database import Database

from ledger.domain import errors
from ledger.domain.kinds import TransactionKind
from ledger.domain.limits import INT64_MAX
from ledger.domain.records import TransactionView
from ledger.service import keys, lookups, page_tokens
from ledger.store import unit_of_work
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

    def filters(self) -> tuple[str, ...]:
        """Everything but the page size and token: what a page token is bound to."""
        return (
            self.member_id,
            ",".join(sorted(k.value for k in self.kinds)),
            self.created_after.isoformat() if self.created_after else "",
            self.created_before.isoformat() if self.created_before else "",
        )


@dataclass(frozen=True)
class StatementPage:
    transactions: list[TransactionView]
    next_page_token: str


def _sequence(position: str) -> int:
    seq = int(position) if position.isascii() and position.isdigit() else 0
    if not 0 < seq <= INT64_MAX:  # a signed token always holds one; a bug otherwise, refused all the same
        raise errors.invalid_field("page_token", "is not a token this service issued")
    return seq


def list_transactions(db: Database, caller: Caller, query: StatementQuery) -> StatementPage:
    pages = page_tokens.pages(db, "ListTransactions", caller.program_id, *query.filters())
    position = pages.position(query.page_token)
    before = _sequence(position) if position is not None else None

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
        token = pages.token_after(str(page[-1].sequence)) if len(rows) > query.page_size else ""
        return StatementPage(page, token)

    # A statement page may come from the read replica (Database.for_statements): a page is a
    # history, and a page a moment old is still a true one; the page token's secret above
    # stays the primary's.
    return unit_of_work.run(db.for_statements(), work, read_only=True)

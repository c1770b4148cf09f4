"""Use cases of the member directory: UpdateMember, ListMembers, CloseMember, EraseMember.

Personal fields never reach a log line, an event or an idempotency record (so erasure
removes them for good): UpdateMember is idempotent by nature (it sets fields) and records
nothing; CloseMember and EraseMember act once per member (a second call answers the member
as it stands) and their FORFEIT transaction carries a system key. EraseMember closes the
member first (by the program's policy), then empties its profile; the member_id and its
ledger stay, and verify stays clean. Every erasure is logged (member id, key, time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain.earning import BreakdownLine
from ledger.domain.holds import HoldState
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.profiles import ERASED, ClosePolicy, check_not_erased
from ledger.domain.records import MemberState, MemberStatus, NewTransaction, TransactionView
from ledger.service import clock, keys, lookups, lot_postings, page_tokens
from ledger.service.caller import Caller
from ledger.service.members import MemberSummary, summarize
from ledger.service.posting import post
from ledger.store import holds, idempotency, unit_of_work
from ledger.store import profiles as profile_store
from ledger.store import segments as segment_store

log = logging.getLogger("ledger.members")


def update_member(db: Database, caller: Caller, member_id: str, changes: dict) -> MemberSummary:
    """changes: validated profile field -> new value (ledger.domain.profiles.PROFILE_FIELDS)."""

    def work(conn: Transaction) -> MemberSummary:
        state = lookups.member(conn, caller.program_id, member_id, lock=True)
        keys.require_live(conn, caller)
        check_not_erased(member_id, state.erased_at is not None)
        now = clock.now()
        profile = profile_store.get(conn, caller.program_id, member_id).changed(changes, now)
        profile_store.save(conn, caller.program_id, member_id, profile, now)
        return summarize(conn, caller.program_id, state, now)

    return unit_of_work.run(db, work)


@dataclass(frozen=True)
class MemberQuery:
    page_size: int
    page_token: str
    tier: str
    status: MemberStatus | None
    enrolled_from: datetime | None
    enrolled_before: datetime | None
    segment_id: str = ""

    def filters(self) -> tuple[str, ...]:
        return (
            self.segment_id,
            self.tier,
            self.status.value if self.status else "",
            self.enrolled_from.isoformat() if self.enrolled_from else "",
            self.enrolled_before.isoformat() if self.enrolled_before else "",
        )


@dataclass(frozen=True)
class MemberPage:
    members: list[MemberSummary]
    next_page_token: str


def list_members(db: Database, caller: Caller, query: MemberQuery) -> MemberPage:
    """Members in member_id order; the page token (signed, bound to the program and the
    filters) holds the last member_id served."""
    pages = page_tokens.pages(db, "ListMembers", caller.program_id, *query.filters())
    after = pages.position(query.page_token)

    def work(conn: Transaction) -> MemberPage:
        keys.require_live(conn, caller)
        if query.segment_id and segment_store.get(conn, caller.program_id, query.segment_id) is None:
            raise errors.not_found("SEGMENT_NOT_FOUND", f"segment {query.segment_id!r} does not exist in this program")
        found = profile_store.page(
            conn,
            caller.program_id,
            after=after,
            limit=query.page_size + 1,
            tier=query.tier,
            status=query.status,
            enrolled_from=query.enrolled_from,
            enrolled_before=query.enrolled_before,
            segment_id=query.segment_id,
        )
        now = clock.now()
        page = [summarize(conn, caller.program_id, state, now) for state in found[: query.page_size]]
        token = pages.token_after(found[query.page_size - 1].member_id) if len(found) > query.page_size else ""
        return MemberPage(page, token)

    return unit_of_work.run(db, work, read_only=True)


@dataclass(frozen=True)
class Closing:
    member: MemberSummary
    forfeit: TransactionView | None


def _close(conn: Transaction, caller: Caller, state: MemberState, reason: str, now: datetime) -> tuple[MemberState, TransactionView | None]:
    """Closes an active member under the program's policy: open holds are voided, and under
    FORFEIT the posted points (pending and expired ones included) leave in one FORFEIT
    transaction. A member already closed is left as it is."""
    if state.status is MemberStatus.CLOSED:
        return state, None
    rules = lookups.program_rules(conn, caller.program_id)
    for hold_id in profile_store.open_hold_ids(conn, caller.program_id, state.member_id):
        hold = holds.get(conn, caller.program_id, hold_id, lock=True)
        if hold is not None and hold.state is HoldState.OPEN:
            holds.close(conn, caller.program_id, hold, HoldState.VOIDED, 0, now)
    forfeit = None
    if rules.close_policy is ClosePolicy.FORFEIT and state.balance.posted > 0:
        points = state.balance.posted
        transaction_id = credentials.new_id("tx")
        tx = NewTransaction(
            transaction_id=transaction_id,
            member_id=state.member_id,
            kind=TransactionKind.FORFEIT,
            points=-points,
            breakdown=(BreakdownLine(PointsSource.LEDGER_OPERATION, -points, "forfeited at closing"),),
            channel=Channel.SUPPORT,
            idempotency_key=credentials.system_key("forfeit", f"{caller.program_id}/{state.member_id}"),
            api_key_id=caller.key_id,
            occurred_at=now,
            created_at=now,
            reason=reason or "member closed",
            postings=(lot_postings.debit(conn, caller.program_id, state.member_id, points, now),),
        )
        forfeit = post(conn, caller.program_id, state, tx).transaction
        idempotency.claim_many(
            conn, [(caller.program_id, tx.idempotency_key, "CloseMember", transaction_id, {"forfeit": transaction_id})], now
        )
    profile_store.set_closed(conn, caller.program_id, state.member_id, now)
    closed = lookups.member(conn, caller.program_id, state.member_id)
    return closed, forfeit


def close_member(db: Database, caller: Caller, member_id: str, reason: str) -> Closing:
    def work(conn: Transaction) -> Closing:
        state = lookups.member(conn, caller.program_id, member_id, lock=True)
        keys.require_live(conn, caller)
        now = clock.now()
        closed, forfeit = _close(conn, caller, state, reason, now)
        return Closing(summarize(conn, caller.program_id, closed, now), forfeit)

    return unit_of_work.run(db, work)


def erase_member(db: Database, caller: Caller, member_id: str, reason: str) -> Closing:
    """Final: the member is closed (by the program's policy) and its personal fields removed."""

    def work(conn: Transaction) -> Closing:
        state = lookups.member(conn, caller.program_id, member_id, lock=True)
        keys.require_live(conn, caller)
        now = clock.now()
        closed, forfeit = _close(conn, caller, state, reason or "member erased", now)
        if closed.erased_at is None:
            profile_store.save(conn, caller.program_id, member_id, ERASED, now)
            profile_store.set_erased(conn, caller.program_id, member_id, now)
            closed = lookups.member(conn, caller.program_id, member_id)
            # The member id is pseudonymous; nothing personal goes in the line.
            log.info(
                "member erased",
                extra={"program": caller.program_id, "member_id": member_id, "key_id": caller.key_id},
            )
        return Closing(summarize(conn, caller.program_id, closed, now), forfeit)

    return unit_of_work.run(db, work)

"""Use cases for two-phase redemption at the till: authorize, capture, void, and lapsing holds.

Lock order everywhere: the member row, then the hold row. Lapse is decided by
time when a hold is used, so a hold past expires_at cannot be captured even if
the sweeper has not run yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain.balance import Balance
from ledger.domain.earning import BreakdownLine
from ledger.domain.holds import (
    HoldFacts,
    HoldState,
    capture_points,
    check_open,
    hold_expiry,
)
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.records import MemberState, NewTransaction, TransactionResult
from ledger.domain.spending import check_redeemable
from ledger.service import clock, idempotent, lookups, lot_postings
from ledger.store import unit_of_work
from ledger.service.balances import live_balance
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.service.posting import post
from ledger.store import holds, idempotency, lots, members, programs
from ledger.store.postgres import prefetch


_AUTHORIZE_READS = (idempotency.BY_KEY, programs.BY_ID, lots.BALANCE_FACTS)
_CAPTURE_READS = (idempotency.BY_KEY, lots.BALANCE_FACTS, lots.OPEN_LOTS)
# Not the balance's facts: a void answers the balance after the hold's release, read then.
_VOID_READS = (idempotency.BY_KEY,)


@dataclass(frozen=True)
class AuthorizeCommand:
    member_id: str
    points: int
    order_id: str
    ttl_seconds: int
    channel: Channel
    store_id: str


@dataclass(frozen=True)
class HoldResult:
    hold: HoldFacts
    balance: Balance

    def to_json(self) -> dict:
        return {"hold": self.hold.to_json(), "balance": vars(self.balance)}

    @classmethod
    def from_json(cls, data: dict) -> "HoldResult":
        return cls(HoldFacts.from_json(data["hold"]), Balance(**data["balance"]))


@dataclass(frozen=True)
class CaptureResult:
    transaction: TransactionResult
    hold: HoldFacts

    def to_json(self) -> dict:
        return {"transaction": self.transaction.to_json(), "hold": self.hold.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> "CaptureResult":
        return cls(TransactionResult.from_json(data["transaction"]), HoldFacts.from_json(data["hold"]))


def authorize(db: Database, caller: Caller, mutation: Mutation, command: AuthorizeCommand) -> HoldResult:
    now = clock.now()

    def lock(conn: Transaction) -> MemberState:
        nonlocal now
        member, now = lookups.locked_member(
            conn, caller, command.member_id, mutation.idempotency_key, _AUTHORIZE_READS
        )
        return member

    def apply(conn: Transaction, member: MemberState) -> HoldResult:
        lookups.require_active(member)
        rules = lookups.program_rules(conn, caller.program_id)
        expires_at = hold_expiry(now, command.ttl_seconds, rules.hold_ttl_seconds)
        balance = live_balance(conn, caller.program_id, member, now)
        check_redeemable(balance, command.points)
        hold = HoldFacts(
            credentials.new_id("hold"), member.member_id, command.points, HoldState.OPEN, expires_at,
            command.order_id, 0, now,
        )
        holds.open_hold(conn, caller.program_id, hold, command.channel, command.store_id)
        return HoldResult(hold, Balance(balance.posted, balance.pending, balance.held + hold.points, balance.expired))

    return idempotent.execute(
        db, caller, mutation, lock=lock, apply=apply, decode=HoldResult.from_json, member_id=command.member_id
    )


def _lock_hold(
    conn: Transaction, caller: Caller, hold_id: str, key: str, reads: tuple[prefetch.Read, ...]
) -> tuple[MemberState, HoldFacts, datetime]:
    """The hold's member and the hold, both row-locked (member first, as every writer of the
    member does), and read_ahead's instant. On PostgreSQL the locks, both rows and `reads`
    share one round trip, after the one that finds the hold's member."""
    unlocked = holds.get(conn, caller.program_id, hold_id)
    if unlocked is None:
        raise errors.not_found("HOLD_NOT_FOUND", f"hold {hold_id!r} does not exist in this program")
    member, now = lookups.locked_member(conn, caller, unlocked.member_id, key, (holds.LOCKED, *reads), hold_id=hold_id)
    hold = holds.get(conn, caller.program_id, hold_id, lock=True)
    assert hold is not None
    return member, hold, now


def capture(db: Database, caller: Caller, mutation: Mutation, hold_id: str, points: int) -> CaptureResult:
    now = clock.now()

    def lock(conn: Transaction) -> tuple[MemberState, HoldFacts]:
        nonlocal now
        member, hold, now = _lock_hold(conn, caller, hold_id, mutation.idempotency_key, _CAPTURE_READS)
        return member, hold

    def apply(conn: Transaction, locked: tuple[MemberState, HoldFacts]) -> CaptureResult:
        member, hold = locked
        check_open(hold, now)
        captured = capture_points(hold, points)
        balance = live_balance(conn, caller.program_id, member, now)
        # The hold's own points are reserved for this capture, but a reservation is not a lot:
        # when lots expired under the hold, only what is still covered can be captured (the
        # rest is refused, INSUFFICIENT_POINTS with `available` and `expired`; the hold stays
        # open for a capture of what is covered, or a void).
        others = Balance(balance.posted, balance.pending, balance.held - hold.points, balance.expired)
        check_redeemable(others, captured)
        holds.close(conn, caller.program_id, hold, HoldState.CAPTURED, captured, now)
        tx = NewTransaction(
            transaction_id=credentials.new_id("tx"),
            member_id=member.member_id,
            kind=TransactionKind.CAPTURE,
            points=-captured,
            breakdown=(BreakdownLine(PointsSource.LEDGER_OPERATION, -captured, f"captured from hold {hold.hold_id}"),),
            channel=Channel.POS,
            idempotency_key=mutation.idempotency_key,
            api_key_id=caller.key_id,
            occurred_at=now,
            created_at=now,
            order_id=hold.order_id,
            reason=f"capture of {hold.hold_id}" + (f"; {hold.points - captured} released" if captured < hold.points else ""),
            postings=(lot_postings.debit(conn, caller.program_id, member.member_id, captured, now),),
        )
        # Spending available lots leaves pending and expired points as they were; the hold is closed.
        result = post(conn, caller.program_id, member, tx, unspendable=(others.pending, others.held, others.expired))
        return CaptureResult(result, hold.closed(HoldState.CAPTURED, captured))

    return idempotent.execute(db, caller, mutation, lock=lock, apply=apply, decode=CaptureResult.from_json)


def void(db: Database, caller: Caller, mutation: Mutation, hold_id: str) -> HoldResult:
    now = clock.now()

    def lock(conn: Transaction) -> tuple[MemberState, HoldFacts]:
        nonlocal now
        member, hold, now = _lock_hold(conn, caller, hold_id, mutation.idempotency_key, _VOID_READS)
        return member, hold

    def apply(conn: Transaction, locked: tuple[MemberState, HoldFacts]) -> HoldResult:
        member, hold = locked
        check_open(hold, now)
        holds.close(conn, caller.program_id, hold, HoldState.VOIDED, 0, now)
        balance = live_balance(conn, caller.program_id, member, now)
        return HoldResult(hold.closed(HoldState.VOIDED), balance)

    return idempotent.execute(
        db,
        caller,
        mutation,
        lock=lock,
        apply=apply,
        decode=HoldResult.from_json,
    )


def lapse_due_holds(db: Database, batch: int = 500, now=None) -> int:
    """Marks open holds past expires_at LAPSED; returns how many. Safe to run concurrently with captures."""
    lapsed = 0
    fixed_now = now
    while True:
        now = fixed_now or clock.now()
        due = unit_of_work.run(db, lambda conn: holds.due(conn, now, batch), read_only=True)
        if not due:
            return lapsed
        progress = 0
        for program_id, member_id, hold_id in sorted(due):

            def work(conn: Transaction) -> int:
                if members.get(conn, program_id, member_id, lock=True) is None:
                    return 0
                hold = holds.get(conn, program_id, hold_id, lock=True)
                if hold is None or hold.state is not HoldState.OPEN or hold.expires_at > now:
                    return 0  # captured or voided meanwhile
                holds.close(conn, program_id, hold, HoldState.LAPSED, 0, now)
                return 1

            progress += unit_of_work.run(db, work)
        lapsed += progress
        if len(due) < batch or progress == 0:
            return lapsed

"""Use case: the daily work, in its fixed order: pending points mature (by time, nothing to
write), holds lapse, tiers at the end of their period are reviewed, points expire (ROLLING
lots past their date, then INACTIVITY members). Upgrades need no job: they happen with the
order that crosses a threshold.

Expiry works in batches of members, each batch one database transaction that
row-locks its members in key order (so it never deadlocks with tills), re-reads
their lots under the lock and writes all EXPIRE transactions of the batch with a
few bulk statements. Running it twice expires nothing twice: expired lots have
no remaining points left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from ledger.domain import credentials
from ledger.domain.earning import BreakdownLine
from ledger.domain.expiry import due_consumptions, inactive_since
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.records import NewTransaction, Posting
from ledger.service import clock, unit_of_work
from ledger.service.holds import lapse_due_holds
from ledger.service.tiers import review_due_tiers
from ledger.store import expiry, idempotency, ledger_writes, programs
from ledger.store.instants import to_micros

SYSTEM_KEY_ID = "system:expiry"
BATCH = 2000


@dataclass(frozen=True)
class DueWorkReport:
    holds_lapsed: int
    members_expired: int
    points_expired: int
    tiers_changed: int = 0


@dataclass
class _Tally:
    members: int = 0
    points: int = 0


def _expire_batch(conn: Connection, keys: list[expiry.MemberKey], now: datetime, inactive_cutoff: datetime | None) -> _Tally:
    locked = expiry.lock_members(conn, keys)
    lots_by_member = expiry.open_lots_of(conn, list(locked))
    items, tally = [], _Tally()
    for key, (posted, last_seq, last_activity, last_hash) in locked.items():
        everything = inactive_cutoff is not None and last_activity <= to_micros(inactive_cutoff)
        due = due_consumptions(lots_by_member.get(key, []), now, everything=everything)
        points = sum(c.points for c in due)
        if points <= 0:
            continue
        program_id, member_id = key
        transaction_id = credentials.new_id("tx")
        why = "no activity for the program's inactivity period" if everything else "validity ended"
        tx = NewTransaction(
            transaction_id=transaction_id,
            member_id=member_id,
            kind=TransactionKind.EXPIRE,
            points=-points,
            breakdown=(BreakdownLine(PointsSource.LEDGER_OPERATION, -points, f"{len(due)} lot(s) expired: {why}"),),
            channel=Channel.OTHER,
            idempotency_key=credentials.system_key("expire", transaction_id),
            api_key_id=SYSTEM_KEY_ID,
            occurred_at=now,
            created_at=now,
            reason=f"points expired: {why}",
            postings=(Posting(member_id, -points, consumed=due),),
        )
        items.append((program_id, tx, {member_id: (posted, last_seq, last_hash)}))
        tally.members += 1
        tally.points += points
    ledger_writes.append_many(conn, items)
    idempotency.claim_many(
        conn,
        [(program_id, tx.idempotency_key, "Expire", tx.transaction_id, {"expired": -tx.points}) for program_id, tx, _ in items],
        now,
    )
    return tally


def _expire_rolling(engine: Engine, now: datetime) -> _Tally:
    total = _Tally()
    while True:
        keys = unit_of_work.run(engine, lambda conn: expiry.members_with_due_lots(conn, now, BATCH), read_only=True)
        if not keys:
            return total
        done = unit_of_work.run(engine, lambda conn: _expire_batch(conn, keys, now, None))
        total.members += done.members
        total.points += done.points
        if done.points == 0:
            return total  # nothing left that can expire (guards against looping on the same rows)


def _expire_inactive(engine: Engine, now: datetime) -> _Tally:
    total = _Tally()
    for program_id in unit_of_work.run(engine, expiry.inactivity_programs, read_only=True):
        rules = unit_of_work.run(engine, lambda conn: programs.get(conn, program_id), read_only=True)
        cutoff, after = inactive_since(rules, now) if rules else None, None
        if cutoff is None:
            continue
        while True:
            keys = unit_of_work.run(
                engine, lambda conn: expiry.inactive_members(conn, program_id, cutoff, after, BATCH), read_only=True
            )
            if not keys:
                break
            done = unit_of_work.run(engine, lambda conn: _expire_batch(conn, keys, now, cutoff))
            total.members += done.members
            total.points += done.points
            after = keys[-1][1]
    return total


def run_due_work(engine: Engine, now: datetime | None = None) -> DueWorkReport:
    now = now or clock.now()
    lapsed = lapse_due_holds(engine, now=now)
    tiers_changed = review_due_tiers(engine, now)
    rolling = _expire_rolling(engine, now)
    inactive = _expire_inactive(engine, now)
    return DueWorkReport(lapsed, rolling.members + inactive.members, rolling.points + inactive.points, tiers_changed)

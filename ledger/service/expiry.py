"""Use case: the daily work, in its fixed order: pending points mature (by time, nothing to
write), holds lapse, tiers at the end of their period are reviewed, points expire (ROLLING
lots past their date, then INACTIVITY members). Upgrades need no job: they happen with the
order that crosses a threshold.

Expiry works in batches of members, each batch one database transaction that
row-locks its members in key order (so it never deadlocks with tills), re-reads
their lots under the lock and writes all EXPIRE transactions of the batch. On
PostgreSQL the database does that in two statements of its own
(ledger.store.postgres.expiry_writes); elsewhere it is done here, row by row, with the
domain's rules. The ROLLING sweep streams the due members in key order off one
query and cuts them into contiguous, disjoint batches; on PostgreSQL two batches
are in flight at once, on two connections. Running it twice expires nothing
twice: expired lots have no remaining points left, and a crash loses at most the
batches not yet committed.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from itertools import groupby
from typing import Callable, Iterable, Iterator

from ledger.store.database import Database, Transaction

from ledger.domain import credentials
from ledger.domain.expiry import due_consumptions, expiry_transaction, inactive_since, is_inactive
from ledger.domain.program import ProgramRules
from ledger.domain.records import MemberState
from ledger.service import clock, events
from ledger.store import unit_of_work
from ledger.service.holds import lapse_due_holds
from ledger.service.moments import tell_due_moments
from ledger.service.tiers import review_due_tiers
from ledger.store import expiry, ledger_writes, lots, programs
from ledger.store.postgres import expiry_writes
from ledger.store.instants import to_micros

SYSTEM_KEY_ID = "system:expiry"
# Members per batch (one database transaction). Bigger batches mean fewer statements, but a
# till paying for a member of a batch in flight waits for the batch to commit.
BATCH = 10_000
# Batches in flight at once on PostgreSQL (one connection each).
WORKERS = 2


@dataclass(frozen=True)
class DueWorkReport:
    holds_lapsed: int
    members_expired: int
    points_expired: int
    tiers_changed: int = 0
    points_expired_by_program: dict[str, int] = field(default_factory=dict)
    events_pruned: int = 0
    # Post-purchase moments told, by event type (ledger.service.moments).
    moments_told: dict[str, int] = field(default_factory=dict)


@dataclass
class _Tally:
    members: int = 0
    points: int = 0
    by_program: Counter = field(default_factory=Counter)

    def count(self, program_id: str, members: int, points: int) -> None:
        self.members += members
        self.points += points
        self.by_program[program_id] += points

    def add(self, other: _Tally) -> None:
        self.members += other.members
        self.points += other.points
        self.by_program.update(other.by_program)


def _expire_batch(
    conn: Transaction,
    keys: list[expiry.MemberKey],
    now: datetime,
    inactive_cutoff: datetime | None,
    new_ids: Callable[[str, int], list[str]] = credentials.new_ids,
    *,
    in_database: bool,
) -> _Tally:
    """Expires what is due of the batch's members; member i of the sorted keys takes the
    i-th of new_ids' transaction ids. in_database (PostgreSQL): the database does the work in
    its own statements (ledger.store.postgres.expiry_writes); else it is done here, row by row."""
    keys = sorted(set(keys))  # a member listed twice still gets one EXPIRE
    transaction_ids = new_ids("tx", len(keys))
    if in_database:
        return _expire_in_database(conn, keys, transaction_ids, now, inactive_cutoff)
    return _expire_in_python(conn, keys, transaction_ids, now, inactive_cutoff)


def _expire_in_database(
    conn: Transaction, keys: list[expiry.MemberKey], transaction_ids: list[str], now: datetime, cutoff: datetime | None
) -> _Tally:
    tally = _Tally()
    for program_id, pairs in groupby(zip(keys, transaction_ids), key=lambda pair: pair[0][0]):
        member_ids, ids = zip(*[(member_id, transaction_id) for (_, member_id), transaction_id in pairs])
        done = expiry_writes.expire(
            conn,
            program_id,
            list(member_ids),
            list(ids),
            to_micros(now),
            to_micros(cutoff) if cutoff is not None else None,
            api_key_id=SYSTEM_KEY_ID,
        )
        tally.count(program_id, done.members, done.points)
    return tally


def _expire_in_python(
    conn: Transaction,
    keys: list[expiry.MemberKey],
    transaction_ids: list[str],
    now: datetime,
    inactive_cutoff: datetime | None,
) -> _Tally:
    locked = expiry.lock_members(conn, keys)
    # The ROLLING sweep only ever expires lots past their date; an inactive member loses them all.
    lots_by_member = expiry.open_lots_of(conn, list(locked), due_at=now if inactive_cutoff is None else None)
    id_of = dict(zip(keys, transaction_ids))
    items, tally = [], _Tally()
    for key, (posted, last_seq, last_activity, last_hash) in locked.items():
        everything = inactive_cutoff is not None and last_activity <= to_micros(inactive_cutoff)
        due = due_consumptions(lots_by_member.get(key, []), now, everything=everything)
        points = sum(c.points for c in due)
        if points <= 0:
            continue
        program_id, member_id = key
        transaction_id = id_of[key]
        tx = expiry_transaction(
            member_id,
            due,
            everything=everything,
            transaction_id=transaction_id,
            api_key_id=SYSTEM_KEY_ID,
            now=now,
        )
        items.append((program_id, tx, {member_id: (posted, last_seq, last_hash)}))
        tally.count(program_id, 1, points)
    ledger_writes.append_many(conn, items)
    return tally


def write_off_if_inactive(
    conn: Transaction, program_id: str, member: MemberState, rules: ProgramRules, now: datetime
) -> MemberState:
    """Before an activity credit (an earn, a rewarded activity, a referral reward) moves an
    inactive member's activity clock, their points expire as the INACTIVITY sweep would have
    expired them: the same EXPIRE transaction, written now in the caller's transaction (the
    member's row lock held). Otherwise the credit would make them active again and the
    sweep, finding an active member, would never take the points that had expired.
    Returns the member as it stands after (unchanged when nothing was due)."""
    if member.balance.posted <= 0 or not is_inactive(rules.expiry_mode, rules.expiry_days, member.last_activity_at, now):
        return member
    due = due_consumptions(lots.open_lots(conn, program_id, member.member_id), now, everything=True)
    if not due:
        return member
    transaction_id = credentials.new_id("tx")
    tx = expiry_transaction(
        member.member_id,
        due,
        everything=True,
        transaction_id=transaction_id,
        api_key_id=SYSTEM_KEY_ID,
        now=now,
    )
    posted, seq = ledger_writes.append(conn, program_id, tx)[member.member_id]
    return replace(member, balance=member.balance.with_posted(posted - member.balance.posted), last_seq=seq)


@dataclass(frozen=True)
class _Sweep:
    """One run's settings: every batch of it expires as of `now`."""

    db: Database
    now: datetime
    batch_size: int
    workers: int


def _expire_batches(sweep: _Sweep, batches: Iterable[list[expiry.MemberKey]], cutoff: datetime | None) -> _Tally:
    """Expires each batch in its own database transaction, sweep.workers of them at a time.

    The batches must be disjoint, so concurrent batches never wait on each other's locks.
    On PostgreSQL the work of a batch is the database's (ledger.store.postgres.expiry_writes), so
    two batches in flight keep two of its backends busy; the next batch is only taken
    from `batches` when a worker is free.
    """
    # SQLite has a single writer: a second batch would only wait for the first.
    workers = sweep.workers if sweep.db.is_postgresql else 1
    total = _Tally()

    def collect(finished) -> None:
        for future in finished:
            total.add(future.result())

    pool: ThreadPoolExecutor | None = None
    running: set[Future[_Tally]] = set()
    try:
        for keys in batches:
            if pool is None:  # only a sweep with something to expire starts workers
                pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="expiry")
            if len(running) >= workers:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                collect(finished)
            expire = partial(
                _expire_batch, keys=keys, now=sweep.now, inactive_cutoff=cutoff, in_database=sweep.db.is_postgresql
            )
            running.add(pool.submit(unit_of_work.run, sweep.db, expire))
        collect(wait(running).done)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return total


def _expire_rolling(sweep: _Sweep) -> _Tally:
    """Passes over every member with due lots until a pass expires nothing (a lot can fall due
    while a pass runs: an order backdated past its expiry)."""
    total = _Tally()
    while True:
        # One consistent read, open while its batches are expired on other connections.
        with unit_of_work.snapshot(sweep.db) as conn:
            done = _expire_batches(sweep, expiry.due_member_batches(conn, sweep.now, sweep.batch_size), None)
        total.add(done)
        if done.points == 0:
            return total


def _inactive_batches(sweep: _Sweep, program_id: str, cutoff: datetime) -> Iterator[list[expiry.MemberKey]]:
    """The program's inactive members, a batch at a time, in member_id order (disjoint pages)."""
    after = None
    while True:
        keys = unit_of_work.run(
            sweep.db,
            lambda conn: expiry.inactive_members(conn, program_id, cutoff, after, sweep.batch_size),
            read_only=True,
        )
        if not keys:
            return
        yield keys
        after = keys[-1][1]


def _expire_inactive(sweep: _Sweep) -> _Tally:
    total = _Tally()
    for program_id in unit_of_work.run(sweep.db, expiry.inactivity_programs, read_only=True):
        rules = unit_of_work.run(sweep.db, lambda conn: programs.get(conn, program_id), read_only=True)
        cutoff = inactive_since(rules, sweep.now) if rules else None
        if cutoff is not None:
            total.add(_expire_batches(sweep, _inactive_batches(sweep, program_id, cutoff), cutoff))
    return total


def run_due_work(
    db: Database,
    now: datetime | None = None,
    *,
    batch_size: int = BATCH,
    workers: int = WORKERS,
    moments: bool = True,
) -> DueWorkReport:
    """moments: tell the post-purchase moments too (after expiry, so points that just expired
    are not announced as expiring); the scheduler does that at its own, slower pace."""
    now = now or clock.now()
    lapsed = lapse_due_holds(db, now=now)
    tiers_changed = review_due_tiers(db, now)
    sweep = _Sweep(db, now, batch_size, workers)
    expired = _expire_rolling(sweep)
    expired.add(_expire_inactive(sweep))
    pruned = events.prune(db, now)  # events past their program's retention
    told = tell_due_moments(db, now).told if moments else {}
    return DueWorkReport(
        lapsed,
        expired.members,
        expired.points,
        tiers_changed,
        {p: n for p, n in expired.by_program.items() if n},
        pruned,
        {kind: n for kind, n in told.items() if n},
    )

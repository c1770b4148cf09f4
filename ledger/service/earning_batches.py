"""Imported orders earned in batches: many members' Earns in one database transaction.

`loyalty-ledger import orders` backfills a marketplace's orders. One order alone is a whole
Earn: a transaction of its own, its reads in a round trip, its COMMIT; about 2.8 ms of CPU,
half Python's and half PostgreSQL's, so two cores import some 700 orders a second. A batch
shares what the orders have in common:
- one statement locks the batch's members, in member_id order as every writer locks them;
- one statement fetches every order's reads, the very reads an Earn fetches ahead of its
  decision, for all the orders at once (prefetch.load_many; SQLite, in process, makes each
  read when it is needed);
- each order is then looked up under its idempotency key, decided and written by the Earn's
  own code (earning.apply_earn, idempotent.within), so its rows and its recorded answer are
  the ones it would get alone;
- the campaigns' slotted counters are summed and updated once per slot (concurrent batches
  then never wait on each other's slots in opposite orders);
- one COMMIT.

The budget counters of every budgeted campaign the orders may spend are locked right after the
members, in campaign_id order, so that batches never take them in opposite orders (a batch
holds them to its COMMIT: while a budgeted campaign runs, batches spending it go one at a time).

An order is left to be earned alone (answered None) when its member still has a referral to
decide: that decision locks and may credit the referrer, another member, whose reads the batch
fetched before; so are the referrer's orders after it in the batch (one at a time, the reward
comes first). The caller gives each batch distinct members, orders and keys, and earns what is
left alone before the member's next orders.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ledger.domain.errors import LedgerError
from ledger.domain.records import TransactionResult
from ledger.service import clock, earn_context, idempotent, keys, lookups, segments
from ledger.service.caller import Caller
from ledger.service.earning import EARN_READS, EarnCommand, apply_earn
from ledger.service.idempotent import Mutation
from ledger.store import campaigns, members, outbox, programs, unit_of_work
from ledger.store import referrals as referral_store
from ledger.store import segments as segment_store
from ledger.store.database import Database, Transaction
from ledger.store.instants import to_micros
from ledger.store.postgres import prefetch, write_behind

# Each order's own reads; the program's row is read once for the batch (programs keeps it).
_READS = (members.LOCKED, *(read for read in EARN_READS if read is not programs.BY_ID))

Answer = TransactionResult | LedgerError | None


def earn_many(
    db: Database, caller: Caller, orders: list[tuple[Mutation, EarnCommand]], *, skip_locked: bool = False
) -> list[Answer]:
    """Each order's answer, in order: its result, its refusal (recorded under its key when the
    Earn records it), or None when it is to be earned alone. A failure that is not one order's
    (a lost race, the database away) is raised: nothing of the batch was committed.
    skip_locked: the batch does not wait for a member another transaction holds; that
    member's orders are answered None (so is an unknown member's: earned alone, it is refused)."""

    def work(conn: Transaction) -> list[Answer]:
        locked = members.lock_in_key_order(
            conn, caller.program_id, [command.member_id for _, command in orders], skip_locked=skip_locked
        )
        taken = [i for i, (_, command) in enumerate(orders) if command.member_id in locked or not skip_locked]
        answers: list[Answer] = [None] * len(orders)
        if taken:
            for i, answer in zip(taken, _earn_locked(conn, caller, [orders[i] for i in taken])):
                answers[i] = answer
        return answers

    return unit_of_work.run(db, work)


def _earn_locked(conn: Transaction, caller: Caller, orders: list[tuple[Mutation, EarnCommand]]) -> list[Answer]:
    """earn_many's work once the orders' members are locked."""
    program_id = caller.program_id
    # Taken under the locks, as a single Earn takes it: after whatever the members' last
    # writers committed.
    now = clock.now()
    keys.require_live(conn, caller)  # once for the batch: every order has the same caller
    prefetch.load_many(
        conn,
        _READS,
        {"program_id": program_id, "at": to_micros(now)},
        [
            {
                "member_id": command.member_id,
                "referee_id": command.member_id,
                "key": mutation.idempotency_key,
                "order_id": command.order.order_id,
            }
            for mutation, command in orders
        ],
    )
    _figures_ahead(conn, program_id, [command.member_id for _, command in orders], now)
    earn_context.lock_budgets(conn, program_id, [command.order.occurred_at for _, command in orders])
    campaigns.sum_counters_until_flush(conn)
    checked = replace(caller, revocation_checked=True)
    answers: list[Answer] = []
    waiting: set[str] = set()  # referrers of members left alone: their later orders wait too
    for mutation, command in orders:
        referrer = referral_store.referrer_to_decide(conn, program_id, command.member_id)
        if referrer is not None or command.member_id in waiting:
            if referrer is not None:
                waiting.add(referrer)
            answers.append(None)
            continue
        answers.append(_earn_one(conn, checked, mutation, command, now))
    campaigns.flush_counters(conn)
    return answers


def _figures_ahead(conn: Transaction, program_id: str, member_ids: list[str], now: datetime) -> None:
    """A member with no stored RFM row yet (none before the first daily refresh) has their
    figures summed from the ledger by the Earn (earning._figures_before): fetched ahead too."""
    if segments.UPKEEP:
        segment_store.figures_ahead_where_unstored(conn, program_id, member_ids, now)


def _earn_one(conn: Transaction, caller: Caller, mutation: Mutation, command: EarnCommand, now: datetime) -> Answer:
    written, events = write_behind.written(conn), outbox.snapshot(conn)
    try:
        member = lookups.member(conn, caller.program_id, command.member_id, lock=True)
        return idempotent.within(
            conn, caller, mutation, member,
            lambda c, locked: apply_earn(c, caller, command, locked, mutation.idempotency_key, now),
            TransactionResult.from_json,
        )
    except LedgerError as refusal:
        # A refusal with no recorded answer comes before the Earn writes anything; if this one
        # did not, the batch cannot take back that order's writes alone.
        if not refusal.recorded and (write_behind.written(conn) != written or outbox.snapshot(conn) != events):
            raise RuntimeError(f"order {command.order.order_id!r} was refused after it wrote") from refusal
        return refusal

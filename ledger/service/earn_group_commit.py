"""Group commit across members: the tills' concurrent Earns of one program share a transaction.

Alone, an Earn is a transaction of its own: its member's lock and reads in a round trip, its
writes, and a COMMIT that takes the program's event positions under one row lock
(store/outbox.py). Under load, a program's Earns then queue on that lock and on PostgreSQL's
CPU, each paying for its own round trips and commit. Here, on PostgreSQL, the first Earn to
arrive for an API key leads its line and runs at once, and the Earns that arrive while it runs
line up; when it is done, the first in line leads: up to MAX_BATCH of them, of distinct members,
orders and idempotency keys, are earned together by earning_batches.earn_many, the batch that
`import orders` runs: one statement locks their members in key order, one fetches every
order's reads, each order is decided and written by the Earn's own code under its own key,
and one COMMIT. Nobody waits for a timer: a batch is whatever arrived during the one before
it, so an Earn at rest goes out as soon as it arrives.

A line never waits long for one member: a batch skips members another transaction holds (a
Redeem, a transfer, the expiry job's batch), and those Earns run alone, each waiting for its
own member. The head of a line with no one behind it runs alone, the Earn's own cheaper path
for one order; should it wait on its member's lock longer than WITHDRAW_AFTER, the Earns
lined up behind it leave the line and run alone. A member already in line or in the batch
being run has its next Earns run alone too, where the member group commit
(ledger.store.member_group_commit) shares one transaction among that member's operations.

Each Earn keeps its own answer:
- a result, or a refusal (recorded under its key when Earn records it), from the batch;
- an Earn the batch leaves out (its member locked by another transaction, not enrolled, or
  with a referral still to decide, see earn_many) is run alone by its own caller's thread,
  as is every Earn of a batch that failed for a reason not shared by the line (a race lost
  after unit_of_work's retries, a bug): nothing of that batch was committed;
- an Earn whose caller left while it waited is left out, and nothing is written for it;
- the database unreachable, or the caller's key revoked since it was last read, is every
  Earn's answer in the batch.

SQLite (one writer at a time, no round trips) earns each order alone, and so does every
server started with LOYALTY_EARN_GROUP_COMMIT=off.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable

from ledger import call_context
from ledger.domain import errors
from ledger.domain.errors import LedgerError
from ledger.domain.records import TransactionResult
from ledger.service import earning, earning_batches
from ledger.service.caller import Caller
from ledger.service.earning import EarnCommand
from ledger.service.idempotent import Mutation
from ledger.store.database import Database

log = logging.getLogger("ledger.earn_group_commit")
ENABLED = os.environ.get("LOYALTY_EARN_GROUP_COMMIT", "on").lower() not in ("off", "0", "false", "no")
MAX_BATCH = 64
# How long the Earns behind a head of the line running alone wait for it before each runs
# alone too: an Earn alone takes a few milliseconds, unless its member is held by another
# transaction (a long one: the expiry job's batch), which must not hold up the line.
WITHDRAW_AFTER = 0.1
# Failures that are every Earn's in the batch, not one's: running each alone would meet them again.
_SHARED_REASONS = frozenset({"STORE_UNAVAILABLE", "API_KEY_INVALID"})


@dataclass(eq=False)  # each Earn is itself: two alike are still two
class _Earn:
    mutation: Mutation
    command: EarnCommand
    caller: Caller
    # The transport's "does the caller still wait?" for this call (its deadline, its cancel).
    still_waiting: Callable[[], bool] = field(default_factory=call_context.caller_waiting.get)
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    done: bool = False
    alone: bool = False  # to be earned alone by its own thread
    result: TransactionResult | None = None
    refusal: BaseException | None = None

    def answer(self, found: TransactionResult | BaseException | None) -> None:
        if isinstance(found, BaseException):
            self.refusal = found
        elif found is None:
            self.alone = True
        else:
            self.result = found
        self.done = True


@dataclass
class _Line:
    """One key's line: the Earns waiting (the batch being run is out of it), how many Earns
    of each member are waiting or in that batch, and since when its head runs alone."""

    earns: list[_Earn]
    members: Counter[str] = field(default_factory=Counter)
    alone_since: float | None = None  # time.monotonic()

    def add(self, earn_: _Earn) -> None:
        self.earns.append(earn_)
        self.members[earn_.command.member_id] += 1

    def forget(self, earns: list[_Earn]) -> None:
        """earns are no longer waiting nor in the batch."""
        for earn_ in earns:
            self.members[earn_.command.member_id] -= 1
            if self.members[earn_.command.member_id] <= 0:
                del self.members[earn_.command.member_id]


_guard = threading.Lock()
_lines: dict[Caller, _Line] = {}  # a line stays, empty, while its leader works


def earn(db: Database, caller: Caller, mutation: Mutation, command: EarnCommand) -> TransactionResult:
    """earning.earn's answer, the order earned in a transaction shared with the caller's other
    Earns in line."""
    if ENABLED and db.is_postgresql:
        mine = _Earn(mutation, command, caller)
        if _answered_in_line(db, mine):
            if mine.refusal is not None:
                raise mine.refusal
            assert mine.result is not None
            return mine.result
    return earning.earn(db, caller, mutation, command)


def _answered_in_line(db: Database, mine: _Earn) -> bool:
    """Whether mine was answered by its line (as its head, or in a batch); False when it is to
    be earned alone: its member already in line (where the member's group commit shares a
    transaction among its operations), the line left (_wait_in_line), or left out by its batch."""
    # One line per key, whether this call's key was read afresh or taken as last read: a batch
    # reads the key's revocation once for all (earn_many).
    line_key = replace(mine.caller, revocation_checked=False)
    with _guard:
        line = _lines.get(line_key)
        leading = line is None
        if line is None:
            line = _lines[line_key] = _Line([])
        elif line.members[mine.command.member_id] > 0:
            return False
        line.add(mine)
    if not leading and not _wait_in_line(line, mine):
        return False
    if leading or mine.lead:
        _lead(db, line_key, mine)
    return not mine.alone


def _wait_in_line(line: _Line, mine: _Earn) -> bool:
    """Waits for mine's turn (answered, or to lead); False when it left the line to run alone
    because the head of the line, an Earn alone, has run longer than WITHDRAW_AFTER (its
    member is likely held by another transaction)."""
    while not mine.wake.wait(WITHDRAW_AFTER):
        with _guard:
            since = line.alone_since
            stuck = since is not None and time.monotonic() - since >= WITHDRAW_AFTER
            if stuck and not mine.lead and mine in line.earns:
                line.earns.remove(mine)
                line.forget([mine])
                return False
    return True


def lined_up() -> int:
    """How many Earns wait in line, behind the batches being run."""
    with _guard:
        return sum(len(line.earns) for line in _lines.values())


def _lead(db: Database, line_key: Caller, leader: _Earn) -> None:
    with _guard:
        line = _lines[line_key]
        taken = _distinct(line.earns)
        line.earns[:] = [waiting for waiting in line.earns if waiting not in taken]  # later arrivals keep appending
    try:
        batch = _still_waited_for(taken)
        if batch == [leader]:
            _alone(db, line, leader)
        elif batch:
            _run(db, line_key, batch)
    finally:
        for waiting in taken:
            if not waiting.done:
                waiting.answer(None)
        with _guard:
            line.forget(taken)
            successor = line.earns[0] if line.earns else None
            if successor is None:
                del _lines[line_key]
            else:
                successor.lead = True
        for waiting in taken:
            waiting.wake.set()
        if successor is not None:
            successor.wake.set()


def _alone(db: Database, line: _Line, leader: _Earn) -> None:
    """The head of the line with no one behind it: the Earn's own path, the cheapest for one
    order (its lock and reads in one round trip). Those arriving meanwhile line up; should it
    wait long on its member's lock, they leave the line (_wait_in_line)."""
    with _guard:
        line.alone_since = time.monotonic()
    try:
        leader.answer(earning.earn(db, leader.caller, leader.mutation, leader.command))
    except Exception as error:  # raised in the leader's own thread once the lead is handed on
        leader.answer(error)
    finally:
        with _guard:
            line.alone_since = None


def _still_waited_for(batch: list[_Earn]) -> list[_Earn]:
    """The batch without the Earns whose callers left while they waited (a deadline passed,
    the till hung up): nothing is written for them, as for an Earn alone whose caller leaves
    before its commit, and a retry under the same key earns the order."""
    kept = []
    for waiting in batch:
        if waiting.still_waiting():
            kept.append(waiting)
        else:
            waiting.answer(errors.conflict_retry("the caller went away while its Earn waited; nothing was written"))
    return kept


def _distinct(line: list[_Earn]) -> list[_Earn]:
    """The first in line and those after it, in order, up to MAX_BATCH, that share no member,
    order or key with an earlier one taken (earn_many's condition); the rest wait their turn,
    each member's Earns in the order they came."""
    batch: list[_Earn] = []
    taken: set[tuple[str, str]] = set()
    for waiting in line:
        names = {
            ("member", waiting.command.member_id),
            ("order", waiting.command.order.order_id),
            ("key", waiting.mutation.idempotency_key),
        }
        if taken.isdisjoint(names):
            batch.append(waiting)
            if len(batch) == MAX_BATCH:
                break
        taken |= names  # a later Earn of a member left waiting must not overtake it
    return batch


def _run(db: Database, caller: Caller, batch: list[_Earn]) -> None:
    orders = [(waiting.mutation, waiting.command) for waiting in batch]
    try:
        # The batch belongs to no one caller: it runs outside the leader's call (its deadline,
        # its cancellation), and whoever still waits gets an answer.
        answers = contextvars.Context().run(earning_batches.earn_many, db, caller, orders, skip_locked=True)
    except LedgerError as failure:
        for waiting in batch:
            # Each raises its own copy: one exception raised in many threads mixes their tracebacks.
            waiting.answer(copy.copy(failure) if failure.reason in _SHARED_REASONS else None)
        return
    except Exception:
        # Each is earned alone: the bug, if it is one, then meets its own caller.
        log.warning("a batch of %d Earns failed; earning each alone", len(batch), exc_info=True)
        return
    for waiting, found in zip(batch, answers):
        waiting.answer(found)

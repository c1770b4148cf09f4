"""Events come out in commit order, with no gap, under concurrent writers (ledger.store.outbox).

Threads write many transactions on a few members at once while a reader follows the program's
events by position, each read a statement of its own, as WatchEvents does. Every read must
continue exactly where the last one ended (a position missing that a later read then shows
would be an event the follower skipped), every event must come once, and each member's events
must come in the order of the member's ledger entries, their balances running as the entries'.
"""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import text

from ledger.domain import credentials
from ledger.domain.kinds import Role
from ledger.service import members, programs, support
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.service.verify import verify
from ledger.store import events as event_store
from ledger.store import migrate
from tests.store.fresh import BACKENDS, fresh_engine

WRITERS = 4
WRITES_EACH = 40
MEMBERS = 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_follower_sees_every_event_once_in_commit_order(backend, tmp_path):
    with fresh_engine(backend, tmp_path) as engine:
        migrate.upgrade(engine)
        created = programs.create_program(engine, "event-order")
        caller = Caller(created.program_id, credentials.key_id_of(created.admin_key), Role.ADMIN)
        member_ids = [f"m-{n}" for n in range(MEMBERS)]
        for member_id in member_ids:
            members.enroll_member(engine, caller, member_id)
            support.adjust_points(engine, caller, Mutation(f"seed-{member_id}", "AdjustPoints", "s"), member_id, 10**6, "seed")
        done = threading.Event()
        failures: list[BaseException] = []
        seen: list = []
        gaps: list[tuple[int, int]] = []

        def write(writer: int) -> None:
            rng = random.Random(writer)
            try:
                for n in range(WRITES_EACH):
                    member_id = rng.choice(member_ids)
                    points = rng.choice((-3, -1, 1, 2, 5))
                    mutation = Mutation(f"w{writer}-{n}", "AdjustPoints", f"w{writer}-{n}")
                    support.adjust_points(engine, caller, mutation, member_id, points, "load")
            except BaseException as error:  # handed to the test's thread
                failures.append(error)

        def follow() -> None:
            cursor = 0
            try:
                while True:
                    finished = done.is_set()  # read before the last poll: it then sees everything
                    with engine.connect() as conn:
                        batch = event_store.after(conn, created.program_id, cursor, 500)
                    for event in batch:
                        if event.position != cursor + 1:
                            gaps.append((cursor, event.position))
                        cursor = event.position
                        seen.append(event)
                    if finished and not batch:
                        return
            except BaseException as error:
                failures.append(error)

        follower = threading.Thread(target=follow)
        follower.start()
        writers = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        done.set()
        follower.join(60)
        assert not failures, failures
        assert gaps == []
        expected = MEMBERS * 2 + WRITERS * WRITES_EACH
        assert [e.position for e in seen] == list(range(1, expected + 1))
        transaction_ids = [e.transaction_id for e in seen if e.transaction_id]
        assert len(set(transaction_ids)) == len(transaction_ids) == expected - MEMBERS
        with engine.connect() as conn:
            entries = conn.execute(
                text("SELECT member_id, transaction_id, balance_after FROM entries ORDER BY member_id, seq")
            ).all()
        for member_id in member_ids:
            in_ledger = [(row.transaction_id, row.balance_after) for row in entries if row.member_id == member_id]
            in_events = [
                (e.transaction_id, e.payload["balance_after"])
                for e in seen
                if e.member_id == member_id and e.transaction_id
            ]
            assert in_events == in_ledger
        assert verify(engine).clean

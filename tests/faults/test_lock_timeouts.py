"""Fault: a member's row is locked by another database session (a stuck batch job, a
long-running support query), so an Earn on that member cannot take its lock.

- the server gives up: the Earn is answered ABORTED / CONFLICT_RETRY after the server's
  lock_timeout (2 s) has fired a bounded number of times, never hanging;
- every server session carries lock_timeout 2 s and statement_timeout 15 s;
- a client deadline shorter than the lock wait is DEADLINE_EXCEEDED; once the lock is
  released the same key succeeds exactly once; and the abandoned call's database work is
  cancelled, so nothing was written for that key before the retry.
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.store.unit_of_work import ATTEMPTS
from ledger.store.engine import LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS, create_engine_for
from tests.faults.harness import (
    ABORTED,
    DEADLINE_EXCEEDED,
    OK,
    Op,
    connect,
    enroll,
    ledger_on_postgres,
    transactions_by_key,
)

LOCK_S = LOCK_TIMEOUT_MS / 1000
# Each attempt waits lock_timeout, then backs off a few milliseconds: the bound on an answer.
ABORT_BOUND_S = ATTEMPTS * LOCK_S + 3


@pytest.fixture(scope="module")
def ledger():
    with ledger_on_postgres("lock-timeouts") as ledger:
        ledger.start()
        yield ledger


class RowLock:
    """Holds `SELECT ... FOR UPDATE` on a member's row from a separate psycopg2 session."""

    def __init__(self, ledger, member_id: str) -> None:
        self.conn = connect(ledger.url)
        self.conn.autocommit = False
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM members WHERE program_id = %s AND member_id = %s FOR UPDATE",
                (ledger.program_id, member_id),
            )
            assert cur.fetchone() == (1,)

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_waiters(ledger) -> int:
    """Server sessions of this database waiting for a lock."""
    return ledger.query(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'loyalty-ledger' "
        "AND datname = current_database() AND wait_event_type = 'Lock' AND %(p)s IS NOT NULL"
    )[0][0]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def reason_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def test_server_sessions_carry_lock_and_statement_timeouts(ledger):
    engine = create_engine_for(ledger.url, pool_size=1)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == f"{LOCK_TIMEOUT_MS // 1000}s"
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == f"{STATEMENT_TIMEOUT_MS // 1000}s"
    finally:
        engine.dispose()
    assert LOCK_TIMEOUT_MS == 2000 and STATEMENT_TIMEOUT_MS == 15000


def test_earn_on_a_locked_member_is_aborted_conflict_retry_in_bounded_time(ledger, record_property):
    enroll(ledger, "locked-1")
    op = Op("lock-abort-1", "earn", "locked-1", 1000)
    with RowLock(ledger, "locked-1"), grpc.insecure_channel(ledger.target) as channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            ledger.stub(channel).Earn(op.request(), metadata=(("authorization", f"Bearer {ledger.admin_key}"),), timeout=60)
        elapsed = time.monotonic() - started
    assert raised.value.code() == ABORTED, raised.value
    assert reason_of(raised.value) == "CONFLICT_RETRY"
    assert LOCK_S <= elapsed < ABORT_BOUND_S, f"answered after {elapsed:.1f}s"
    record_property("aborted_after_s", round(elapsed, 2))
    print(f"\nlocked member: ABORTED/CONFLICT_RETRY after {elapsed:.2f}s ({ATTEMPTS} attempts x lock_timeout {LOCK_S}s)")
    assert "lock-abort-1" not in transactions_by_key(ledger)

    # Nothing was recorded under the key: with the lock gone, the same key succeeds once.
    with grpc.insecure_channel(ledger.target) as channel:
        op.send(ledger.stub(channel), ledger.admin_key, timeout=10)
    assert op.code == OK, op
    assert [row[0] for row in transactions_by_key(ledger)["lock-abort-1"]] == [op.transaction_id]


def _earn_past_its_deadline(ledger, member_id: str, key: str) -> tuple[Op, float]:
    """Sends an Earn with a 1 s deadline on a locked member; returns the op and how long the
    server kept the call's database work waiting on the lock after the client gave up."""
    enroll(ledger, member_id)
    op = Op(key, "earn", member_id, 1000)
    with RowLock(ledger, member_id) as lock, grpc.insecure_channel(ledger.target) as channel:
        op.send(ledger.stub(channel), ledger.admin_key, timeout=1.0)
        assert op.code == DEADLINE_EXCEEDED, op
        assert op.elapsed < 2, op
        gave_up = time.monotonic()
        # The server may still be waiting on the lock for the abandoned call: note for how long.
        waiting = lock_waiters(ledger) > 0
        deadline = gave_up + 1.0
        while waiting and time.monotonic() < deadline:
            waiting = lock_waiters(ledger) > 0
            time.sleep(0.02)
        still_waiting_after = time.monotonic() - gave_up if waiting else 0.0
        lock.release()
    # Let any abandoned work finish (bounded by the server's retry budget).
    wait_for(lambda: lock_waiters(ledger) == 0, ABORT_BOUND_S, "a server session still waits for the lock")
    time.sleep(0.5)
    return op, still_waiting_after


def test_deadline_shorter_than_the_lock_wait_then_the_same_key_succeeds_once(ledger):
    op, _ = _earn_past_its_deadline(ledger, "locked-2", "lock-deadline-2")
    with grpc.insecure_channel(ledger.target) as channel:
        op.send(ledger.stub(channel), ledger.admin_key, timeout=10)
    assert op.code == OK, op
    rows = transactions_by_key(ledger).get("lock-deadline-2", [])
    assert [row[0] for row in rows] == [op.transaction_id], rows
    # Once more with the same key: the original answer, still one transaction.
    first = op.transaction_id
    with grpc.insecure_channel(ledger.target) as channel:
        op.send(ledger.stub(channel), ledger.admin_key, timeout=10)
    assert op.code == OK and op.transaction_id == first
    assert len(transactions_by_key(ledger)["lock-deadline-2"]) == 1


def test_abandoned_call_database_work_is_cancelled(ledger, record_property):
    op, still_waiting_after = _earn_past_its_deadline(ledger, "locked-3", "lock-deadline-3")
    record_property("still_waiting_after_deadline_s", round(still_waiting_after, 2))
    written = transactions_by_key(ledger).get("lock-deadline-3", [])
    assert written == [], f"the abandoned Earn was committed after the client gave up: {written}"
    assert still_waiting_after == 0.0, "the server kept waiting on the lock for a call nobody awaits"


def test_ledger_still_consistent_after_the_lock_faults(ledger):
    done = ledger.verify()
    assert done.returncode == 0, done.stdout + done.stderr

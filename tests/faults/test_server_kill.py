"""Fault: the server process is killed with SIGKILL while 32 client threads earn and redeem.

Each operation gets its own idempotency key, recorded before it is first sent. After the
kill the server is restarted on the same database (same port). Then:
- every acknowledged transaction is in the ledger exactly once (by transaction id and key);
- each unacknowledged operation is retried with its same key and same request until the
  ledger answers it: no key ends with more than one transaction, the balances equal the
  sum of the transactions (and entries), and `loyalty-ledger verify` is clean.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent import futures

import grpc

from tests.faults.harness import (
    OK,
    Op,
    Recorder,
    assert_acknowledged_present_once,
    assert_ledger_consistent,
    enroll,
    ledger_on_postgres,
    retry_until_final,
    transactions_by_key,
)

CLIENTS = 32
MEMBERS = 12
KILL_AFTER_OK = 400  # acknowledged writes before the kill, so many more are in flight
LOAD_DEADLINE_S = 45
STARTING_AMOUNT = 50_000


def _client(ledger, worker: int, recorder: Recorder, stop: threading.Event) -> None:
    rng = random.Random(worker)
    with grpc.insecure_channel(ledger.target) as channel:
        stub = ledger.stub(channel)
        sequence = 0
        while not stop.is_set():
            sequence += 1
            op = Op.random(rng, f"w{worker}-{sequence}", MEMBERS)
            recorder.record(op)  # before it is sent: an op the kill interrupts is still known
            op.send(stub, ledger.admin_key, timeout=5)
            if op.code not in (OK, grpc.StatusCode.FAILED_PRECONDITION):
                time.sleep(0.05)  # the server is gone: do not spin


def test_kill_9_under_load_loses_nothing_acknowledged_and_retries_apply_once(record_property):
    with ledger_on_postgres("kill-9") as ledger:
        ledger.start(workers=16)
        members = [f"m-{i}" for i in range(MEMBERS)]
        enroll(ledger, *members)
        recorder = Recorder()
        # Every member starts with points, so redeems mostly succeed.
        setup = [recorder.record(Op(f"setup-{m}", "earn", m, STARTING_AMOUNT)) for m in members]
        retry_until_final(ledger, setup)

        stop = threading.Event()
        pool = futures.ThreadPoolExecutor(CLIENTS)
        try:
            clients = [pool.submit(_client, ledger, w, recorder, stop) for w in range(CLIENTS)]
            deadline = time.monotonic() + LOAD_DEADLINE_S
            while recorder.ok_count() < KILL_AFTER_OK + len(setup):
                assert time.monotonic() < deadline, f"no load built up: {recorder.snapshot()[-5:]}"
                assert not any(c.done() for c in clients), [c.exception() for c in clients if c.done()]
                time.sleep(0.01)
            ledger.server.process.kill()  # SIGKILL mid-load
            ledger.server.process.wait(timeout=10)
            time.sleep(0.3)  # let the clients see the refusals
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        for client in clients:
            client.result(timeout=1)

        ops = recorder.snapshot()
        unanswered = [op for op in ops if not op.acknowledged]
        assert unanswered, "the kill interrupted nothing: raise the load"
        codes = {op.code for op in unanswered}
        assert codes <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}, codes

        ledger.server.kill()
        ledger.server = None
        ledger.start(workers=16)  # same database, same port
        checked = assert_acknowledged_present_once(ledger, ops)
        assert checked >= KILL_AFTER_OK
        committed_unacknowledged = len(set(transactions_by_key(ledger)) & {op.key for op in unanswered})

        # Clients retry every unacknowledged op with its same key and request.
        retry_until_final(ledger, unanswered)
        assert_ledger_consistent(ledger, ops)
        # The retried ones that were committed before the kill answered with the original transaction.
        assert_acknowledged_present_once(ledger, ops)

        record_property("acknowledged_writes_checked", checked)
        record_property("unacknowledged_retried", len(unanswered))
        print(
            f"\nkill -9: {checked} acknowledged writes checked; {len(unanswered)} unacknowledged ops retried, "
            f"{committed_unacknowledged} of them committed before the kill"
        )

"""Failover: kill -9 of the PostgreSQL primary under load, the synchronous standby promoted,
and not one acknowledged write lost or doubled.

A private primary and its synchronous streaming standby (tests/private_postgres.py:
initdb, pg_basebackup -R, synchronous_standby_names; never the machine's own PostgreSQL).
Two `loyalty-ledger serve` processes name both hosts in one URL with
target_session_attrs=read-write, so libpq connects to whichever is the primary; 32
clients spread their calls over both servers with gRPC's round robin and health checking.

- Under load, the primary and all its processes are killed with SIGKILL; a second later (an
  operator's or an orchestrator's reaction) the standby is promoted.
- The same server processes reconnect by themselves: no restart. Calls in between answer
  UNAVAILABLE or ABORTED (the client retries with the same key), never INTERNAL or UNKNOWN.
- Every acknowledged write is on the new primary exactly once, under its key and id;
  resent with the same keys, acknowledged calls are answered from their records (same
  transaction); the unanswered ones, retried, apply once; `verify` is clean.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent import futures

import grpc
from sqlalchemy.engine import URL

from loyalty.client import connection
from tests.cli.processes import ServerProcess, free_port, run_ok
from tests.faults.harness import (
    ABORTED,
    FAILED_PRECONDITION,
    OK,
    UNAVAILABLE,
    Ledger,
    Op,
    Recorder,
    assert_ledger_consistent,
    enroll,
    retry_until_final,
    transactions_by_key,
)
from tests.private_postgres import primary_and_standby

CLIENTS = 32
MEMBERS = 16
SERVERS = 2
REACTION_S = 1.0  # between the primary's death and the promotion
RECOVER_S = 15.0  # from the promotion to calls succeeding again
CALL_TIMEOUT_S = 10.0
DATABASE = "loyalty_failover"


def both_hosts_url(primary, standby) -> str:
    """One URL naming both hosts; libpq takes the first that accepts writes."""
    return URL.create(
        "postgresql",
        username="postgres",
        database=DATABASE,
        query={
            "host": [f"127.0.0.1:{primary.port}", f"127.0.0.1:{standby.port}"],
            "target_session_attrs": "read-write",
        },
    ).render_as_string(hide_password=False)


def _client(channel_target, worker: int, key: str, recorder: Recorder, stop: threading.Event) -> None:
    rng = random.Random(7000 + worker)
    address, options = channel_target
    from loyalty.v1 import ledger_pb2_grpc

    with grpc.insecure_channel(address, options=options) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        sequence = 0
        while not stop.is_set():
            sequence += 1
            op = recorder.record(Op.random(rng, f"fo{worker}-{sequence}", MEMBERS))
            op.send(stub, key, timeout=CALL_TIMEOUT_S)
            if not op.acknowledged:
                time.sleep(0.05)


def resend_acknowledged(ledger: Ledger, ops: list[Op]) -> int:
    """Sends acknowledged ops again with their keys; each must answer its recorded outcome."""
    for op in ops:
        again = Op(op.key, op.kind, op.member_id, op.amount)
        retry_until_final(ledger, [again], deadline_s=30)
        assert again.code == op.code, (op, again)
        assert (again.transaction_id, again.points) == (op.transaction_id, op.points), (op, again)
    return len(ops)


def test_failover_to_the_synchronous_standby_loses_and_doubles_nothing(record_property):
    with primary_and_standby() as (primary, standby):
        primary.execute(f'CREATE DATABASE "{DATABASE}"')
        url = both_hosts_url(primary, standby)
        program_id, admin_key = run_ok(url, "program", "create", "failover")
        servers = [
            ServerProcess.serve(url, f"127.0.0.1:{free_port()}", extra=("--due-work-interval", "0", "--workers", "8"))
            for _ in range(SERVERS)
        ]
        try:
            targets = [server.wait_serving() for server in servers]
            pids = [server.process.pid for server in servers]
            # Checks run on the standby, the primary to be.
            ledger = Ledger(standby.url(DATABASE), program_id, admin_key, targets[0])
            members = [f"m-{i}" for i in range(MEMBERS)]
            enroll(ledger, *members)
            recorder = Recorder()
            retry_until_final(ledger, [recorder.record(Op(f"setup-{m}", "earn", m, 50_000)) for m in members])

            stop = threading.Event()
            balanced = connection.channel_target(targets)
            pool = futures.ThreadPoolExecutor(CLIENTS)
            try:
                clients = [pool.submit(_client, balanced, w, admin_key, recorder, stop) for w in range(CLIENTS)]
                deadline = time.monotonic() + 60
                while recorder.ok_count() < 300:
                    assert time.monotonic() < deadline, recorder.snapshot()[-5:]
                    time.sleep(0.02)

                killed_at = time.monotonic()
                primary.kill_hard()
                time.sleep(REACTION_S)
                promote_at = time.monotonic()
                standby.promote()
                promoted_at = time.monotonic()

                first_ok = None
                while first_ok is None:
                    assert time.monotonic() - promoted_at < RECOVER_S + 5, "the servers did not recover by themselves"
                    after = [op for op in recorder.snapshot() if op.code == OK and op.started >= promoted_at]
                    if len(after) >= 50:
                        first_ok = min(op.started + op.elapsed for op in after)
                    time.sleep(0.05)
            finally:
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
            for client in clients:
                client.result(timeout=1)

            assert [server.process.poll() for server in servers] == [None] * SERVERS, "a server died"
            assert [server.process.pid for server in servers] == pids
            ops = recorder.snapshot()
            codes = {op.code for op in ops}
            unexpected = [(op.key, op.code, op.details) for op in ops if op.code not in (OK, FAILED_PRECONDITION, UNAVAILABLE, ABORTED)]
            assert not unexpected, unexpected[:5]
            around = [op for op in ops if op.started + op.elapsed >= killed_at and op.started <= promoted_at]
            failed = sum(1 for op in around if not op.acknowledged)

            by_key = transactions_by_key(ledger)
            acknowledged = [op for op in ops if op.code == OK]
            lost = [op for op in acknowledged if [r[0] for r in by_key.get(op.key, [])] != [op.transaction_id]]
            doubled = [key for key, rows in by_key.items() if len(rows) > 1]
            assert not lost, f"acknowledged writes not on the new primary exactly once: {lost[:5]}"
            assert not doubled, doubled[:5]

            before_kill = [op for op in ops if op.acknowledged and op.started + op.elapsed < killed_at]
            sample = before_kill[-40:] + random.Random(1).sample(before_kill, min(40, len(before_kill)))
            replayed = resend_acknowledged(ledger, list({op.key: op for op in sample}.values()))

            unanswered = [op for op in ops if not op.acknowledged]
            retry_until_final(ledger, unanswered)
            assert_ledger_consistent(ledger, ops)

            recovery = first_ok - killed_at
            record_property("acknowledged_writes_checked", len(acknowledged))
            record_property("lost", len(lost))
            record_property("doubled", len(doubled))
            record_property("recovery_s", round(recovery, 2))
            print(
                f"\nfailover: {len(acknowledged)} acknowledged writes checked, lost {len(lost)}, doubled {len(doubled)}; "
                f"{replayed} acknowledged calls resent, answered from their records; {len(unanswered)} unanswered retried "
                f"once; first OK {recovery:.2f}s after kill -9 ({first_ok - promoted_at:.2f}s after the promotion, "
                f"which took {promoted_at - promote_at:.2f}s, {REACTION_S}s after the kill); "
                f"{failed} calls UNAVAILABLE/ABORTED meanwhile; codes {sorted(c.name for c in codes if c)}"
            )
        finally:
            for server in servers:
                server.kill()

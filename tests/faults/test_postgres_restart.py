"""Fault: PostgreSQL itself is stopped and started again while a server subprocess is under load.

The server runs on a throw-away database of a private PostgreSQL cluster
(tests/private_postgres.py: initdb into a temporary folder, its own port), so stopping it
disturbs no other test run on this machine; the shared server is never touched.

- during the outage every call fails fast with UNAVAILABLE (never hangs past a few seconds);
- after PostgreSQL is back, the same server process recovers by itself (no restart) and
  calls succeed again within ~10 s;
- nothing acknowledged is lost; unacknowledged ops retried with their keys apply once;
  `verify` is clean.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent import futures

import grpc

from tests.faults.harness import (
    DEADLINE_EXCEEDED,
    FAILED_PRECONDITION,
    OK,
    UNAVAILABLE,
    Op,
    Recorder,
    assert_acknowledged_present_once,
    assert_ledger_consistent,
    enroll,
    ledger_on_postgres,
    retry_until_final,
)
from tests import databases
from tests.private_postgres import private_postgres

CLIENTS = 8
MEMBERS = 6
OUTAGE_S = 4.0
FAIL_FAST_S = 6.0  # connect_timeout (3 s) plus slack: an outage call must not hang past this
RECOVER_S = 10.0
CALL_TIMEOUT_S = 20.0  # long, so a hang shows up as a slow answer rather than a client deadline


def _client(ledger, worker, recorder: Recorder, stop: threading.Event) -> None:
    rng = random.Random(1000 + worker)
    with grpc.insecure_channel(ledger.target) as channel:
        stub = ledger.stub(channel)
        sequence = 0
        while not stop.is_set():
            sequence += 1
            op = Op.random(rng, f"pg{worker}-{sequence}", MEMBERS)
            recorder.record(op)
            op.send(stub, ledger.admin_key, timeout=CALL_TIMEOUT_S)
            if not op.acknowledged:
                time.sleep(0.05)


def shared_server_started_at():
    """When the shared PostgreSQL server (the one other test runs use) last started."""
    conn = databases.admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_postmaster_start_time()")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_postgres_restart_under_load_fails_fast_and_recovers_without_a_server_restart(record_property):
    shared_since = shared_server_started_at()
    with private_postgres() as cluster, ledger_on_postgres("pg-restart", cluster) as ledger:
        ledger.start()
        server_pid = ledger.server.process.pid
        members = [f"m-{i}" for i in range(MEMBERS)]
        enroll(ledger, *members)
        recorder = Recorder()
        setup = [recorder.record(Op(f"setup-{m}", "earn", m, 50_000)) for m in members]
        retry_until_final(ledger, setup)

        stop = threading.Event()
        pool = futures.ThreadPoolExecutor(CLIENTS)
        try:
            clients = [pool.submit(_client, ledger, w, recorder, stop) for w in range(CLIENTS)]
            deadline = time.monotonic() + 30
            while recorder.ok_count() < 150:
                assert time.monotonic() < deadline, recorder.snapshot()[-5:]
                time.sleep(0.01)

            cluster.stop("fast")
            down_at = time.monotonic()
            assert not cluster.ready()
            time.sleep(OUTAGE_S)
            start_issued_at = time.monotonic()
            cluster.start()
            cluster.wait_ready(timeout=30)
            up_at = time.monotonic()

            # The same server process answers OK again within RECOVER_S.
            recovered_at = None
            while recovered_at is None:
                assert time.monotonic() - up_at < RECOVER_S + 5, "the server did not recover by itself"
                ok_after = [op for op in recorder.snapshot() if op.code == OK and op.started >= up_at]
                if len(ok_after) >= 20:
                    recovered_at = min(op.started + op.elapsed for op in ok_after)
                time.sleep(0.05)
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            if not cluster.ready():
                cluster.start()
        for client in clients:
            client.result(timeout=1)

        assert ledger.server.process.poll() is None and ledger.server.process.pid == server_pid
        ops = recorder.snapshot()
        during = [op for op in ops if down_at + 0.5 <= op.started and op.started + op.elapsed <= start_issued_at]
        assert len(during) >= 10, "too few calls during the outage to judge"
        codes = {op.code for op in during}
        assert codes == {UNAVAILABLE}, f"outage calls: {[(op.key, op.code, op.details) for op in during if op.code != UNAVAILABLE][:5]}"
        slowest = max(op.elapsed for op in ops if op.started >= down_at and op.started < start_issued_at)
        assert slowest < FAIL_FAST_S, f"a call made during the outage took {slowest:.1f}s"
        hung = [op for op in ops if op.code == DEADLINE_EXCEEDED]
        assert not hung, hung[:5]
        recovery = recovered_at - up_at
        assert recovery < RECOVER_S, f"calls succeeded again only {recovery:.1f}s after PostgreSQL was back"
        # Around the stop and the start, answers are OK, a recorded refusal or UNAVAILABLE: nothing else.
        others = [(op.key, op.code, op.details) for op in ops if op.code not in (OK, FAILED_PRECONDITION, UNAVAILABLE)]
        assert not others, others[:5]

        checked = assert_acknowledged_present_once(ledger, ops)
        unanswered = [op for op in ops if not op.acknowledged]
        retry_until_final(ledger, unanswered)
        assert_ledger_consistent(ledger, ops)
        record_property("acknowledged_writes_checked", checked)
        assert shared_server_started_at() == shared_since, "the shared PostgreSQL server was restarted"
        print(
            f"\npg restart: {checked} acknowledged writes checked; {len(during)} outage calls all UNAVAILABLE, "
            f"slowest {slowest:.2f}s; first OK {recovery:.2f}s after pg_isready; {len(unanswered)} retried"
        )

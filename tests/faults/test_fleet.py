"""A fleet: three `loyalty-ledger serve` processes on one PostgreSQL database, 64 clients
spreading their calls over them with gRPC's round robin and health checking (the SDK's
several-target channel), earning, redeeming and capturing holds on shared members.

Extends tests/cli/test_due_work_leader.py (one leader, a takeover within one interval) to a
fleet under load: the leader is killed with SIGKILL while the clients run; the clients'
round robin drops it and goes on over the two others; another server leads within one
interval and lapses the next holds; each lapsed hold is counted once across the fleet's
"due work" log lines. Afterwards every acknowledged write is in the ledger exactly once
under its key, unanswered calls retried with their keys apply once, and `verify` is clean.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from concurrent import futures

import grpc

from loyalty.client import connection
from loyalty.v1 import ledger_pb2, ledger_pb2_grpc
from tests.cli.processes import run_ok, wait_until
from tests.cli.test_due_work_leader import INTERVAL_S, Fleet, holds_lapse, who_leads
from tests.databases import postgres_database
from tests.faults.harness import (
    ABORTED,
    FAILED_PRECONDITION,
    OK,
    UNAVAILABLE,
    Ledger,
    Op,
    Recorder,
    assert_ledger_consistent,
    bearer,
    enroll,
    retry_until_final,
)

SERVERS = 3
CLIENTS = 64
CHANNELS = 8  # the clients share 8 balanced channels, 8 threads each (a channel is thread-safe)
MEMBERS = 8
CALL_TIMEOUT_S = 10.0


class CaptureOp(Op):
    """AuthorizeRedemption (key KEY-a) then CaptureRedemption of the whole hold (key KEY);
    its outcome is the capture's, or the authorization's refusal."""

    hold_id: str = ""
    auth_code: grpc.StatusCode | None = None

    def send(self, stub, key, timeout) -> None:
        self.started = time.monotonic()
        try:
            if not self.hold_id:
                authorize = ledger_pb2.AuthorizeRedemptionRequest(
                    member_id=self.member_id, idempotency_key=f"{self.key}-a", points=self.amount
                )
                answer = stub.AuthorizeRedemption(authorize, metadata=bearer(key), timeout=timeout)
                self.auth_code, self.hold_id = OK, answer.hold.hold_id
            capture = ledger_pb2.CaptureRedemptionRequest(hold_id=self.hold_id, idempotency_key=self.key)
            done = stub.CaptureRedemption(capture, metadata=bearer(key), timeout=timeout)
        except grpc.RpcError as error:
            self.code, self.details = error.code(), error.details() or ""
            if not self.hold_id and self.code == FAILED_PRECONDITION:
                self.auth_code = FAILED_PRECONDITION
        else:
            self.code, self.details = OK, ""
            self.transaction_id, self.points = done.transaction.transaction_id, done.transaction.points
        finally:
            self.elapsed = time.monotonic() - self.started


def _random_op(rng: random.Random, key: str) -> Op:
    member = f"m-{rng.randrange(MEMBERS)}"
    roll = rng.random()
    if roll < 0.5:
        return Op(key, "earn", member, rng.randint(100, 5000))
    if roll < 0.75:
        return Op(key, "redeem", member, rng.randint(1, 40))
    return CaptureOp(key, "capture", member, rng.randint(1, 40))


def _clients(targets, key, recorder: Recorder, stop: threading.Event, channel_index: int) -> None:
    address, options = connection.channel_target(targets)
    with grpc.insecure_channel(address, options=options) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)

        def terminal(worker: int) -> None:
            rng = random.Random(9000 + worker)
            sequence = 0
            while not stop.is_set():
                sequence += 1
                op = recorder.record(_random_op(rng, f"fl{worker}-{sequence}"))
                op.send(stub, key, timeout=CALL_TIMEOUT_S)
                if not op.acknowledged:
                    time.sleep(0.05)

        per_channel = CLIENTS // CHANNELS
        workers = range(channel_index * per_channel, (channel_index + 1) * per_channel)
        with futures.ThreadPoolExecutor(per_channel) as pool:
            for done in [pool.submit(terminal, worker) for worker in workers]:
                done.result()


def _wait_ok(recorder: Recorder, count: int, since: float, timeout: float = 20) -> None:
    try:
        wait_until(
            lambda: sum(1 for op in recorder.snapshot() if op.code == OK and op.started >= since) >= count,
            timeout,
            f"{count} OK calls",
            interval=0.02,
        )
    except AssertionError as error:
        codes = collections.Counter((op.code, op.details[:80]) for op in recorder.snapshot())
        raise AssertionError(f"{error}; codes so far: {codes.most_common(5)}") from None


def test_three_servers_64_clients_round_robin_and_a_leader_killed_under_load(record_property):
    with postgres_database("loyalty_fleet") as url:
        program_id, admin_key = run_ok(url, "program", "create", "fleet")
        fleet = Fleet(url, SERVERS)
        try:
            targets = [server.target for server in fleet.servers]
            ledger = Ledger(url, program_id, admin_key, targets[0])
            members = [f"m-{i}" for i in range(MEMBERS)]
            enroll(ledger, *members)
            recorder = Recorder()
            retry_until_final(ledger, [recorder.record(Op(f"setup-{m}", "earn", m, 200_000)) for m in members])
            leader = wait_until(lambda: who_leads(url, "postgresql", None), 10, "nobody leads")

            stop = threading.Event()
            pool = futures.ThreadPoolExecutor(CHANNELS)
            started = time.monotonic()
            try:
                channels = [pool.submit(_clients, targets, admin_key, recorder, stop, c) for c in range(CHANNELS)]
                try:
                    _wait_ok(recorder, 600, started)
                except AssertionError:
                    for server in fleet.servers:
                        print(server.stderr[-3000:])
                    raise
                served = time.monotonic() - started
                before = sum(1 for op in recorder.snapshot() if op.code == OK)

                killed = fleet.by_pid(leader)
                killed.process.kill()
                killed_at = time.monotonic()
                killed.process.wait(timeout=10)
                successor = wait_until(
                    lambda: who_leads(url, "postgresql", None) not in (None, leader) and who_leads(url, "postgresql", None),
                    INTERVAL_S + 5,
                    "nobody took the leadership over",
                    interval=0.02,
                )
                took_over_in = time.monotonic() - killed_at
                _wait_ok(recorder, 300, time.monotonic())
            finally:
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
            for channel in channels:
                channel.result(timeout=1)

            assert took_over_in <= INTERVAL_S + 1.0, f"the leadership moved after {took_over_in:.2f}s"
            survivors = [server for server in fleet.servers if server.process.poll() is None]
            assert len(survivors) == SERVERS - 1 and successor in [s.process.pid for s in survivors]
            ledger.listen = survivors[0].target  # retries and checks go to a server still running
            ops = recorder.snapshot()
            unexpected = [(op.key, op.code, op.details) for op in ops if op.code not in (OK, FAILED_PRECONDITION, UNAVAILABLE, ABORTED)]
            assert not unexpected, unexpected[:5]
            per_server = {server.process.pid: len(server.logged("call")) for server in fleet.servers}
            unanswered = [op for op in ops if not op.acknowledged]
            retry_until_final(ledger, unanswered)
            assert_ledger_consistent(ledger, ops)
            holds_lapse(fleet, survivors[0].target, admin_key, "after-kill")
            wait_until(lambda: successor in fleet.lapsing_pids(), 5, "the successor logged no due work")
            assert fleet.lapsing_pids() <= {leader, successor}
            lapsed_logged = sum(
                line["holds_lapsed"] for server in fleet.servers for line in server.logged("due work")
            )
            lapsed = ledger.query(
                "SELECT count(*) FROM holds WHERE program_id = %(p)s AND state = 'LAPSED'"
            )[0][0]
            assert lapsed_logged == lapsed == 3, (lapsed_logged, lapsed)

            # Each authorization made one hold (an authorization writes no transaction), each
            # OK capture captured its own; the 3 of holds_lapse lapsed.
            authorized = [op for op in ops if isinstance(op, CaptureOp) and op.auth_code == OK]
            holds = dict(ledger.query("SELECT state, count(*) FROM holds WHERE program_id = %(p)s GROUP BY state"))
            assert sum(holds.values()) == len(authorized) + 3, (holds, len(authorized))
            captured = sum(1 for op in authorized if op.code == OK)
            assert holds.get("CAPTURED", 0) == captured, (holds, captured)
            acknowledged = sum(1 for op in ops if op.code == OK)
            record_property("acknowledged_writes_checked", acknowledged)
            print(
                f"\nfleet: {SERVERS} servers, {CLIENTS} clients: {acknowledged} acknowledged writes checked "
                f"({before} in {served:.1f}s before the kill); leader {leader} killed under load, "
                f"{successor} led {took_over_in:.2f}s later (interval {INTERVAL_S}s); {len(unanswered)} unanswered "
                f"retried once; call log lines per server {per_server}"
            )
        finally:
            fleet.kill_all()

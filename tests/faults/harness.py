"""Shared pieces of the fault tests: a server subprocess on a throw-away PostgreSQL database,
recorded client operations, and the ledger checks run after each fault.

A test that stops or restarts PostgreSQL itself does it to a private cluster of its own
(tests/private_postgres.py), never to the shared server other test runs are using.

Every wait here is bounded; every server started here is killed in a finally.
"""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc
from tests.cli.processes import ServerProcess, free_port, run_cli, run_ok
from tests import databases
from tests.databases import postgres_database
from tests.private_postgres import PrivatePostgres

OK = grpc.StatusCode.OK
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
ABORTED = grpc.StatusCode.ABORTED
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED


def bearer(key: str):
    return (("authorization", f"Bearer {key}"),)


def connect(url: str):
    """A plain psycopg2 session (autocommit) on the test database."""
    return databases.connect(url, application_name="fault-test")


@dataclass
class Ledger:
    """A throw-away database with one program, and the server subprocess serving it."""

    url: str
    program_id: str
    admin_key: str
    listen: str
    server: ServerProcess | None = None

    def start(self, workers: int = 8, extra=()) -> ServerProcess:
        """Few workers (each may hold two pooled connections): the PostgreSQL server is shared
        with the rest of the session and its max_connections is small."""
        assert self.server is None or self.server.process.poll() is not None
        command = ("--due-work-interval", "0", "--workers", str(workers), *extra)
        self.server = ServerProcess.serve(self.url, self.listen, extra=command)
        self.server.wait_serving()
        return self.server

    def kill(self) -> None:
        if self.server is not None:
            self.server.kill()

    @property
    def target(self) -> str:
        return self.listen

    def stub(self, channel) -> ledger_pb2_grpc.LedgerStub:
        return ledger_pb2_grpc.LedgerStub(channel)

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        conn = connect(self.url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, {"p": self.program_id, **(params or {})})
                return cur.fetchall()
        finally:
            conn.close()

    def verify(self) -> subprocess.CompletedProcess:
        return run_cli(self.url, "verify")


@contextmanager
def ledger_on_postgres(name: str, cluster: PrivatePostgres | None = None):
    """A fresh database with a program, on the shared PostgreSQL server or on a private
    cluster; the server on a fixed loopback port (so a restart keeps the clients' target);
    always killed at the end."""
    database = cluster.database("loyalty_fault") if cluster is not None else postgres_database("loyalty_fault")
    with database as url:
        program_id, admin_key = run_ok(url, "program", "create", name)
        ledger = Ledger(url, program_id, admin_key, f"127.0.0.1:{free_port()}")
        try:
            yield ledger
        finally:
            ledger.kill()


def enroll(ledger: Ledger, *member_ids: str) -> None:
    with grpc.insecure_channel(ledger.target) as channel:
        stub = ledger.stub(channel)
        for member_id in member_ids:
            stub.EnrollMember(
                ledger_pb2.EnrollMemberRequest(member_id=member_id), metadata=bearer(ledger.admin_key), timeout=10
            )


# -- recorded operations ------------------------------------------------------------------


@dataclass
class Op:
    """One mutating call, recorded (with its idempotency key) before it is first sent."""

    key: str
    kind: str  # "earn" | "redeem"
    member_id: str
    amount: int  # minor units for an earn, points for a redeem
    code: grpc.StatusCode | None = None  # None: never answered
    details: str = ""
    transaction_id: str = ""
    points: int = 0
    started: float = 0.0
    elapsed: float = 0.0

    @classmethod
    def random(cls, rng, key: str, members: int) -> "Op":
        """The fault suites' load: on one of `members` members m-0.., 60 % earns of an order of
        100-5000 minor units, else redeems of 1-40 points."""
        member = f"m-{rng.randrange(members)}"
        if rng.random() < 0.6:
            return cls(key, "earn", member, rng.randint(100, 5000))
        return cls(key, "redeem", member, rng.randint(1, 40))

    def request(self):
        if self.kind == "earn":
            order = common_pb2.Order(
                order_id=f"o-{self.key}", channel=common_pb2.CHANNEL_POS, amount=self.amount, currency="USD"
            )
            return ledger_pb2.EarnRequest(member_id=self.member_id, idempotency_key=self.key, order=order)
        return ledger_pb2.RedeemRequest(member_id=self.member_id, idempotency_key=self.key, points=self.amount)

    def send(self, stub: ledger_pb2_grpc.LedgerStub, key: str, timeout: float) -> None:
        """One attempt, no retry; records the outcome on self."""
        method = stub.Earn if self.kind == "earn" else stub.Redeem
        self.started = time.monotonic()
        try:
            answer = method(self.request(), metadata=bearer(key), timeout=timeout)
        except grpc.RpcError as error:
            self.code, self.details = error.code(), error.details() or ""
        else:
            self.code, self.details = OK, ""
            self.transaction_id, self.points = answer.transaction.transaction_id, answer.transaction.points
        finally:
            self.elapsed = time.monotonic() - self.started

    @property
    def acknowledged(self) -> bool:
        """The ledger answered with its final word on this key (a transaction, or a recorded refusal)."""
        return self.code in (OK, FAILED_PRECONDITION)


@dataclass
class Recorder:
    ops: list[Op] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: Op) -> Op:
        with self.lock:
            self.ops.append(op)
        return op

    def snapshot(self) -> list[Op]:
        with self.lock:
            return list(self.ops)

    def ok_count(self) -> int:
        with self.lock:
            return sum(1 for op in self.ops if op.code == OK)


def retry_until_final(
    ledger: Ledger, ops: list[Op], *, deadline_s: float = 60, timeout: float = 10, threads: int = 8
) -> None:
    """Resends each op with its same key (and same request) until the ledger gives a final
    answer (OK or a recorded refusal), from a few threads; bounded by deadline_s overall."""
    give_up = time.monotonic() + deadline_s

    def resend(share: list[Op]) -> None:
        with grpc.insecure_channel(ledger.target) as channel:
            stub = ledger.stub(channel)
            for op in share:
                while True:
                    op.send(stub, ledger.admin_key, timeout)
                    if op.acknowledged:
                        break
                    assert op.code in (UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED), (op.key, op.code, op.details)
                    assert time.monotonic() < give_up, f"retries did not settle: {op}"
                    time.sleep(0.1)

    shares = [ops[i::threads] for i in range(threads) if ops[i::threads]]
    with futures.ThreadPoolExecutor(max(1, len(shares))) as pool:
        for done in [pool.submit(resend, share) for share in shares]:
            done.result(timeout=deadline_s + timeout + 5)


# -- checks ----------------------------------------------------------------------------------


def transactions_by_key(ledger: Ledger) -> dict[str, list[tuple[str, str, int]]]:
    """idempotency key -> [(transaction_id, member_id, points)] for this program."""
    found: dict[str, list[tuple[str, str, int]]] = {}
    for key, transaction_id, member_id, points in ledger.query(
        "SELECT idempotency_key, transaction_id, member_id, points FROM transactions WHERE program_id = %(p)s"
    ):
        found.setdefault(key, []).append((transaction_id, member_id, points))
    return found


def assert_acknowledged_present_once(ledger: Ledger, ops: list[Op]) -> int:
    """Every acknowledged transaction is in the ledger exactly once, under its key and id.
    Returns how many acknowledged writes were checked."""
    by_key = transactions_by_key(ledger)
    checked = 0
    for op in ops:
        if op.code != OK:
            continue
        rows = by_key.get(op.key, [])
        assert len(rows) == 1, f"acknowledged {op.key} ({op.transaction_id}) is in the ledger {len(rows)} times"
        assert rows[0][0] == op.transaction_id, (op, rows)
        assert rows[0][1] == op.member_id and rows[0][2] == op.points, (op, rows)
        checked += 1
    ids = [tid for rows in by_key.values() for tid, _, _ in rows]
    assert len(ids) == len(set(ids))
    return checked


def assert_ledger_consistent(ledger: Ledger, ops: list[Op]) -> None:
    """No key has more than one transaction; every final OK is there; nothing unexplained;
    cached balances equal the sum of transactions and of entries; `verify` is clean."""
    by_key = transactions_by_key(ledger)
    doubled = {key: rows for key, rows in by_key.items() if len(rows) > 1}
    assert not doubled, f"keys with more than one transaction: {list(doubled.items())[:5]}"
    ours = {op.key: op for op in ops}
    for op in ops:
        assert op.acknowledged, op
        rows = by_key.get(op.key, [])
        if op.code == OK:
            assert [r[0] for r in rows] == [op.transaction_id], (op, rows)
        else:
            assert rows == [], f"a refused op left a transaction: {op} {rows}"
    strangers = [key for key in by_key if key not in ours and not key.startswith("setup-")]
    assert not strangers, f"transactions nobody sent: {strangers[:5]}"

    balances = ledger.query(
        """SELECT m.member_id, m.posted,
                  COALESCE((SELECT SUM(t.points) FROM transactions t
                            WHERE t.program_id = m.program_id AND t.member_id = m.member_id), 0),
                  COALESCE((SELECT SUM(e.points) FROM entries e
                            WHERE e.program_id = m.program_id AND e.member_id = m.member_id), 0)
           FROM members m WHERE m.program_id = %(p)s"""
    )
    wrong = [row for row in balances if not row[1] == row[2] == row[3]]
    assert not wrong, f"(member, posted, sum of transactions, sum of entries): {wrong[:5]}"
    assert all(row[1] >= 0 for row in balances), balances

    done = ledger.verify()
    assert done.returncode == 0, done.stdout + done.stderr

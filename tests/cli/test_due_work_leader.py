"""The due work runs in exactly one place across servers sharing a database, and moves to
another server within one interval when its leader dies (ledger/store/leadership.py).

Separate `loyalty-ledger serve` processes on one database stand for servers on several
machines. On PostgreSQL exactly one session holds the advisory lock, named after the
leading process; on SQLite the lock file names it. Holds that expire are lapsed by the
leader alone (its "due work" log lines are the only ones), the Prometheus gauge
loyalty_due_work_leader says 1 there and 0 elsewhere, and after kill -9 of the leader
another server leads within one interval and lapses the next holds. The post-purchase
moments are told once each across a change of leader: what the old leader told, the new
one finds told and tells only what came after.
"""

from __future__ import annotations

import time
import urllib.request

import grpc
import pytest
from sqlalchemy import text

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc
from ledger.store import leadership, locks
from ledger.store.engine import create_engine_for
from tests.cli.processes import ServerProcess, free_port, run_ok, wait_until
from tests.databases import connect, postgres_database, sqlite_database

INTERVAL_S = 1.5
LEADS = "this process now leads the due work"


class Fleet:
    """Servers on one database, each on its own port with its own metrics port."""

    def __init__(self, url: str, count: int, *more_args: str) -> None:
        self.url = url
        self.servers: list[ServerProcess] = []
        self.metrics: dict[int, int] = {}
        for _ in range(count):
            metrics_port = free_port()
            extra = (
                "--workers", "4", "--due-work-interval", str(INTERVAL_S), "--metrics-port", str(metrics_port), *more_args,
            )
            server = ServerProcess.serve(url, f"127.0.0.1:{free_port()}", extra=extra)
            self.servers.append(server)
            self.metrics[server.process.pid] = metrics_port
        for server in self.servers:
            server.wait_serving()

    def by_pid(self, pid: int) -> ServerProcess:
        return next(server for server in self.servers if server.process.pid == pid)

    def leaders_logged(self) -> list[int]:
        """Pids of the servers that logged taking the leadership, in order of the lines."""
        lines = [line for server in self.servers for line in server.logged(LEADS)]
        return [line["pid"] for line in sorted(lines, key=lambda line: line["ts"])]

    def lapsing_pids(self) -> set[int]:
        return {line["pid"] for server in self.servers for line in server.logged("due work") if line["holds_lapsed"]}

    def gauge(self, pid: int) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics[pid]}/metrics", timeout=5) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith("loyalty_due_work_leader "):
                    return float(line.split()[1])
        raise AssertionError("no loyalty_due_work_leader gauge")

    def kill_all(self) -> None:
        for server in self.servers:
            server.kill()


def holds_lapse(fleet: Fleet, target: str, key: str, tag: str, count: int = 3) -> None:
    """Makes count holds of one second on a new member, waits until every one is LAPSED."""
    metadata = (("authorization", f"Bearer {key}"),)
    member = f"m-{tag}"
    with grpc.insecure_channel(target) as channel:
        ledger = ledger_pb2_grpc.LedgerStub(channel)
        ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=member), metadata=metadata, timeout=10)
        order = common_pb2.Order(order_id=f"o-{tag}", channel=common_pb2.CHANNEL_POS, amount=10_000, currency="USD")
        earn = ledger_pb2.EarnRequest(member_id=member, idempotency_key=f"e-{tag}", order=order)
        ledger.Earn(earn, metadata=metadata, timeout=10)
        for number in range(count):
            request = ledger_pb2.AuthorizeRedemptionRequest(
                member_id=member, idempotency_key=f"h-{tag}-{number}", points=1, ttl_seconds=1
            )
            ledger.AuthorizeRedemption(request, metadata=metadata, timeout=10)
    engine = create_engine_for(fleet.url, pool_size=1)
    query = text("SELECT COUNT(*) FROM holds WHERE member_id = :m AND state = 'LAPSED'")

    def lapsed() -> bool:
        with engine.connect() as conn:  # a statement of its own each time (on SQLite, no lock kept)
            return conn.execute(query, {"m": member}).scalar_one() == count

    try:
        wait_until(lapsed, 1 + 2 * INTERVAL_S + 5, "holds did not lapse", interval=0.2)
    finally:
        engine.dispose()


def postgres_lock_holders(url: str) -> list[str]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            classid, objid = locks.advisory_ids(locks.DUE_WORK_LEADER)
            cur.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid",
                (classid, objid),
            )
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def who_leads(url: str, backend: str, lock_path) -> int | None:
    """The pid of the leading process, as the database (or the lock file) says."""
    if backend == "postgresql":
        holders = postgres_lock_holders(url)
        assert len(holders) <= 1, holders
        return int(holders[0].rsplit(":", 1)[1]) if holders else None
    content = lock_path.read_text().strip() if lock_path.exists() else ""
    return int(content.rsplit(":", 1)[1]) if content else None


@pytest.mark.parametrize("backend, count", [("postgresql", 3), ("sqlite", 2)])
def test_one_leader_across_servers_and_a_takeover_within_one_interval(backend, count, tmp_path):
    database = postgres_database("loyalty_leader") if backend == "postgresql" else sqlite_database(tmp_path)
    with database as url:
        _, key = run_ok(url, "program", "create", "leader")
        lock_path = None if backend == "postgresql" else locks.lock_file(create_engine_for(url).url, "leader")
        fleet = Fleet(url, count)
        try:
            leader = wait_until(lambda: who_leads(url, backend, lock_path), 10, "nobody leads")
            assert fleet.leaders_logged() == [leader]
            pids = [server.process.pid for server in fleet.servers]
            for pid in pids:
                if pid != leader:
                    fleet.by_pid(pid).wait_logged("another process leads the due work; this one stands by")
            assert {pid: fleet.gauge(pid) for pid in pids} == {pid: float(pid == leader) for pid in pids}
            if backend == "postgresql":
                host = leadership.process_name().split(":")[0]
                assert postgres_lock_holders(url) == [f"loyalty-ledger leader {host}:{leader}"]

            holds_lapse(fleet, fleet.servers[0].target, key, "before")
            assert wait_until(fleet.lapsing_pids, 5, "no due work logged") == {leader}

            killed = fleet.by_pid(leader)
            killed.process.kill()
            killed.process.wait(timeout=10)
            took_over_in = _time_until_someone_else_leads(url, backend, lock_path, leader)
            assert took_over_in <= INTERVAL_S + 1.0, f"the leadership moved after {took_over_in:.2f}s"
            print(f"\n{backend}: the leadership moved {took_over_in:.2f}s after kill -9 (interval {INTERVAL_S}s)")
            successor = who_leads(url, backend, lock_path)
            assert successor in pids and successor != leader
            wait_until(lambda: fleet.gauge(successor) == 1.0, 5, "the successor's gauge")

            survivor = next(server for server in fleet.servers if server.process.poll() is None)
            holds_lapse(fleet, survivor.target, key, "after")
            wait_until(lambda: successor in fleet.lapsing_pids(), 5, "the successor logged no due work")
            assert fleet.lapsing_pids() == {leader, successor}
        finally:
            fleet.kill_all()


def _time_until_someone_else_leads(url, backend, lock_path, old_leader) -> float:
    started = time.monotonic()
    wait_until(
        lambda: who_leads(url, backend, lock_path) not in (None, old_leader),
        INTERVAL_S + 5,
        "nobody took the leadership over",
        interval=0.02,
    )
    return time.monotonic() - started


def test_each_moment_is_told_once_across_a_change_of_leader():
    """Two servers tell the moments at every due-work run (--moments-interval 0). The leader
    tells the review requests of the first orders; after kill -9 of it, the successor tells
    those of the orders placed since, and none of the first ones again."""
    from datetime import datetime, timedelta, timezone

    from google.protobuf import field_mask_pb2
    from google.protobuf.timestamp_pb2 import Timestamp

    from loyalty.v1 import events_pb2, events_pb2_grpc, programs_pb2, programs_pb2_grpc

    with postgres_database("loyalty_moments_leader") as url:
        _, key = run_ok(url, "program", "create", "moments")
        metadata = (("authorization", f"Bearer {key}"),)
        fleet = Fleet(url, 2, "--moments-interval", "0")
        placed = Timestamp()
        placed.FromDatetime(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=11))

        def place_orders(target: str, tag: str, count: int) -> None:
            with grpc.insecure_channel(target) as channel:
                ledger = ledger_pb2_grpc.LedgerStub(channel)
                for number in range(count):
                    member = f"m-{tag}-{number % 7}"
                    ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=member), metadata=metadata, timeout=10)
                    order = common_pb2.Order(
                        order_id=f"o-{tag}-{number}", channel=common_pb2.CHANNEL_POS, amount=1_000, currency="USD",
                        occur_time=placed,
                    )
                    request = ledger_pb2.EarnRequest(member_id=member, idempotency_key=f"e-{tag}-{number}", order=order)
                    ledger.Earn(request, metadata=metadata, timeout=10)

        def requested(target: str) -> list[str]:
            with grpc.insecure_channel(target) as channel:
                found, token = [], ""
                while True:
                    page = events_pb2_grpc.EventsStub(channel).ListEvents(
                        events_pb2.ListEventsRequest(types=["review.requested"], page_size=500, page_token=token),
                        metadata=metadata,
                        timeout=10,
                    )
                    found += [event.review_requested.order_id for event in page.events]
                    token = page.next_page_token
                    if not token:
                        return found

        try:
            first = fleet.servers[0].target
            with grpc.insecure_channel(first) as channel:
                programs_pb2_grpc.ProgramsStub(channel).UpdateProgram(
                    programs_pb2.UpdateProgramRequest(
                        program=programs_pb2.Program(moments=programs_pb2.PostPurchaseMoments(review_request_days=10)),
                        update_mask=field_mask_pb2.FieldMask(paths=["moments"]),
                    ),
                    metadata=metadata,
                    timeout=10,
                )
            leader = wait_until(lambda: who_leads(url, "postgresql", None), 10, "nobody leads")
            place_orders(first, "before", 60)
            wait_until(lambda: len(requested(first)) >= 60, 2 * INTERVAL_S + 10, "the leader told no review requests")

            killed = fleet.by_pid(leader)
            killed.process.kill()
            killed.process.wait(timeout=10)
            survivor = next(server for server in fleet.servers if server.process.poll() is None)
            place_orders(survivor.target, "after", 40)
            wait_until(lambda: len(requested(survivor.target)) >= 100, 2 * INTERVAL_S + 15, "the successor told none")
            time.sleep(2 * INTERVAL_S)  # a few more runs of the successor's: nothing told twice
            told = requested(survivor.target)
            assert sorted(told) == sorted([f"o-before-{n}" for n in range(60)] + [f"o-after-{n}" for n in range(40)])
            told_by = {line["pid"] for line in survivor.logged("due work") if line.get("moments_told")}
            assert survivor.process.pid in told_by
        finally:
            fleet.kill_all()

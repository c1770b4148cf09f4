"""`loyalty-ledger serve` and `python server.py` as an operator runs them (DESIGN.md section 4).

Proves, against real subprocesses:
(a) the embedded default: with no LOYALTY_DATABASE_URL, serve creates ./loyalty.db and a
    `demo` program whose admin key is printed once, works over gRPC, and is not printed
    again on the next start; server.py serves the same way;
(b) grpc.health.v1 answers SERVING and server reflection lists the loyalty.v1 services (Ledger,
    Programs, Events);
(c) graceful shutdown: a slow in-flight call (held on a row lock) still completes OK after
    SIGTERM while new connections are refused; under load, no call is cut off mid-flight
    (every call completes OK or is refused without running), exactly the acknowledged
    writes are in the ledger, the process exits 0 within its grace period and `verify` is
    clean (on PostgreSQL and SQLite); a SIGTERM delivered to any thread stops the server;
(d) one structured JSON log line per loyalty.v1 call on stderr (rpc, code, duration_ms, program).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from sqlalchemy import text

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc, programs_pb2, programs_pb2_grpc
from ledger.store.engine import create_engine_for
from tests.cli.processes import SERVER_PY, ServerProcess, free_port, json_lines, run_cli, run_ok
from tests.databases import postgres_database

DEMO_KEY = re.compile(r"^(lk_\S+)$")
GRACE_SECONDS = 10


def bearer(key: str):
    return (("authorization", f"Bearer {key}"),)


def get_program(target: str, key: str) -> programs_pb2.Program:
    with grpc.insecure_channel(target) as channel:
        stub = programs_pb2_grpc.ProgramsStub(channel)
        return stub.GetProgram(programs_pb2.GetProgramRequest(), metadata=bearer(key), timeout=10).program


def demo_key(server: ServerProcess) -> str:
    """The admin key printed after the 'Created program demo' line."""
    server.wait_for_stdout(re.compile(r"Created program 'demo'"))
    return server.wait_for_stdout(DEMO_KEY).group(1)


# (a) the embedded default -------------------------------------------------------------


def test_serve_defaults_to_loyalty_db_with_a_demo_program_shown_once(tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    with ServerProcess.serve(None, listen, cwd=tmp_path) as first:
        key = demo_key(first)
        target = first.wait_serving()
        assert target == listen
        assert (tmp_path / "loyalty.db").is_file()
        assert get_program(target, key).name == "demo"
        assert first.terminate() == 0
    assert first.stdout.count(key) == 1
    assert key not in first.stderr, "the key must not reach the logs"

    with ServerProcess.serve(None, f"127.0.0.1:{free_port()}", cwd=tmp_path) as second:
        target = second.wait_serving()
        assert get_program(target, key).name == "demo"
        assert second.terminate() == 0
    assert "lk_" not in second.stdout, second.stdout
    assert "demo" not in second.stdout, second.stdout


def test_server_py_serves_like_serve(tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    command = [sys.executable, str(SERVER_PY), "--listen", listen]
    with ServerProcess(command, None, cwd=tmp_path) as server:
        key = demo_key(server)
        assert server.wait_serving() == listen
        assert (tmp_path / "loyalty.db").is_file()
        assert get_program(listen, key).name == "demo"
        assert server.terminate() == 0


# (b) health and reflection --------------------------------------------------------------


@pytest.fixture
def running(database_url):
    """A server on a fresh database of each backend, with a program's admin key."""
    lines = run_ok(database_url, "program", "create", "serve-test")
    with ServerProcess.serve(database_url, extra=("--grace", str(GRACE_SECONDS))) as server:
        server.wait_serving()
        server.program_id, server.admin_key = lines
        server.database_url = database_url
        yield server


def test_health_answers_serving_for_the_server_and_each_service(running):
    with grpc.insecure_channel(running.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "loyalty.v1.Ledger", "loyalty.v1.Programs", "loyalty.v1.Events"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_the_loyalty_services(running):
    with grpc.insecure_channel(running.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"loyalty.v1.Ledger", "loyalty.v1.Programs", "loyalty.v1.Events", "grpc.health.v1.Health"} <= services
        # Enough for grpcurl: the full descriptors resolve, with their methods.
        ledger = database.FindFileContainingSymbol("loyalty.v1.Ledger")
        methods = {m.name for s in ledger.service if s.name == "Ledger" for m in s.method}
        assert {"Earn", "Redeem", "GetMember"} <= methods
        events = database.FindFileContainingSymbol("loyalty.v1.Events")
        assert {m.name for s in events.service if s.name == "Events" for m in s.method} == {"ListEvents", "WatchEvents"}


# (c) graceful shutdown --------------------------------------------------------------------


CALLERS = 24
LOADED_AFTER = 100  # completed calls before SIGTERM, so that many more are in flight when it lands
OK, UNAVAILABLE, CANCELLED = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED


def earn_request(member_id: str, order_id: str) -> ledger_pb2.EarnRequest:
    return ledger_pb2.EarnRequest(
        member_id=member_id,
        idempotency_key=f"k-{order_id}",
        order=common_pb2.Order(order_id=order_id, channel=common_pb2.CHANNEL_POS, amount=1000, currency="USD"),
    )


def enroll(target: str, key: str, *member_ids: str) -> None:
    with grpc.insecure_channel(target) as channel:
        ledger = ledger_pb2_grpc.LedgerStub(channel)
        for member_id in member_ids:
            ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=member_id), metadata=bearer(key), timeout=10)


def _earn_until_refused(target: str, key: str, worker: int, loaded: threading.Event, outcomes: list) -> None:
    """Earns in a loop until the server refuses (it shut down); records (order_id, status, details)."""
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        number = 0
        while time.monotonic() < deadline:
            number += 1
            order_id = f"o-{worker}-{number}"
            try:
                stub.Earn(earn_request(f"m-{worker % 6}", order_id), metadata=bearer(key), timeout=20)
                outcomes.append((order_id, OK, ""))
                if len(outcomes) >= LOADED_AFTER:
                    loaded.set()
            except grpc.RpcError as error:
                outcomes.append((order_id, error.code(), error.details()))
                if error.code() == UNAVAILABLE:
                    return


def earned_orders(database_url: str) -> set[str]:
    engine = create_engine_for(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT order_id FROM transactions WHERE kind = 'EARN'")).scalars())
    finally:
        engine.dispose()


def test_sigterm_under_load_loses_nothing_and_exits_cleanly(running):
    enroll(running.target, running.admin_key, *(f"m-{n}" for n in range(6)))
    outcomes: list[tuple[str, grpc.StatusCode, str]] = []
    loaded = threading.Event()
    with futures.ThreadPoolExecutor(CALLERS) as pool:
        callers = [
            pool.submit(_earn_until_refused, running.target, running.admin_key, worker, loaded, outcomes)
            for worker in range(CALLERS)
        ]
        assert loaded.wait(60), f"no load built up: {outcomes[:5]}\n{running.describe()}"
        started = time.monotonic()
        exit_code = running.terminate(timeout=GRACE_SECONDS + 10)
        stopped_in = time.monotonic() - started
        for caller in futures.as_completed(callers, timeout=90):
            caller.result()

    assert exit_code == 0, running.describe()
    assert stopped_in < GRACE_SECONDS + 5
    unexpected = [(order, code.name, details) for order, code, details in outcomes if code not in (OK, UNAVAILABLE, CANCELLED)]
    assert not unexpected, f"calls failed instead of finishing or being refused: {unexpected[:10]}"
    assert any(code == UNAVAILABLE for _, code, _ in outcomes), "every caller runs until the server refuses it"

    # Nothing lost, nothing phantom: exactly the acknowledged Earns are in the ledger.
    acknowledged = {order for order, code, _ in outcomes if code == OK}
    assert earned_orders(running.database_url) == acknowledged

    # No call was cut off mid-flight: the server logged (so ran) exactly the acknowledged Earns.
    # Known issue, timing-dependent so not asserted away: a call that reaches gRPC core just as
    # it shuts down, before the server dispatched it, is answered CANCELLED rather than
    # UNAVAILABLE (core kills undispatched calls), and loyalty.client does not retry CANCELLED.
    # Such a call must never have run, and did not: it left no log line and no transaction.
    earns = [line for line in json_lines(running.stderr) if line.get("rpc") == "Ledger.Earn"]
    assert {line["code"] for line in earns} == {"OK"}, running.stderr[-4000:]
    assert len(earns) == len(acknowledged)

    verify = run_cli(running.database_url, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.fixture
def pg_running():
    with postgres_database() as url:
        program_id, admin_key = run_ok(url, "program", "create", "slow-call")
        with ServerProcess.serve(url, extra=("--grace", str(GRACE_SECONDS))) as server:
            server.wait_serving()
            server.program_id, server.admin_key, server.database_url = program_id, admin_key, url
            yield server


def _wait_for_lock_waiter(conn, timeout: float = 10) -> None:
    """Polls pg_stat_activity until one of the server's sessions waits for a row lock."""
    deadline = time.monotonic() + timeout
    query = text(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'loyalty-ledger' "
        "AND datname = current_database() AND wait_event_type = 'Lock'"
    )
    while conn.execute(query).scalar_one() == 0:
        assert time.monotonic() < deadline, "the Earn never reached the member's row lock"
        time.sleep(0.01)


def _wait_until_refusing_new_connections(server: ServerProcess, timeout: float = 10) -> None:
    """Polls with new connections until the server no longer takes new work, while still running."""
    deadline = time.monotonic() + timeout
    while True:
        assert server.process.poll() is None, f"the server exited while a call was in flight\n{server.describe()}"
        assert time.monotonic() < deadline, "the server kept accepting new connections after SIGTERM"
        with grpc.insecure_channel(server.target) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError as error:
                if error.code() == UNAVAILABLE:
                    return  # the listener is closed
                if error.code() == CANCELLED:
                    continue  # raced with the shutdown itself (see the known issue above): look again
                raise
            if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                return  # still listening, but draining


def test_sigterm_waits_for_a_slow_in_flight_call(pg_running):
    """A call held up inside the server (its member row is locked by another session, like a
    slow statement) still completes OK after SIGTERM, while new connections are already
    refused; then the process exits 0. PostgreSQL's pg_stat_activity shows the call waiting."""
    server = pg_running
    enroll(server.target, server.admin_key, "m-1")
    blocker = create_engine_for(server.database_url, pool_size=1)
    try:
        with blocker.connect() as holder, blocker.connect() as observer:
            lock = holder.begin()
            holder.execute(
                text("SELECT 1 FROM members WHERE program_id = :p AND member_id = 'm-1' FOR UPDATE"),
                {"p": server.program_id},
            )
            with grpc.insecure_channel(server.target) as channel:
                call = ledger_pb2_grpc.LedgerStub(channel).Earn.future(
                    earn_request("m-1", "slow-1"), metadata=bearer(server.admin_key), timeout=30
                )
                # The server's lock_timeout (2 s) bounds how long the call may wait: act at once.
                _wait_for_lock_waiter(observer)
                server.process.send_signal(signal.SIGTERM)
                _wait_until_refusing_new_connections(server)
                lock.rollback()
                answer = call.result(timeout=20)
            assert answer.transaction.points > 0
    finally:
        blocker.dispose()
    assert server.wait(timeout=GRACE_SECONDS) == 0, server.describe()
    assert earned_orders(server.database_url) == {"slow-1"}
    verify = run_cli(server.database_url, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def wait_until_main_thread_sleeps(pid: int, timeout: float = 10) -> None:
    """Polls /proc until the main thread has been asleep on a futex (its wait for a signal) for a
    few consecutive looks, so that the signal below cannot be noticed by a running main thread."""
    deadline = time.monotonic() + timeout
    asleep = 0
    while asleep < 5:
        assert time.monotonic() < deadline, "the server's main thread never settled into its wait"
        with open(f"/proc/{pid}/task/{pid}/wchan") as wchan, open(f"/proc/{pid}/task/{pid}/stat") as stat:
            sleeping = wchan.read().startswith("futex") and stat.read().rsplit(")", 1)[1].split()[0] == "S"
        asleep = asleep + 1 if sleeping else 0
        time.sleep(0.02)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="picks the receiving thread through /proc")
def test_sigterm_received_by_any_thread_stops_the_server(running):
    """A process-directed signal may be delivered to any thread that does not block it (gRPC's
    threads do not); CPython then only sets a flag that the main thread must wake up to see.
    Regression test for serve_until_signal waiting without a timeout, which ignored such a
    SIGTERM forever. kill(2) on a thread id makes the kernel prefer that thread, so the case
    is reproduced every time instead of once in a few dozen shutdowns."""
    pid = running.process.pid
    wait_until_main_thread_sleeps(pid)
    others = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)
    assert others, "the server runs gRPC threads"
    os.kill(others[0], signal.SIGTERM)
    assert running.wait(timeout=GRACE_SECONDS) == 0


# (d) structured call logs ---------------------------------------------------------------


def test_one_json_log_line_per_call(running):
    admin = bearer(running.admin_key)
    calls = []  # (rpc, expected code, expected program)
    with grpc.insecure_channel(running.target) as channel:
        ledger = ledger_pb2_grpc.LedgerStub(channel)
        programs = programs_pb2_grpc.ProgramsStub(channel)
        programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=admin, timeout=10)
        calls.append(("Programs.GetProgram", "OK", running.program_id))
        ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-1"), metadata=admin, timeout=10)
        calls.append(("Ledger.EnrollMember", "OK", running.program_id))
        with pytest.raises(grpc.RpcError):
            ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="nobody"), metadata=admin, timeout=10)
        calls.append(("Ledger.GetMember", "NOT_FOUND", running.program_id))
        with pytest.raises(grpc.RpcError):
            ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="m-1"), metadata=bearer("lk_unknown"), timeout=10)
        calls.append(("Ledger.GetMember", "UNAUTHENTICATED", ""))
        # Standard services are not loyalty.v1 calls: no call line for them.
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert running.terminate() == 0

    logged = [line for line in json_lines(running.stderr) if "rpc" in line]
    assert [(line["rpc"], line["code"], line["program"]) for line in logged] == calls, running.stderr
    for line in logged:
        assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0, line
    assert running.admin_key not in running.stderr, "keys must never reach the logs"

"""`serve --processes N` supervises its children (ledger/supervision.py), through the real
command line:

- kill -9 of the parent: every child is gone within a few seconds and the port is closed
  (they once served on, and a restart then gave two generations of listeners);
- kill -9 of a child, the one leading the due work: a new child serves in the dead one's
  place, another child leads within one interval, and holds still lapse;
- SIGTERM stops every child and the service exits 0;
- children that keep dying stop the whole service with a non-zero exit, rather than it
  running on silently degraded.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from contextlib import contextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc
from ledger.store.engine import create_engine_for
from tests.cli.processes import ServerProcess, alive, free_port, run_ok, wait_until

INTERVAL_S = 1.0
STARTED = "server process started"
LEADS = "this process now leads the due work"


def serve_processes(url: str, *extra: str) -> ServerProcess:
    server = ServerProcess.serve(url, f"127.0.0.1:{free_port()}", extra=("--processes", "2", "--workers", "4", *extra))
    server.wait_serving()
    server.wait_logged("serving", count=2)
    return server


def child_pids(server: ServerProcess) -> dict[int, int]:
    """index -> pid of the children the parent started last."""
    return {line["index"]: line["child_pid"] for line in server.logged(STARTED)}


def health_check(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def port_closed(target: str) -> bool:
    host, port = target.rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_children_die_with_the_parent_killed_by_sigkill(tmp_path):
    with serve_processes(f"sqlite:///{tmp_path / 'ledger.db'}", "--due-work-interval", "0") as server:
        children = list(child_pids(server).values())
        assert len(children) == 2 and all(alive(pid) for pid in children)
        server.process.kill()  # SIGKILL: the parent cannot pass anything on
        server.process.wait(timeout=10)
        killed_at = time.monotonic()
        wait_until(lambda: not any(alive(pid) for pid in children), 5, "children still running after the parent died")
        gone_in = time.monotonic() - killed_at
        wait_until(lambda: port_closed(server.target), 5, "the port is still served")
    assert gone_in < 5
    print(f"\nchildren gone {gone_in:.2f}s after kill -9 of the parent")
    assert server.logged("the parent process is gone; shutting down"), server.stderr[-3000:]


def test_sigterm_stops_every_child_and_exits_0(tmp_path):
    with serve_processes(f"sqlite:///{tmp_path / 'ledger.db'}", "--due-work-interval", "0") as server:
        children = list(child_pids(server).values())
        assert server.terminate() == 0, server.describe()
    assert not any(alive(pid) for pid in children)
    assert len(server.logged("stopped")) == 2


def earn_and_hold(target: str, key: str, ttl_seconds: int) -> str:
    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(target) as channel:
        ledger = ledger_pb2_grpc.LedgerStub(channel)
        ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-1"), metadata=metadata, timeout=10)
        order = common_pb2.Order(order_id="o-1", channel=common_pb2.CHANNEL_POS, amount=10_000, currency="USD")
        ledger.Earn(
            ledger_pb2.EarnRequest(member_id="m-1", idempotency_key="earn-1", order=order), metadata=metadata, timeout=10
        )
        hold = ledger.AuthorizeRedemption(
            ledger_pb2.AuthorizeRedemptionRequest(
                member_id="m-1", idempotency_key="hold-1", points=10, ttl_seconds=ttl_seconds
            ),
            metadata=metadata,
            timeout=10,
        ).hold
    return hold.hold_id


def hold_state(url: str, hold_id: str) -> str:
    engine = create_engine_for(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT state FROM holds WHERE hold_id = :h"), {"h": hold_id}).scalar_one()
    finally:
        engine.dispose()


def test_a_killed_child_is_replaced_and_due_work_goes_on(database_url):
    """The child leading the due work is killed with SIGKILL: another child takes over within
    one interval (the survivor, or the new child the parent starts at once in the dead one's
    place), and a hold that expires afterwards still lapses."""
    _, key = run_ok(database_url, "program", "create", "supervised")
    with serve_processes(database_url, "--due-work-interval", str(INTERVAL_S)) as server:
        leader = server.wait_logged(LEADS)[0]["pid"]
        children = child_pids(server)
        assert leader in children.values()
        index = next(i for i, pid in children.items() if pid == leader)

        killed_at = time.monotonic()
        os.kill(leader, signal.SIGKILL)
        successor = server.wait_logged(LEADS, count=2, timeout=10)[1]["pid"]
        took_over_in = time.monotonic() - killed_at
        assert took_over_in <= INTERVAL_S + 1.0, f"took over after {took_over_in:.2f}s"

        died = server.wait_logged("server process died; starting another", timeout=10)[0]
        assert (died["index"], died["child_pid"], died["exit"]) == (index, leader, "SIGKILL")
        wait_until(lambda: child_pids(server)[index] != leader, 10, "no new child in the dead one's place")
        replacement = child_pids(server)[index]
        server.wait_logged("serving", count=3)
        assert alive(replacement) and server.process.poll() is None
        # The survivor or the replacement (it asks at once when it starts) leads; the other stands by.
        assert successor != leader and successor in set(children.values()) | {replacement}
        assert alive(successor)
        other = next(pid for pid in (*children.values(), replacement) if pid not in (leader, successor))
        server.wait_logged("another process leads the due work; this one stands by", pid=other)
        assert not server.logged(LEADS, pid=other)

        hold_id = earn_and_hold(server.target, key, ttl_seconds=1)
        wait_until(lambda: hold_state(database_url, hold_id) == "LAPSED", 1 + 2 * INTERVAL_S + 3, "the hold did not lapse")
        for _ in range(8):  # new connections land on either child (SO_REUSEPORT): both answer
            assert health_check(server.target) == health_pb2.HealthCheckResponse.SERVING
        assert server.terminate() == 0, server.describe()


@contextmanager
def taken_port_after_a_free_one():
    """Yields a free port P while this process listens on P + 1."""
    for _ in range(50):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1] - 1
        if _bindable(port):
            taken.listen()
            try:
                yield port
            finally:
                taken.close()
            return
        taken.close()
    raise AssertionError("no free port below a taken one")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_children_that_keep_dying_stop_the_service_with_a_non_zero_exit(tmp_path):
    """Child 1's metrics port is taken, so every child 1 dies at start: after a few restarts
    (with backoff) the parent stops child 0 too and exits 1."""
    with taken_port_after_a_free_one() as metrics_port:
        extra = ("--processes", "2", "--due-work-interval", "0", "--metrics-port", str(metrics_port))
        with ServerProcess.serve(f"sqlite:///{tmp_path / 'ledger.db'}", f"127.0.0.1:{free_port()}", extra=extra) as server:
            code = server.wait(timeout=90)
    assert code == 1, server.describe()
    deaths = server.logged("server process died; starting another")
    assert len(deaths) >= 4 and {line["index"] for line in deaths} == {1}, server.stderr[-3000:]
    assert [line["restart_in_s"] for line in deaths[:4]] == [0.0, 0.5, 1.0, 2.0]
    assert server.logged("server processes keep dying; stopping the service")
    assert not any(alive(pid) for pid in (line["child_pid"] for line in server.logged(STARTED)))


def _report_parent_death_signal(answers) -> None:
    import ctypes

    from ledger import supervision

    supervision.die_with_parent(grace_seconds=1)
    signal_number = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(2, ctypes.byref(signal_number), 0, 0, 0)  # PR_GET_PDEATHSIG
    answers.put(signal_number.value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_child_asks_the_kernel_for_sigterm_at_its_parents_death():
    """Besides the pipe watch seen above: the kernel itself signals the child (prctl)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    child = context.Process(target=_report_parent_death_signal, args=(answers,))
    child.start()
    try:
        assert answers.get(timeout=30) == signal.SIGTERM
    finally:
        child.join(timeout=10)

"""A real `loyalty-ledger serve` under pressure from outside: calls that never send their
request, a crowd of terminals on one member, and a database that stops answering.

- 200 calls that send their headers and never a request message, over 20 connections,
  with and without an API key: Health answers SERVING within its 1 s deadline every time
  and Earns succeed meanwhile; the calls without a key are refused at once
  (UNAUTHENTICATED), the ones with a key are ended after --request-timeout with
  DEADLINE_EXCEEDED / REQUEST_INCOMPLETE (on PostgreSQL and SQLite);
- 160 terminals earning on one member: Health is never refused and answers within 1 s,
  no Earn is turned away, and `verify` is clean afterwards (latency figures: `python -m
  bench stall`, README);
- the database made unreachable (a proxy cut between server and PostgreSQL): Health turns
  NOT_SERVING within 5 s and SERVING again within 5 s of its return.
"""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from bench.scenarios import Context
from bench.stall import press
from loyalty.v1 import ledger_pb2, ledger_pb2_grpc
from tests.cli.processes import ServerProcess, run_ok
from tests.databases import postgres_database
from tests.grpc_helpers import error_details
from tests.tcp_proxy import TcpProxy

MEMBERS = 10
REQUEST_TIMEOUT_S = 6


def _serve(database_url: str, *extra: str) -> tuple[ServerProcess, Context]:
    program_id, key = run_ok(database_url, "program", "create", "pressure")[:2]
    server = ServerProcess.serve(
        database_url, extra=["--due-work-interval", "0", "--request-timeout", str(REQUEST_TIMEOUT_S), *extra]
    )
    server.wait_serving()
    ctx = Context(metadata=(("authorization", f"Bearer {key}"),), members=MEMBERS, hot_member="m0", member_prefix="m")
    with grpc.insecure_channel(server.target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        for n in range(MEMBERS):
            stub.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=f"m{n}"), metadata=ctx.metadata, timeout=10)
    return server, ctx


def _assert_health_always_answered(probe) -> None:
    summary = probe.summary()
    assert probe.health_sent > 20, summary
    assert probe.health_failures == {}, summary
    assert probe.health_within_deadline == probe.health_sent, summary


@pytest.mark.parametrize("with_key", [False, True], ids=["without-key", "with-key"])
def test_unfinished_calls_hold_no_worker_and_are_cut_off(database_url, with_key):
    server, ctx = _serve(database_url)
    with server:
        # Held for less than the request timeout: all 200 stay open the whole time.
        probe, outcomes = press(server.target, ctx, duration=4.5, unfinished=200, connections=20, with_key=with_key)
        _assert_health_always_answered(probe)
        assert probe.earn_ok >= 5 and probe.earn_failures == {}, probe.summary()
        if with_key:
            assert outcomes == {"STILL_OPEN": 200}, outcomes
        else:
            assert outcomes == {"UNAUTHENTICATED": 200}, outcomes  # refused at header time

        if with_key:
            # Held past the request timeout: the server ends every one of them itself.
            probe, outcomes = press(server.target, ctx, duration=REQUEST_TIMEOUT_S + 2, unfinished=200, with_key=True)
            _assert_health_always_answered(probe)
            assert outcomes == {"DEADLINE_EXCEEDED": 200}, outcomes
            with grpc.insecure_channel(server.target) as channel:
                call = channel.stream_unary("/loyalty.v1.Ledger/GetMember")
                with pytest.raises(grpc.RpcError) as refused:
                    call(iter(()), metadata=ctx.metadata, timeout=REQUEST_TIMEOUT_S + 5)
            assert refused.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert error_details(refused.value)[0] == "REQUEST_INCOMPLETE"
        assert server.process.poll() is None, server.describe()


def test_a_crowd_on_one_member_never_starves_health():
    with postgres_database() as url:
        server, ctx = _serve(url)
        with server:
            probe, outcomes = press(server.target, ctx, duration=4, hot_earns=160)
            _assert_health_always_answered(probe)
            assert outcomes.get("OK", 0) > 100, outcomes
            assert set(outcomes) == {"OK"}, outcomes
        verified = run_ok(url, "verify")
        assert '"clean": true' in "\n".join(verified)


def _health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
        except grpc.RpcError as error:
            return -error.code().value[0]


def _wait_for_status(target: str, status: int, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if _health(target) == status:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"health did not turn {health_pb2.HealthCheckResponse.ServingStatus.Name(status)} in {within} s")


def test_health_follows_the_database():
    with postgres_database() as url, TcpProxy(("127.0.0.1", make_url(url).port or 5432)) as proxy:
        proxied = make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        server, ctx = _serve(proxied)
        with server:
            assert _health(server.target) == health_pb2.HealthCheckResponse.SERVING
            proxy.cut()
            went = _wait_for_status(server.target, health_pb2.HealthCheckResponse.NOT_SERVING, 5)
            with grpc.insecure_channel(server.target) as channel:
                with pytest.raises(grpc.RpcError) as refused:
                    ledger_pb2_grpc.LedgerStub(channel).Redeem(
                        ledger_pb2.RedeemRequest(member_id="m1", idempotency_key="k-1", points=1),
                        metadata=ctx.metadata,
                        timeout=10,
                    )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
            assert error_details(refused.value)[0] == "STORE_UNAVAILABLE"
            proxy.restore()
            back = _wait_for_status(server.target, health_pb2.HealthCheckResponse.SERVING, 5)
            with grpc.insecure_channel(server.target) as channel:
                member = ledger_pb2_grpc.LedgerStub(channel).GetMember(
                    ledger_pb2.GetMemberRequest(member_id="m1"), metadata=ctx.metadata, timeout=10
                )
            assert member.member.member_id == "m1"
            assert server.process.poll() is None, server.describe()
        print(f"\nhealth NOT_SERVING {went:.1f} s after the cut, SERVING {back:.1f} s after the return")

"""Statement pages from a read replica (LOYALTY_READ_REPLICA_URL), never the till's checks.

A private primary and its synchronous streaming standby (tests/private_postgres.py). The
server writes to the primary and reads ListTransactions pages from the standby. With the
standby's replay paused (pg_wal_replay_pause: WAL still flushed there, so commits still
return, but not applied), a new Earn is in GetMember's balance at once (the primary's) and
missing from the statement (the replica's) until replay resumes: the pages do come from the
replica, behind by its replay lag, and the balance does not. With the replica gone, pages
answer UNAVAILABLE and the till's calls go on.
"""

from __future__ import annotations

import os

import grpc

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc
from tests.cli.processes import ServerProcess, free_port, run_ok, wait_until
from tests.private_postgres import primary_and_standby

DATABASE = "loyalty_replica"


def test_statement_pages_come_from_the_replica_and_balances_from_the_primary():
    with primary_and_standby() as (primary, standby):
        primary.execute(f'CREATE DATABASE "{DATABASE}"')
        url = primary.url(DATABASE)
        _, key = run_ok(url, "program", "create", "replica")
        os.environ["LOYALTY_READ_REPLICA_URL"] = standby.url(DATABASE)
        try:
            server = ServerProcess.serve(url, f"127.0.0.1:{free_port()}", extra=("--workers", "2", "--due-work-interval", "0"))
        finally:
            os.environ.pop("LOYALTY_READ_REPLICA_URL", None)
        with server, grpc.insecure_channel(server.wait_serving()) as channel:
            ledger = ledger_pb2_grpc.LedgerStub(channel)
            metadata = (("authorization", f"Bearer {key}"),)

            def earn(number: int) -> str:
                order = common_pb2.Order(order_id=f"o-{number}", channel=common_pb2.CHANNEL_POS, amount=10_000, currency="USD")
                request = ledger_pb2.EarnRequest(member_id="m-1", idempotency_key=f"e-{number}", order=order)
                return ledger.Earn(request, metadata=metadata, timeout=10).transaction.transaction_id

            def statement() -> list[str]:
                request = ledger_pb2.ListTransactionsRequest(member_id="m-1", page_size=10)
                page = ledger.ListTransactions(request, metadata=metadata, timeout=10)
                return [t.transaction_id for t in page.transactions]

            def posted() -> int:
                answer = ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="m-1"), metadata=metadata, timeout=10)
                return answer.member.balance.posted

            ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-1"), metadata=metadata, timeout=10)
            first = earn(1)
            wait_until(lambda: statement() == [first], 10, "the replica shows the first earn")
            one_earn = posted()

            standby.execute("SELECT pg_wal_replay_pause()")
            second = earn(2)  # returns: the standby still flushes the WAL it does not apply
            assert posted() == 2 * one_earn  # the balance is the primary's
            assert statement() == [first]  # the page is the replica's, behind while replay waits
            standby.execute("SELECT pg_wal_replay_resume()")
            wait_until(lambda: statement() == [second, first], 10, "the replica caught up")

            standby.stop("immediate")
            try:
                statement()
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
            else:
                raise AssertionError("a page was served without its replica")
            assert posted() == 2 * one_earn

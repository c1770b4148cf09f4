"""Many terminals at once: no point is lost, duplicated or overspent, and a retried request applies once.

Every test starts its threads together on a threading.Barrier; each thread has
its own gRPC channel, every call has a deadline, and an ABORTED / CONFLICT_RETRY
(or DEADLINE_EXCEEDED) answer is retried with the same idempotency key until
settled, as a real terminal would. On PostgreSQL (row locks, READ COMMITTED) and
SQLite (one writer), this proves:
(a) concurrent redeems from one member succeed exactly as often as the available
    points allow; everyone else gets INSUFFICIENT_POINTS; the final balance is exact
    (likewise negative adjustments under NEGATIVE_BALANCE_POLICY_FORBID, and a
    member enrolled by many terminals at once is created once);
(b) a retry storm of one request (same key) is applied once and every attempt gets
    the identical answer (Earn, Redeem, and a refused Redeem); one key raced by
    different requests applies exactly one of them; one order raced under different
    keys earns once; one transaction raced by several reversals is reversed once;
(c) a mixed storm of earns, redeems, adjustments and reversals on a few members leaves each
    balance equal to the sum of the acknowledged transactions, with a statement of
    exactly those transactions and gap-free sequences.
`verify` is clean after each test.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict

import grpc
from google.protobuf import field_mask_pb2

from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2
from tests.conftest import Api
from tests.grpc_helpers import balance, earn, earn_request, enroll, key
from tests.integration.ledger_checks import assert_verify_clean, outcome, statement

OK = grpc.StatusCode.OK
RETRYABLE = {grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
CALL_TIMEOUT = 20.0
RUN_TIMEOUT = 90.0


def settle(call, request, metadata, attempts: int = 50):
    """Sends request until its outcome is known: retries lost races and timeouts with the same key."""
    for _ in range(attempts):
        result = outcome(call, request, metadata, timeout=CALL_TIMEOUT)
        if result[0] not in RETRYABLE:
            return result
        if result[0] == grpc.StatusCode.ABORTED:
            assert result[1] == "CONFLICT_RETRY", result
        time.sleep(random.uniform(0.001, 0.02))
    raise AssertionError(f"never settled: {result}")


def run_together(program, n: int, work, role_key: str | None = None) -> list:
    """Runs work(i, api) in n threads with their own channels, started together; returns the results in order."""
    clients = [Api(program.backend.target, role_key or program.admin_key) for _ in range(n)]
    barrier = threading.Barrier(n, timeout=30)
    results: list = [None] * n
    failures: list = []

    def runner(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i, clients[i])
        except BaseException as error:  # noqa: BLE001 - reported below with its thread
            failures.append((i, error))

    threads = [threading.Thread(target=runner, args=(i,), daemon=True) for i in range(n)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + RUN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "threads still running after the deadline"
    finally:
        for client in clients:
            client.close()
    assert not failures, failures[:3]
    return results


def redeem_request(member_id: str, points: int, idempotency_key: str | None = None) -> ledger_pb2.RedeemRequest:
    return ledger_pb2.RedeemRequest(member_id=member_id, idempotency_key=idempotency_key or key(), points=points)


# ------------------------------------------------------------------ (a) no overspend


def test_concurrent_redeems_spend_exactly_the_available_points(program, api):
    threads = 40
    enroll(api, "m-1")
    earn(api, "m-1", 12_000)  # 120 points: room for exactly 12 redeems of 10
    requests = [redeem_request("m-1", 10) for _ in range(threads)]

    results = run_together(program, threads, lambda i, c: settle(c.ledger.Redeem, requests[i], c.metadata))

    won = [r for r in results if r[0] == OK]
    lost = [r for r in results if r[0] != OK]
    assert len(won) * 10 == 120
    assert {(code, reason) for code, reason, _f, _r in lost} == {(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")}
    assert sorted(r[3].transaction.balance_after for r in won) == list(range(0, 120, 10))
    assert sorted(r[3].transaction.sequence for r in won) == list(range(2, 14))
    assert balance(api, "m-1").posted == 0
    assert len(statement(api, "m-1")) == 13
    # Each settled answer is final: a late retry of every request gets the same one.
    for request, (code, reason, _f, response) in zip(requests, results):
        again = outcome(api.ledger.Redeem, request, api.metadata)
        assert (again[0], again[1]) == (code, reason)
        if code == OK:
            assert again[3] == response
    assert balance(api, "m-1").posted == 0
    assert_verify_clean(program)


def test_concurrent_redeems_many_members_each_exact(pg_program):
    """64 terminals over 4 members on PostgreSQL: each member is spent down exactly, independently."""
    api = pg_program.api()
    try:
        members = [f"m-{i}" for i in range(4)]
        for m in members:
            enroll(api, m)
            earn(api, m, 5_000)  # 50 points each
        requests = [redeem_request(members[i % 4], 5) for i in range(64)]
        results = run_together(pg_program, 64, lambda i, c: settle(c.ledger.Redeem, requests[i], c.metadata))
        won = Counter(requests[i].member_id for i, r in enumerate(results) if r[0] == OK)
        assert won == {m: 10 for m in members}
        assert all(r[1] == "INSUFFICIENT_POINTS" for r in results if r[0] != OK)
        assert all(balance(api, m).posted == 0 for m in members)
    finally:
        api.close()
    assert_verify_clean(pg_program)


def test_concurrent_negative_adjustments_respect_forbid(program, api):
    api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(negative_balance_policy=programs_pb2.NEGATIVE_BALANCE_POLICY_FORBID),
            update_mask=field_mask_pb2.FieldMask(paths=["negative_balance_policy"]),
        ),
        metadata=api.metadata,
    )
    enroll(api, "m-1")
    earn(api, "m-1", 10_000)  # 100 points
    requests = [
        ledger_pb2.AdjustPointsRequest(member_id="m-1", idempotency_key=key(), points=-10, reason="clawback")
        for _ in range(32)
    ]
    results = run_together(program, 32, lambda i, c: settle(c.ledger.AdjustPoints, requests[i], c.metadata))
    assert sum(1 for r in results if r[0] == OK) == 10
    assert {(r[0], r[1]) for r in results if r[0] != OK} == {
        (grpc.StatusCode.FAILED_PRECONDITION, "NEGATIVE_BALANCE_FORBIDDEN")
    }
    assert balance(api, "m-1").posted == 0
    assert_verify_clean(program)


def test_concurrent_enrollment_of_one_member_creates_it_once(program, api):
    request = ledger_pb2.EnrollMemberRequest(member_id="new-shopper")
    results = run_together(program, 24, lambda i, c: settle(c.ledger.EnrollMember, request, c.metadata))
    assert {r[0] for r in results} == {OK}
    assert sum(1 for r in results if r[3].created) == 1
    assert len({(r[3].member.referral_code, r[3].member.enroll_time.ToNanoseconds()) for r in results}) == 1
    assert_verify_clean(program)


# ------------------------------------------------------------------ (b) retry storms


def test_earn_retry_storm_applies_once(program, api):
    enroll(api, "m-1")
    request = earn_request("m-1", 2599)
    results = run_together(program, 20, lambda i, c: settle(c.ledger.Earn, request, c.metadata))
    assert {r[0] for r in results} == {OK}
    first = results[0][3]
    assert all(r[3] == first for r in results), "every attempt gets the identical answer"
    assert first.transaction.points == 25
    assert balance(api, "m-1").posted == 25
    assert [tx.transaction_id for tx in statement(api, "m-1")] == [first.transaction.transaction_id]
    assert_verify_clean(program)


def test_redeem_retry_storm_applies_once(program, api):
    enroll(api, "m-1")
    earn(api, "m-1", 10_000)  # 100 points
    request = redeem_request("m-1", 30)
    results = run_together(program, 20, lambda i, c: settle(c.ledger.Redeem, request, c.metadata))
    assert {r[0] for r in results} == {OK}
    assert len({r[3].SerializeToString(deterministic=True) for r in results}) == 1
    assert results[0][3].balance.available == 70
    assert balance(api, "m-1").posted == 70
    assert len(statement(api, "m-1")) == 2

    # A storm of a refused redeem is refused identically, and recorded once: still refused after points arrive.
    refused = redeem_request("m-1", 500)
    results = run_together(program, 20, lambda i, c: settle(c.ledger.Redeem, refused, c.metadata))
    assert {(r[0], r[1]) for r in results} == {(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")}
    earn(api, "m-1", 100_000)
    assert outcome(api.ledger.Redeem, refused, api.metadata)[1] == "INSUFFICIENT_POINTS"
    assert balance(api, "m-1").posted == 1070
    assert_verify_clean(program)


def test_one_key_raced_by_different_requests_applies_exactly_one(program, api):
    """Ten different earns (ten members) share one key, each sent by two terminals at once."""
    members = [f"m-{i}" for i in range(10)]
    for m in members:
        enroll(api, m)
    shared = key()
    requests = [earn_request(m, 1000 * (i + 1), idempotency_key=shared) for i, m in enumerate(members)]
    results = run_together(program, 20, lambda i, c: settle(c.ledger.Earn, requests[i % 10], c.metadata))

    applied = {i % 10 for i, r in enumerate(results) if r[0] == OK}
    assert len(applied) == 1, "exactly one of the requests owns the key"
    winner = applied.pop()
    for i, (code, reason, _f, response) in enumerate(results):
        if i % 10 == winner:
            assert code == OK and response == results[winner][3]
        else:
            assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    postings = {m: balance(api, m).posted for m in members}
    assert postings == {m: (10 * (winner + 1) if m == members[winner] else 0) for m in members}
    assert_verify_clean(program)


def test_one_order_raced_under_different_keys_earns_once(program, api):
    members = [f"m-{i}" for i in range(8)]
    for m in members:
        enroll(api, m)
    requests = [earn_request(members[i % 8], 2599, order_id="receipt-race") for i in range(24)]
    results = run_together(program, 24, lambda i, c: settle(c.ledger.Earn, requests[i], c.metadata))
    won = [i for i, r in enumerate(results) if r[0] == OK]
    assert len(won) == 1
    assert all(
        (r[0], r[1]) == (grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_EARNED") for i, r in enumerate(results) if i not in won
    )
    assert sum(balance(api, m).posted for m in members) == 25
    assert_verify_clean(program)


def test_one_transaction_raced_by_reversals_is_reversed_once(program, api):
    enroll(api, "m-1")
    earned = earn(api, "m-1", 5000).transaction
    requests = [
        ledger_pb2.ReverseTransactionRequest(transaction_id=earned.transaction_id, idempotency_key=key()) for _ in range(16)
    ]
    results = run_together(program, 16, lambda i, c: settle(c.ledger.ReverseTransaction, requests[i], c.metadata))
    won = [r for r in results if r[0] == OK]
    assert len(won) == 1 and won[0][3].transaction.points == -50
    assert {(r[0], r[1]) for r in results if r[0] != OK} == {
        (grpc.StatusCode.FAILED_PRECONDITION, "TRANSACTION_ALREADY_REVERSED")
    }
    assert balance(api, "m-1").posted == 0
    assert_verify_clean(program)


# ------------------------------------------------------------------ (c) mixed storm


def _mixed_storm(program, threads: int, ops_per_thread: int) -> None:
    api = program.api()
    try:
        members = [f"c-{i}" for i in range(4)]
        opening = {}
        for m in members:
            enroll(api, m)
            opening[m] = api.ledger.AdjustPoints(
                ledger_pb2.AdjustPointsRequest(member_id=m, idempotency_key=key(), points=200, reason="opening"),
                metadata=api.metadata,
            ).transaction

        def work(i: int, client) -> list:
            rng = random.Random(i)
            acked = []
            reversible = []  # this thread's acknowledged transactions, not yet reversed
            for _ in range(ops_per_thread):
                m = rng.choice(members)
                op = rng.choice(("earn", "earn", "redeem", "redeem", "adjust", "reverse"))
                if op == "reverse" and reversible:
                    m, original = reversible.pop(rng.randrange(len(reversible)))
                    call = client.ledger.ReverseTransaction
                    request = ledger_pb2.ReverseTransactionRequest(transaction_id=original, idempotency_key=key())
                elif op in ("earn", "reverse"):
                    op = "earn"
                    call, request = client.ledger.Earn, earn_request(m, rng.randint(100, 5000))
                elif op == "redeem":
                    call, request = client.ledger.Redeem, redeem_request(m, rng.randint(1, 60))
                else:
                    points = rng.choice([-1, 1]) * rng.randint(1, 30)
                    call = client.ledger.AdjustPoints
                    request = ledger_pb2.AdjustPointsRequest(member_id=m, idempotency_key=key(), points=points, reason="storm")
                code, reason, _f, response = settle(call, request, client.metadata)
                if code == OK:
                    acked.append((m, response.transaction))
                    if op != "reverse":
                        reversible.append((m, response.transaction.transaction_id))
                else:
                    assert (op, code, reason) == ("redeem", grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")
            return acked

        results = run_together(program, threads, work)
        acked = defaultdict(list)
        for m, tx in opening.items():
            acked[m].append(tx)
        for per_thread in results:
            for m, tx in per_thread:
                acked[m].append(tx)
        assert sum(len(v) for v in acked.values()) > threads * ops_per_thread // 2

        for m in members:
            txs = acked[m]
            got = statement(api, m, page_size=37)
            state = api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=m), metadata=api.metadata).member
            assert state.balance.posted == sum(tx.points for tx in txs), m
            assert len(got) == len(txs), m
            assert sorted(tx.transaction_id for tx in got) == sorted(tx.transaction_id for tx in txs)
            # The statement holds exactly what was acknowledged, with gap-free sequences and a running balance.
            by_id = {tx.transaction_id: tx for tx in txs}
            running = 0
            for expected_seq, tx in enumerate(reversed(got), start=1):
                assert tx.sequence == expected_seq
                running += tx.points
                assert tx.balance_after == running
                assert (by_id[tx.transaction_id].points, by_id[tx.transaction_id].sequence) == (tx.points, tx.sequence)
                assert by_id[tx.transaction_id].balance_after == tx.balance_after
            assert running == state.balance.posted
            # A redeem never takes the balance below zero, whatever adjustments did around it.
            assert all(tx.balance_after >= 0 for tx in got if tx.kind == common_pb2.TRANSACTION_KIND_REDEEM)
    finally:
        api.close()
    assert_verify_clean(program)


def test_mixed_storm_postgresql(pg_program):
    _mixed_storm(pg_program, threads=32, ops_per_thread=15)


def test_mixed_storm(program):
    _mixed_storm(program, threads=32, ops_per_thread=6)

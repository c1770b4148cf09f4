"""Refunds over real gRPC, on PostgreSQL and SQLite: earned points are clawed back in proportion.

What it proves:
- a partial refund claws back exactly E - floor(E * (A - R) / A) (cumulative, so repeated partial
  refunds never take more than earned) and a full refund after partials has clawed back exactly
  what the order earned, also for random refund sequences (a few hypothesis examples);
- refusals: refunding more than the order -> FAILED_PRECONDITION REFUND_EXCEEDS_ORDER; an unknown
  order, an order of another member or of another program -> NOT_FOUND ORDER_NOT_FOUND; an order
  that earned 0 points -> FAILED_PRECONDITION ORDER_EARNED_NO_POINTS; none of them changes anything;
- still-pending points of the refunded order are cancelled first: pending goes down, available stays;
- spent points: under the default ALLOW policy posted goes negative; under FORBID the clawback stops
  at the posted balance and the rest shows as written off in the breakdown;
- currency is optional (the order's applies); one that is given must be the order's, else
  INVALID_ARGUMENT on currency with nothing written and the key left free;
- the same refund key retried returns the same transaction and claws back once;
- on PostgreSQL, 16 concurrent partial refunds of one order: exactly as many succeed as fit in the
  order amount, the clawbacks add up to exactly what it earned;
- (known bug, xfail) refunding an order whose points already expired claws them back a second
  time out of the member's other points;
- `verify` finds every invariant (balances, lots) intact after each scenario.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta, timezone

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc, programs_pb2
from ledger.service.expiry import run_due_work
from ledger.service.verify import verify
from tests.conftest import new_program
from tests.grpc_helpers import balance, earn, enroll, error_details, expect_error, key

REFUND = common_pb2.TRANSACTION_KIND_REFUND


# --------------------------------------------------------------------------- helpers


def refund(api, member_id: str, order_id: str, amount: int, *, idempotency_key: str | None = None, currency: str = "USD"):
    return api.ledger.RefundOrder(
        ledger_pb2.RefundOrderRequest(
            member_id=member_id,
            order_id=order_id,
            idempotency_key=idempotency_key or key(),
            amount=amount,
            currency=currency,
        ),
        metadata=api.metadata,
    )


def redeem(api, member_id: str, points: int):
    return api.ledger.Redeem(
        ledger_pb2.RedeemRequest(member_id=member_id, idempotency_key=key(), points=points), metadata=api.metadata
    )


def update_program(api, **fields):
    return api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(**fields), update_mask=field_mask_pb2.FieldMask(paths=list(fields))
        ),
        metadata=api.metadata,
    ).program


def days_ago(days: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime((datetime.now(timezone.utc) - timedelta(days=days)).replace(microsecond=0))
    return stamp


def new_member(api) -> str:
    member_id = f"m-{secrets.token_hex(4)}"
    enroll(api, member_id)
    return member_id


def earn_order(api, member_id: str, amount: int, **order) -> str:
    order_id = f"o-{secrets.token_hex(5)}"
    earn(api, member_id, amount, order_id=order_id, **order)
    return order_id


def statement(api, member_id: str, *kinds) -> list:
    return list(
        api.ledger.ListTransactions(
            ledger_pb2.ListTransactionsRequest(member_id=member_id, page_size=200, kinds=list(kinds)),
            metadata=api.metadata,
        ).transactions
    )


def as_tuple(b) -> tuple[int, int, int, int]:
    return (b.posted, b.pending, b.held, b.available)


def assert_clean(program) -> None:
    report = verify(program.backend.db)
    assert report.clean, report.breaches


# --------------------------------------------------------------------------- proportional clawback


def test_partial_refunds_claw_back_in_proportion(program, api):
    member = new_member(api)
    order = earn_order(api, member, 10_000)  # 100.00 -> 100 points
    # 33.33 refunded: keeps floor(100 * 66.67 / 100) = 66
    first = refund(api, member, order, 3333)
    assert first.transaction.kind == REFUND
    assert first.transaction.points == -34
    assert first.transaction.order_id == order
    assert first.transaction.order_amount == 3333
    assert [line.points for line in first.transaction.breakdown] == [-34]
    assert as_tuple(first.balance) == (66, 0, 0, 66)
    # another 33.33: 66.66 refunded, keeps floor(33.34) = 33
    second = refund(api, member, order, 3333)
    assert second.transaction.points == -33
    assert as_tuple(second.balance) == (33, 0, 0, 33)
    assert_clean(program)
    # the rest: everything earned has been clawed back, not a point more
    last = refund(api, member, order, 3334)
    assert last.transaction.points == -33
    assert as_tuple(balance(api, member)) == (0, 0, 0, 0)
    assert [tx.points for tx in statement(api, member, REFUND)] == [-33, -33, -34]
    assert sum(tx.points for tx in statement(api, member, REFUND)) == -100
    assert_clean(program)


def test_full_refund_after_partials_claws_back_exactly_what_was_earned(program, api):
    member = new_member(api)
    keep = earn_order(api, member, 55_555)  # another order's points must stay untouched
    order = earn_order(api, member, 99_999)  # 999 points
    assert as_tuple(balance(api, member)) == (555 + 999, 0, 0, 1554)
    clawed = [refund(api, member, order, part).transaction.points for part in (1, 2, 10_000, 333)]
    assert clawed == [-1, 0, -99, -4]  # keeps floor(999 * (A - R) / A): 998, 998, 899, 895
    assert refund(api, member, order, 99_999 - 10_336).transaction.points == -895
    assert as_tuple(balance(api, member)) == (555, 0, 0, 555)
    # the order is fully refunded now: not one minor unit more
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_ORDER"):
        refund(api, member, order, 1)
    # the other order was never touched and is refunded on its own
    assert refund(api, member, keep, 55_555).transaction.points == -555
    assert as_tuple(balance(api, member)) == (0, 0, 0, 0)
    assert_clean(program)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    earned_amount=st.integers(100, 500_000),
    cuts=st.lists(st.integers(1, 10**6), min_size=1, max_size=5),
)
def test_any_refund_sequence_over_grpc_matches_the_proportional_rule(program, api, earned_amount, cuts):
    member = new_member(api)
    order = earn_order(api, member, earned_amount)
    earned = earned_amount // 100
    total = sum(cuts)
    # scale the cuts onto the order amount so that they add up to all of it
    bounds = [earned_amount * sum(cuts[: i + 1]) // total for i in range(len(cuts))]
    parts = [b - a for a, b in zip([0] + bounds, bounds) if b > a]
    refunded = 0
    for part in parts:
        response = refund(api, member, order, part)
        refunded += part
        kept = earned * (earned_amount - refunded) // earned_amount
        assert response.balance.posted == kept
        assert response.transaction.points <= 0
    assert refunded == earned_amount
    assert balance(api, member).posted == 0
    assert -sum(tx.points for tx in statement(api, member, REFUND)) == earned
    assert_clean(program)


# --------------------------------------------------------------------------- refusals


def test_over_refund_is_refused(program, api):
    member = new_member(api)
    order = earn_order(api, member, 10_000)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_ORDER"):
        refund(api, member, order, 10_001)
    refund(api, member, order, 6_000)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_ORDER"):
        refund(api, member, order, 4_001)
    assert as_tuple(balance(api, member)) == (40, 0, 0, 40)
    assert refund(api, member, order, 4_000).transaction.points == -40
    assert_clean(program)


def test_unknown_order_is_not_found(program, api):
    member = new_member(api)
    earn_order(api, member, 10_000)
    with expect_error(grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND"):
        refund(api, member, "o-never-earned", 100)
    assert as_tuple(balance(api, member)) == (100, 0, 0, 100)


def test_order_of_another_member_is_not_found(program, api):
    owner, stranger = new_member(api), new_member(api)
    order = earn_order(api, owner, 10_000)
    earn_order(api, stranger, 10_000)
    with expect_error(grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND"):
        refund(api, stranger, order, 5_000)
    assert as_tuple(balance(api, owner)) == (100, 0, 0, 100)
    assert as_tuple(balance(api, stranger)) == (100, 0, 0, 100)
    assert_clean(program)


def test_order_of_another_program_is_not_found(program, api):
    other = new_program(program.backend)
    other_api = other.api()
    try:
        member = new_member(other_api)
        order = earn_order(other_api, member, 10_000)
        enroll(api, member)
        with expect_error(grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND"):
            refund(api, member, order, 5_000)
        assert balance(other_api, member).posted == 100
    finally:
        other_api.close()


def test_order_that_earned_nothing_has_nothing_to_claw_back(program, api):
    member = new_member(api)
    order = earn_order(api, member, 99)  # 0.99 earns 0 points (rounded down)
    assert balance(api, member).posted == 0
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "ORDER_EARNED_NO_POINTS"):
        refund(api, member, order, 99)
    assert statement(api, member, REFUND) == []
    assert_clean(program)


def test_refund_without_currency_takes_the_orders_currency(program, api):
    """currency is optional on RefundOrder: the order already has one (DESIGN.md section 4)."""
    update_program(api, currency="EUR")
    member = new_member(api)
    order = earn_order(api, member, 10_000, currency="EUR")
    first = refund(api, member, order, 4_000, currency="")
    assert (first.transaction.points, first.transaction.currency, first.transaction.order_amount) == (-40, "EUR", 4_000)
    # given, it must be the order's: a different one is refused and writes nothing, its key stays free
    refused_key = key()
    for other in ("USD", "usd", "ZZZ"):
        with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="currency"):
            refund(api, member, order, 1_000, currency=other, idempotency_key=refused_key)
    assert as_tuple(balance(api, member)) == (60, 0, 0, 60)
    assert len(statement(api, member, REFUND)) == 1
    rest = refund(api, member, order, 6_000, currency="EUR", idempotency_key=refused_key)
    assert (rest.transaction.points, rest.transaction.currency) == (-60, "EUR")
    # the same key and request again answers the same refund
    again = refund(api, member, order, 6_000, currency="EUR", idempotency_key=refused_key)
    assert again.transaction.transaction_id == rest.transaction.transaction_id
    assert as_tuple(balance(api, member)) == (0, 0, 0, 0)
    assert_clean(program)


# --------------------------------------------------------------------------- pending first, spent points


def test_pending_points_of_the_order_are_cancelled_first(program, api):
    update_program(api, pending_days=14)
    member = new_member(api)
    earn_order(api, member, 50_000, occur_time=days_ago(20))  # 500 points, matured
    order = earn_order(api, member, 100_000)  # 1000 points, pending for 14 days
    assert as_tuple(balance(api, member)) == (1500, 1000, 0, 500)
    half = refund(api, member, order, 50_000)
    assert half.transaction.points == -500
    assert as_tuple(half.balance) == (1000, 500, 0, 500)  # pending down, available unchanged
    assert as_tuple(balance(api, member)) == (1000, 500, 0, 500)
    assert_clean(program)
    rest = refund(api, member, order, 50_000)
    assert as_tuple(rest.balance) == (500, 0, 0, 500)
    # the matured 500 are still all spendable
    assert as_tuple(redeem(api, member, 500).balance) == (0, 0, 0, 0)
    assert_clean(program)


def test_spent_points_under_allow_policy_make_posted_negative(program, api):
    member = new_member(api)
    order = earn_order(api, member, 100_000)  # 1000 points
    redeem(api, member, 800)
    response = refund(api, member, order, 100_000)
    assert response.transaction.points == -1000
    assert as_tuple(response.balance) == (-800, 0, 0, -800)
    assert as_tuple(balance(api, member)) == (-800, 0, 0, -800)
    assert_clean(program)
    # a later earn first repays the negative balance
    earn_order(api, member, 100_000)
    assert as_tuple(balance(api, member)) == (200, 0, 0, 200)
    assert as_tuple(redeem(api, member, 200).balance) == (0, 0, 0, 0)
    assert_clean(program)


def test_spent_points_under_forbid_policy_are_written_off(program, api):
    program_settings = update_program(api, negative_balance_policy=programs_pb2.NEGATIVE_BALANCE_POLICY_FORBID)
    assert program_settings.negative_balance_policy == programs_pb2.NEGATIVE_BALANCE_POLICY_FORBID
    member = new_member(api)
    order = earn_order(api, member, 100_000)  # 1000 points
    redeem(api, member, 800)
    response = refund(api, member, order, 100_000)
    tx = response.transaction
    assert tx.points == -200  # only what is left of the posted balance
    assert as_tuple(response.balance) == (0, 0, 0, 0)
    assert [line.points for line in tx.breakdown] == [-200, 0]
    assert "800" in tx.breakdown[1].description and "written off" in tx.breakdown[1].description
    assert as_tuple(balance(api, member)) == (0, 0, 0, 0)
    assert_clean(program)


def test_forbid_policy_partial_refund_within_the_balance_writes_nothing_off(program, api):
    update_program(api, negative_balance_policy=programs_pb2.NEGATIVE_BALANCE_POLICY_FORBID)
    member = new_member(api)
    order = earn_order(api, member, 100_000)
    redeem(api, member, 600)
    tx = refund(api, member, order, 40_000).transaction  # claws back 400 of the 400 left
    assert tx.points == -400 and [line.points for line in tx.breakdown] == [-400]
    tx = refund(api, member, order, 10_000).transaction  # 100 more due, nothing left to take
    assert tx.points == 0 and [line.points for line in tx.breakdown] == [0, 0]
    assert "100 points written off" in tx.breakdown[1].description
    assert balance(api, member).posted == 0
    assert_clean(program)


# --------------------------------------------------------------------------- idempotency


def test_the_same_refund_key_returns_the_same_transaction(program, api):
    member = new_member(api)
    order = earn_order(api, member, 10_000)
    refund_key = key()
    first = refund(api, member, order, 5_000, idempotency_key=refund_key)
    again = refund(api, member, order, 5_000, idempotency_key=refund_key)
    assert again.transaction.transaction_id == first.transaction.transaction_id
    assert again == first
    assert as_tuple(balance(api, member)) == (50, 0, 0, 50)
    assert len(statement(api, member, REFUND)) == 1
    with expect_error(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"):
        refund(api, member, order, 4_000, idempotency_key=refund_key)
    # a recorded refusal answers the same on retry
    refused_key = key()
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_ORDER"):
        refund(api, member, order, 5_001, idempotency_key=refused_key)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_ORDER"):
        refund(api, member, order, 5_001, idempotency_key=refused_key)
    assert as_tuple(balance(api, member)) == (50, 0, 0, 50)
    assert_clean(program)


# --------------------------------------------------------------------------- expired points


def test_refunding_an_order_whose_points_expired_takes_nothing_twice(program, api):
    update_program(api, expiry_mode=programs_pb2.EXPIRY_MODE_ROLLING, expiry_days=30)
    member = new_member(api)
    expired_order = earn_order(api, member, 100_000, occur_time=days_ago(40))  # 1000 points, due 10 days ago
    earn_order(api, member, 50_000, occur_time=days_ago(5))  # 500 points, valid 25 more days
    run_due_work(program.backend.db)
    assert as_tuple(balance(api, member)) == (500, 0, 0, 500)  # the order's 1000 points are gone already
    response = refund(api, member, expired_order, 100_000)
    # nothing of the order is left to claw back: the other order's 500 must stay
    assert response.transaction.points == 0  # actual: -1000
    assert as_tuple(balance(api, member)) == (500, 0, 0, 500)  # actual: (-500, 0, 0, -500)


# --------------------------------------------------------------------------- concurrency (PostgreSQL)


def test_concurrent_partial_refunds_never_exceed_the_order(pg_program):
    api = pg_program.api()
    threads = 16
    try:
        member = new_member(api)
        order = earn_order(api, member, 10_000)  # 100 points
        barrier = threading.Barrier(threads)
        results: list = [None] * threads

        def worker(i: int) -> None:
            channel = grpc.insecure_channel(pg_program.backend.target)
            try:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                request = ledger_pb2.RefundOrderRequest(
                    member_id=member, order_id=order, idempotency_key=key(), amount=1_000, currency="USD"
                )
                grpc.channel_ready_future(channel).result(timeout=10)
                barrier.wait(timeout=30)
                for _ in range(50):
                    try:
                        results[i] = ("OK", stub.RefundOrder(request, metadata=api.metadata, timeout=30))
                        return
                    except grpc.RpcError as error:
                        reason = error_details(error)[0]
                        if error.code() == grpc.StatusCode.ABORTED and reason == "CONFLICT_RETRY":
                            continue  # same key, same request
                        results[i] = (error.code(), reason)
                        return
            finally:
                channel.close()

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=60)
        accepted = [r[1] for r in results if r and r[0] == "OK"]
        refused = [r for r in results if r and r[0] != "OK"]
        assert len(accepted) == 10
        assert refused == [(grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_ORDER")] * (threads - 10)
        assert sum(r.transaction.points for r in accepted) == -100
        assert as_tuple(balance(api, member)) == (0, 0, 0, 0)
        assert len(statement(api, member, REFUND)) == 10
    finally:
        api.close()
    assert_clean(pg_program)

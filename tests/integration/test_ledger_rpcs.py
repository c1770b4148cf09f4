"""The working Ledger and Programs RPCs keep their promises, end to end over real gRPC.

On both backends, this proves: enrollment is idempotent on member_id; Earn applies
the program's rate with explicit rounding and explains itself in a breakdown that
sums to the points, and program changes apply to later earns only; QuoteEarn is
exactly what Earn then writes, and writes nothing; an order earns once; a key
replays its original answer (success or business refusal) and refuses a different
request; support adjustments follow the negative-balance policy; reversals are
exact negations, once; and the statement is newest first, paginates over every
transaction exactly once, filters by kind and time, and stays stable while new
transactions arrive. Every test ends with `verify` clean.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2
from tests.grpc_helpers import balance, earn, earn_request, enroll, expect_error, key
from tests.integration.ledger_checks import assert_verify_clean, member, snapshot, statement

EARN = common_pb2.TRANSACTION_KIND_EARN
REDEEM = common_pb2.TRANSACTION_KIND_REDEEM
ADJUST = common_pb2.TRANSACTION_KIND_ADJUST
REVERSAL = common_pb2.TRANSACTION_KIND_REVERSAL
BASE = common_pb2.POINTS_SOURCE_BASE
LEDGER_OP = common_pb2.POINTS_SOURCE_LEDGER_OPERATION


@pytest.fixture(autouse=True)
def _verify_after(program):
    yield
    assert_verify_clean(program)


def redeem(api, member_id: str, points: int, idempotency_key: str | None = None, **extra):
    return api.ledger.Redeem(
        ledger_pb2.RedeemRequest(member_id=member_id, idempotency_key=idempotency_key or key(), points=points, **extra),
        metadata=api.metadata,
    )


def adjust(api, member_id: str, points: int, reason: str = "goodwill", idempotency_key: str | None = None):
    return api.ledger.AdjustPoints(
        ledger_pb2.AdjustPointsRequest(
            member_id=member_id, idempotency_key=idempotency_key or key(), points=points, reason=reason
        ),
        metadata=api.metadata,
    )


def reverse(api, transaction_id: str, idempotency_key: str | None = None, reason: str = ""):
    return api.ledger.ReverseTransaction(
        ledger_pb2.ReverseTransactionRequest(
            transaction_id=transaction_id, idempotency_key=idempotency_key or key(), reason=reason
        ),
        metadata=api.metadata,
    )


def update_program(api, paths, **fields):
    return api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(**fields), update_mask=field_mask_pb2.FieldMask(paths=paths)
        ),
        metadata=api.metadata,
    ).program


def as_quote(request: ledger_pb2.EarnRequest) -> ledger_pb2.QuoteEarnRequest:
    """The cart sends its Earn request as is."""
    return ledger_pb2.QuoteEarnRequest.FromString(request.SerializeToString())


def breakdown(tx) -> list[tuple[int, int]]:
    return [(line.source, line.points) for line in tx.breakdown]


# ------------------------------------------------------------------ members


def test_enroll_is_idempotent_on_member_id(api):
    first = api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-1"), metadata=api.metadata)
    assert first.created
    assert first.member.member_id == "m-1"
    assert first.member.referral_code
    assert first.member.status == ledger_pb2.MEMBER_STATUS_ACTIVE
    assert (first.member.balance.posted, first.member.balance.available) == (0, 0)
    earn(api, "m-1", 2599)
    again = api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-1"), metadata=api.metadata)
    assert not again.created
    assert again.member.referral_code == first.member.referral_code
    assert again.member.enroll_time == first.member.enroll_time
    assert again.member.balance.posted == 25, "re-enrolling never resets a member"
    got = member(api, "m-1")
    assert (got.referral_code, got.enroll_time, got.balance.posted) == (first.member.referral_code, first.member.enroll_time, 25)
    other = enroll(api, "m-2")
    assert other.created and other.member.referral_code != first.member.referral_code


def test_get_unknown_member_is_not_found(api):
    with expect_error(grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND"):
        api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id="ghost"), metadata=api.metadata)
    for call in (
        lambda: earn(api, "ghost", 2599),
        lambda: redeem(api, "ghost", 1),
        lambda: adjust(api, "ghost", 5),
        lambda: api.ledger.ListTransactions(ledger_pb2.ListTransactionsRequest(member_id="ghost"), metadata=api.metadata),
    ):
        with expect_error(grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND"):
            call()


# ------------------------------------------------------------------ earning


def test_earn_at_base_rate_rounds_down_and_explains_itself(program, api):
    enroll(api, "m-1")
    request = earn_request("m-1", 2599, store_id="store-12")
    response = api.ledger.Earn(request, metadata=api.metadata)
    tx = response.transaction
    assert tx.points == 25
    assert breakdown(tx) == [(BASE, 25)]
    assert sum(line.points for line in tx.breakdown) == tx.points
    assert tx.breakdown[0].description
    assert tx.transaction_id and tx.kind == EARN and tx.member_id == "m-1"
    assert (tx.order_id, tx.order_amount, tx.currency) == (request.order.order_id, 2599, "USD")
    assert (tx.channel, tx.store_id, tx.idempotency_key) == (common_pb2.CHANNEL_POS, "store-12", request.idempotency_key)
    assert tx.api_key_id == program.admin_key[: len("lk_") + 12]
    assert (tx.balance_after, tx.sequence) == (25, 1)
    assert tx.create_time.seconds > 0 and tx.occur_time.seconds > 0
    assert (response.balance.posted, response.balance.pending, response.balance.held, response.balance.available) == (25, 0, 0, 25)
    # Rounding is per order: two 99-cent orders earn nothing, never a point between them.
    assert earn(api, "m-1", 99).transaction.points == 0
    assert earn(api, "m-1", 99).transaction.points == 0
    assert balance(api, "m-1").posted == 25
    # The statement shows exactly what Earn answered.
    assert statement(api, "m-1")[-1] == tx


def test_earn_keeps_the_orders_occurred_at(api):
    enroll(api, "m-1")
    when = Timestamp()
    when.FromDatetime(member(api, "m-1").enroll_time.ToDatetime() - timedelta(days=3))
    tx = earn(api, "m-1", 1000, occur_time=when).transaction
    assert tx.occur_time == when
    assert tx.create_time.ToDatetime() - tx.occur_time.ToDatetime() >= timedelta(days=3)


@pytest.mark.parametrize(
    "changes,amount,points",
    [
        ({"earn_rate": programs_pb2.EarnRate(points=3, per_amount=200)}, 2599, 38),  # 38.985 rounded down
        ({"rounding_mode": programs_pb2.ROUNDING_MODE_HALF_UP}, 2550, 26),  # 25.5 -> 26
        ({"rounding_mode": programs_pb2.ROUNDING_MODE_HALF_UP}, 2549, 25),  # 25.49 -> 25
        ({"rounding_mode": programs_pb2.ROUNDING_MODE_UP}, 2501, 26),  # 25.01 -> 26
        ({"rounding_mode": programs_pb2.ROUNDING_MODE_UP}, 2500, 25),  # exact stays exact
        ({"earn_rate": programs_pb2.EarnRate(points=0, per_amount=100)}, 2599, 0),
        (
            {"earn_rate": programs_pb2.EarnRate(points=2, per_amount=3), "rounding_mode": programs_pb2.ROUNDING_MODE_HALF_UP},
            100,
            67,  # 66.67 -> 67
        ),
    ],
    ids=["rate-3-per-200", "half-up-at-half", "half-up-below-half", "up", "up-exact", "zero-rate", "rate-and-rounding"],
)
def test_update_program_changes_later_earns_only(api, changes, amount, points):
    enroll(api, "m-1")
    before = earn(api, "m-1", 2599).transaction
    assert before.points == 25
    updated = update_program(api, list(changes), **changes)
    for field, value in changes.items():
        assert getattr(updated, field) == value
    got = api.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=api.metadata).program
    assert got == updated
    later = earn(api, "m-1", amount).transaction
    assert later.points == points
    assert breakdown(later) == [(BASE, points)]
    assert balance(api, "m-1").posted == 25 + points
    assert statement(api, "m-1")[-1] == before, "written transactions keep what they earned"


def test_update_program_currency_changes_what_orders_must_use(api):
    enroll(api, "m-1")
    assert update_program(api, ["currency"], currency="EUR").currency == "EUR"
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="order.currency"):
        earn(api, "m-1", 2599, currency="USD")
    tx = earn(api, "m-1", 2599, currency="EUR").transaction
    assert (tx.points, tx.currency) == (25, "EUR")


def test_quote_is_exactly_what_earn_writes_and_writes_nothing(api):
    enroll(api, "m-1")
    earn(api, "m-1", 1000)
    redeem(api, "m-1", 4)
    update_program(
        api,
        ["earn_rate", "rounding_mode"],
        earn_rate=programs_pb2.EarnRate(points=7, per_amount=300),
        rounding_mode=programs_pb2.ROUNDING_MODE_HALF_UP,
    )
    # A fixed occur_time (so two quotes are comparable), after the update: rules apply as of occur_time.
    when = Timestamp()
    when.FromDatetime(datetime.now(timezone.utc))
    request = earn_request("m-1", 4321, store_id="web-1", channel=common_pb2.CHANNEL_WEB, occur_time=when)
    before = snapshot(api, "m-1")
    quotes = [api.ledger.QuoteEarn(as_quote(request), metadata=api.metadata) for _ in range(2)]
    assert snapshot(api, "m-1") == before, "a quote writes nothing"
    quote = quotes[0]
    assert quote.transaction.transaction_id == ""
    # Quoting again answers the same (apart from the instant it was asked).
    for message in quotes:
        message.transaction.ClearField("create_time")
    assert quotes[0] == quotes[1]

    # The quote did not claim its key: Earn with the same request and key applies.
    earned = api.ledger.Earn(request, metadata=api.metadata)
    assert earned.transaction.transaction_id
    assert earned.transaction.points == quote.transaction.points == 101  # 4321 * 7 / 300 = 100.82 -> 101
    assert breakdown(earned.transaction) == breakdown(quote.transaction)
    assert [b.description for b in earned.transaction.breakdown] == [b.description for b in quote.transaction.breakdown]
    assert earned.balance == quote.balance
    assert earned.balance.posted == 6 + 101
    for field in ("member_id", "kind", "channel", "store_id", "order_id", "order_amount", "currency", "balance_after", "sequence", "occur_time", "api_key_id"):
        assert getattr(earned.transaction, field) == getattr(quote.transaction, field), field

    # Once the order has earned, quoting it again says so.
    with expect_error(grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_EARNED"):
        api.ledger.QuoteEarn(as_quote(earn_request("m-1", 4321, order_id=request.order.order_id)), metadata=api.metadata)


def test_quote_needs_no_key_and_refuses_what_earn_refuses(api):
    enroll(api, "m-1")
    request = as_quote(earn_request("m-1", 2599))
    request.idempotency_key = ""
    assert api.ledger.QuoteEarn(request, metadata=api.metadata).transaction.points == 25
    with expect_error(grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND"):
        api.ledger.QuoteEarn(as_quote(earn_request("ghost", 2599)), metadata=api.metadata)
    assert statement(api, "m-1") == []


def test_same_order_with_a_new_key_is_already_earned(api):
    enroll(api, "m-1")
    enroll(api, "m-2")
    first = earn(api, "m-1", 2599, order_id="receipt-1")
    before = (snapshot(api, "m-1"), snapshot(api, "m-2"))
    for member_id, amount in (("m-1", 2599), ("m-1", 5000), ("m-2", 2599)):
        with expect_error(grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_EARNED") as caught:
            earn(api, member_id, amount, order_id="receipt-1")
        assert first.transaction.transaction_id in caught.value.details()
    assert (snapshot(api, "m-1"), snapshot(api, "m-2")) == before


def _ago(api, **delta) -> Timestamp:
    when = Timestamp()
    when.FromDatetime(member(api, "m-1").enroll_time.ToDatetime() - timedelta(**delta))
    return when


def test_max_backdate_days_bounds_how_old_an_order_may_be(api):
    enroll(api, "m-1")
    assert update_program(api, ["max_backdate_days"], max_backdate_days=10).max_backdate_days == 10
    assert earn(api, "m-1", 1000, occur_time=_ago(api, days=9)).transaction.points == 10
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="order.occur_time"):
        earn(api, "m-1", 1000, occur_time=_ago(api, days=11))
    assert balance(api, "m-1").posted == 10


def test_zero_backdate_days_still_accepts_an_order_happening_now(api):
    """Regression (fixed in 8818b6a): a 0-day bound refused every order, even one without occur_time."""
    enroll(api, "m-1")
    update_program(api, ["max_backdate_days"], max_backdate_days=0)
    assert api.ledger.QuoteEarn(as_quote(earn_request("m-1", 1000)), metadata=api.metadata).transaction.points == 10
    assert earn(api, "m-1", 1000).transaction.points == 10


# ------------------------------------------------------------------ idempotency


def test_same_key_same_request_replays_the_identical_response(api):
    enroll(api, "m-1")
    earn_req = earn_request("m-1", 2599)
    first_earn = api.ledger.Earn(earn_req, metadata=api.metadata)
    earn(api, "m-1", 1000)  # the state moves on between the attempts
    assert api.ledger.Earn(earn_req, metadata=api.metadata) == first_earn

    redeem_key = key()
    first_redeem = redeem(api, "m-1", 7, idempotency_key=redeem_key)
    adjust_key = key()
    first_adjust = adjust(api, "m-1", -3, idempotency_key=adjust_key)
    reverse_key = key()
    first_reverse = reverse(api, first_earn.transaction.transaction_id, idempotency_key=reverse_key)
    for _ in range(2):
        assert redeem(api, "m-1", 7, idempotency_key=redeem_key) == first_redeem
        assert adjust(api, "m-1", -3, idempotency_key=adjust_key) == first_adjust
        assert reverse(api, first_earn.transaction.transaction_id, idempotency_key=reverse_key) == first_reverse
        assert api.ledger.Earn(earn_req, metadata=api.metadata) == first_earn
    # Each applied once: 25 + 10 - 7 - 3 - 25.
    assert balance(api, "m-1").posted == 0
    assert len(statement(api, "m-1")) == 5


def test_a_transactions_record_keeps_its_id_and_balance_and_replays_it_whole(program, api):
    """The key's record of a ledger write keeps the transaction's id and the balance then, not a
    copy of the answer: the replay reads the (append-only) transaction back, identical."""
    enroll(api, "m-1")
    earn_req = earn_request("m-1", 5000, order_id="o-replayed")
    first_earn = api.ledger.Earn(earn_req, metadata=api.metadata)
    refund_req = ledger_pb2.RefundOrderRequest(
        member_id="m-1", order_id="o-replayed", idempotency_key=key(), amount=1999, currency="USD", reason="damaged"
    )
    first_refund = api.ledger.RefundOrder(refund_req, metadata=api.metadata)
    earn(api, "m-1", 1000)  # the balance moves on between the attempts
    assert api.ledger.Earn(earn_req, metadata=api.metadata) == first_earn
    assert api.ledger.RefundOrder(refund_req, metadata=api.metadata) == first_refund
    with program.backend.db.engine.connect() as conn:
        outcome = conn.exec_driver_sql(
            "SELECT outcome FROM idempotency_records WHERE program_id = %s AND idempotency_key = %s"
            if program.backend.db.is_postgresql
            else "SELECT outcome FROM idempotency_records WHERE program_id = ? AND idempotency_key = ?",
            (program.program_id, earn_req.idempotency_key),
        ).scalar_one()
    assert json.loads(outcome) == {
        "result_of": {
            "transaction_id": first_earn.transaction.transaction_id,
            "member_id": "m-1",
            "balance": {"posted": 50, "pending": 0, "held": 0, "expired": 0},
        }
    }


def test_same_key_different_request_is_refused(api):
    enroll(api, "m-1")
    enroll(api, "m-2")
    request = earn_request("m-1", 2599)
    api.ledger.Earn(request, metadata=api.metadata)
    before = (snapshot(api, "m-1"), snapshot(api, "m-2"))
    reused = request.idempotency_key
    attempts = [
        lambda: earn(api, "m-1", 2600, order_id=request.order.order_id, idempotency_key=reused),  # other amount
        lambda: earn(api, "m-1", 2599, idempotency_key=reused),  # other order
        lambda: earn(api, "m-2", 2599, order_id=request.order.order_id, idempotency_key=reused),  # other member
        lambda: redeem(api, "m-1", 1, idempotency_key=reused),  # other RPC
        lambda: adjust(api, "m-1", 1, idempotency_key=reused),
    ]
    for attempt in attempts:
        with expect_error(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"):
            attempt()
    assert (snapshot(api, "m-1"), snapshot(api, "m-2")) == before


def test_business_refusal_is_recorded_under_its_key(api):
    enroll(api, "m-1")
    earn(api, "m-1", 1000)  # 10 points
    refused_key = key()
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        redeem(api, "m-1", 50, idempotency_key=refused_key)
    earn(api, "m-1", 10000)  # now 110 points
    before = snapshot(api, "m-1")
    # The terminal's retry after a network blip gets the same answer, though points arrived meanwhile.
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        redeem(api, "m-1", 50, idempotency_key=refused_key)
    # ...and the key stays bound to that request.
    with expect_error(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"):
        redeem(api, "m-1", 5, idempotency_key=refused_key)
    assert snapshot(api, "m-1") == before
    done = redeem(api, "m-1", 50)
    assert (done.transaction.points, done.balance.available) == (-50, 60)


def test_order_already_earned_is_recorded_under_its_key(api):
    enroll(api, "m-1")
    earn(api, "m-1", 2599, order_id="receipt-9")
    request = earn_request("m-1", 2599, order_id="receipt-9")
    for _ in range(2):
        with expect_error(grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_EARNED"):
            api.ledger.Earn(request, metadata=api.metadata)
    assert balance(api, "m-1").posted == 25


# ------------------------------------------------------------------ redeem and support


def test_redeem_debits_and_never_overdraws(api):
    enroll(api, "m-1")
    earn(api, "m-1", 2599)
    done = redeem(api, "m-1", 25, order_id="o-till", channel=common_pb2.CHANNEL_POS, store_id="till-3")
    tx = done.transaction
    assert (tx.kind, tx.points, tx.balance_after, tx.sequence) == (REDEEM, -25, 0, 2)
    assert breakdown(tx) == [(LEDGER_OP, -25)]
    assert (tx.order_id, tx.channel, tx.store_id) == ("o-till", common_pb2.CHANNEL_POS, "till-3")
    assert done.balance.available == 0
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        redeem(api, "m-1", 1)
    # A reward that is not in the catalog moves nothing (while the catalog is not built: UNIMPLEMENTED).
    with pytest.raises(grpc.RpcError) as caught:
        api.ledger.Redeem(
            ledger_pb2.RedeemRequest(member_id="m-1", idempotency_key=key(), reward_id="r-unknown"), metadata=api.metadata
        )
    assert caught.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)
    assert balance(api, "m-1").posted == 0


def test_adjust_points_follows_the_negative_balance_policy(api):
    enroll(api, "m-1")
    up = adjust(api, "m-1", 100, reason="goodwill: late delivery")
    assert (up.transaction.kind, up.transaction.points, up.balance.posted) == (ADJUST, 100, 100)
    assert up.transaction.reason == "goodwill: late delivery"
    assert up.transaction.channel == common_pb2.CHANNEL_SUPPORT
    assert breakdown(up.transaction) == [(LEDGER_OP, 100)]
    # Default policy (ALLOW): support may take the balance below zero.
    down = adjust(api, "m-1", -150, reason="fraud clawback")
    assert (down.transaction.points, down.balance.posted, down.balance.available) == (-150, -50, -50)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        redeem(api, "m-1", 1)

    assert (
        update_program(api, ["negative_balance_policy"], negative_balance_policy=programs_pb2.NEGATIVE_BALANCE_POLICY_FORBID)
        .negative_balance_policy
        == programs_pb2.NEGATIVE_BALANCE_POLICY_FORBID
    )
    forbidden_key = key()
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "NEGATIVE_BALANCE_FORBIDDEN"):
        adjust(api, "m-1", -1, idempotency_key=forbidden_key)
    assert balance(api, "m-1").posted == -50
    # A credit is always allowed, even while still below zero.
    assert adjust(api, "m-1", 20).balance.posted == -30
    assert adjust(api, "m-1", 40).balance.posted == 10
    assert adjust(api, "m-1", -10).balance.posted == 0
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "NEGATIVE_BALANCE_FORBIDDEN"):
        adjust(api, "m-1", -1)
    # The refusal was recorded under its key: it stays refused even after switching back.
    update_program(api, ["negative_balance_policy"], negative_balance_policy=programs_pb2.NEGATIVE_BALANCE_POLICY_ALLOW)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "NEGATIVE_BALANCE_FORBIDDEN"):
        adjust(api, "m-1", -1, idempotency_key=forbidden_key)
    assert adjust(api, "m-1", -1).balance.posted == -1
    assert [tx.points for tx in statement(api, "m-1")] == [-1, -10, 40, 20, -150, 100]


def test_reverse_earn_and_redeem_are_exact_negations_once(api):
    enroll(api, "m-1")
    earned = earn(api, "m-1", 2599, store_id="s-1").transaction
    spent = redeem(api, "m-1", 10, order_id="o-spend").transaction

    back = reverse(api, spent.transaction_id, reason="till error")
    r = back.transaction
    assert (r.kind, r.points, r.reverses_transaction_id, r.reason) == (REVERSAL, 10, spent.transaction_id, "till error")
    assert breakdown(r) == [(s, -p) for s, p in breakdown(spent)]
    assert r.order_id == "o-spend"
    assert back.balance.posted == 25

    undo = reverse(api, earned.transaction_id).transaction
    assert (undo.points, undo.reverses_transaction_id) == (-25, earned.transaction_id)
    assert breakdown(undo) == [(BASE, -25)]
    assert (undo.order_id, undo.order_amount, undo.currency) == (earned.order_id, -2599, "USD")
    assert undo.reason  # a default reason names what was reversed
    assert balance(api, "m-1").posted == 0

    for original, reversal in ((earned, undo), (spent, r)):
        with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "TRANSACTION_ALREADY_REVERSED") as caught:
            reverse(api, original.transaction_id)
        assert reversal.transaction_id in caught.value.details()
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "TRANSACTION_NOT_REVERSIBLE"):
        reverse(api, undo.transaction_id)
    with expect_error(grpc.StatusCode.NOT_FOUND, "TRANSACTION_NOT_FOUND"):
        reverse(api, "tx_" + "f" * 24)
    # The originals are untouched: the ledger only grew.
    kinds = [(tx.kind, tx.points) for tx in statement(api, "m-1")]
    assert kinds == [(REVERSAL, -25), (REVERSAL, 10), (REDEEM, -10), (EARN, 25)]
    # A reversed earn's order still cannot earn again.
    with expect_error(grpc.StatusCode.ALREADY_EXISTS, "ORDER_ALREADY_EARNED"):
        earn(api, "m-1", 2599, order_id=earned.order_id)


def test_reversals_follow_the_negative_balance_policy(api):
    enroll(api, "m-1")
    bonus = adjust(api, "m-1", 30).transaction
    earned = earn(api, "m-1", 1000).transaction
    redeem(api, "m-1", 35)  # 5 left
    update_program(api, ["negative_balance_policy"], negative_balance_policy=programs_pb2.NEGATIVE_BALANCE_POLICY_FORBID)
    refused_key = key()
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "NEGATIVE_BALANCE_FORBIDDEN"):
        reverse(api, bonus.transaction_id, idempotency_key=refused_key)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "NEGATIVE_BALANCE_FORBIDDEN"):
        reverse(api, earned.transaction_id)
    assert balance(api, "m-1").posted == 5
    update_program(api, ["negative_balance_policy"], negative_balance_policy=programs_pb2.NEGATIVE_BALANCE_POLICY_ALLOW)
    assert reverse(api, earned.transaction_id).balance.posted == -5
    # The refused reversal stays refused under its key; a new key applies it.
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "NEGATIVE_BALANCE_FORBIDDEN"):
        reverse(api, bonus.transaction_id, idempotency_key=refused_key)
    undo = reverse(api, bonus.transaction_id)
    assert (undo.transaction.points, undo.balance.posted) == (-30, -35)
    assert breakdown(undo.transaction) == [(LEDGER_OP, -30)]


# ------------------------------------------------------------------ the statement


def _fill(api, member_id: str = "m-1") -> list[str]:
    """13 transactions of four kinds; returns their ids, newest first."""
    ids = []
    for i in range(5):
        ids.append(earn(api, member_id, 1000 + i).transaction.transaction_id)
        ids.append(redeem(api, member_id, 3).transaction.transaction_id)
    ids.append(adjust(api, member_id, 7).transaction.transaction_id)
    ids.append(adjust(api, member_id, -2).transaction.transaction_id)
    ids.append(reverse(api, ids[1]).transaction.transaction_id)
    return ids[::-1]


def test_statement_is_newest_first_and_pages_cover_everything_once(api):
    enroll(api, "m-1")
    enroll(api, "m-2")
    earn(api, "m-2", 5000)
    expected = _fill(api)
    everything = api.ledger.ListTransactions(
        ledger_pb2.ListTransactionsRequest(member_id="m-1"), metadata=api.metadata
    )
    assert [tx.transaction_id for tx in everything.transactions] == expected
    assert everything.next_page_token == ""
    sequences = [tx.sequence for tx in everything.transactions]
    assert sequences == list(range(13, 0, -1))
    assert everything.transactions[0].balance_after == balance(api, "m-1").posted

    for page_size in (1, 4, 5, 12, 13):
        seen, token, pages = [], "", 0
        while True:
            page = api.ledger.ListTransactions(
                ledger_pb2.ListTransactionsRequest(member_id="m-1", page_size=page_size, page_token=token),
                metadata=api.metadata,
            )
            pages += 1
            assert 0 < len(page.transactions) <= page_size
            seen.extend(tx.transaction_id for tx in page.transactions)
            token = page.next_page_token
            if not token:
                break
        assert seen == expected, page_size
        assert pages == -(-13 // page_size)


def test_statement_default_page_size_is_50(api):
    enroll(api, "m-1")
    for i in range(55):
        adjust(api, "m-1", i + 1)
    first = api.ledger.ListTransactions(ledger_pb2.ListTransactionsRequest(member_id="m-1"), metadata=api.metadata)
    assert len(first.transactions) == 50 and first.next_page_token
    assert [tx.points for tx in first.transactions] == list(range(55, 5, -1))
    rest = api.ledger.ListTransactions(
        ledger_pb2.ListTransactionsRequest(member_id="m-1", page_token=first.next_page_token), metadata=api.metadata
    )
    assert [tx.points for tx in rest.transactions] == [5, 4, 3, 2, 1] and rest.next_page_token == ""
    biggest = api.ledger.ListTransactions(ledger_pb2.ListTransactionsRequest(member_id="m-1", page_size=500), metadata=api.metadata)
    assert len(biggest.transactions) == 55 and biggest.next_page_token == ""


def test_statement_filters_by_kind(api):
    enroll(api, "m-1")
    _fill(api)
    full = statement(api, "m-1")
    for kinds in ([EARN], [REDEEM], [ADJUST, REVERSAL], [EARN, EARN], [common_pb2.TRANSACTION_KIND_REFUND]):
        filtered = statement(api, "m-1", page_size=2, kinds=kinds)
        assert filtered == [tx for tx in full if tx.kind in kinds], kinds
    assert len(statement(api, "m-1", kinds=[EARN])) == 5


def test_statement_filters_by_time(api):
    enroll(api, "m-1")
    _fill(api)
    full = statement(api, "m-1")
    instants = sorted({(tx.create_time.seconds, tx.create_time.nanos) for tx in full})
    assert len(instants) >= 3
    pivot_tx = next(tx for tx in reversed(full) if (tx.create_time.seconds, tx.create_time.nanos) == instants[len(instants) // 2])
    pivot = pivot_tx.create_time

    def key_of(tx):
        return (tx.create_time.seconds, tx.create_time.nanos)

    p = (pivot.seconds, pivot.nanos)
    after = statement(api, "m-1", page_size=3, start_create_time=pivot)
    before = statement(api, "m-1", page_size=3, end_create_time=pivot)
    assert after == [tx for tx in full if key_of(tx) >= p]  # start_create_time is inclusive
    assert before == [tx for tx in full if key_of(tx) < p]  # end_create_time is exclusive
    assert len(after) + len(before) == len(full)
    window = statement(api, "m-1", start_create_time=full[-1].create_time, end_create_time=full[0].create_time, kinds=[EARN])
    assert window == [tx for tx in full if tx.kind == EARN and key_of(full[-1]) <= key_of(tx) < key_of(full[0])]
    assert statement(api, "m-1", start_create_time=pivot, end_create_time=pivot) == []


def test_pages_stay_stable_while_transactions_arrive(api):
    enroll(api, "m-1")
    original = _fill(api)
    page = api.ledger.ListTransactions(ledger_pb2.ListTransactionsRequest(member_id="m-1", page_size=4), metadata=api.metadata)
    seen = [tx.transaction_id for tx in page.transactions]
    token = page.next_page_token
    arrived = []
    while token:
        # New transactions land between every page fetch.
        arrived.append(earn(api, "m-1", 500).transaction.transaction_id)
        arrived.append(redeem(api, "m-1", 1).transaction.transaction_id)
        page = api.ledger.ListTransactions(
            ledger_pb2.ListTransactionsRequest(member_id="m-1", page_size=4, page_token=token), metadata=api.metadata
        )
        seen.extend(tx.transaction_id for tx in page.transactions)
        token = page.next_page_token
    assert seen == original, "every original transaction exactly once, in order, none of the new ones"
    fresh = [tx.transaction_id for tx in statement(api, "m-1")]
    assert fresh == arrived[::-1] + original

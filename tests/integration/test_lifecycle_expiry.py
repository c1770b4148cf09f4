"""Pending points and point expiry over real gRPC, on PostgreSQL and SQLite.

Time travel: orders are backdated with order.occur_time, and a lot's pending and
expiry dates derive from it, so old orders are already matured or due. To spend a lot before
it expired, the in-process server's clock (ledger.service.clock.now) is set back for that
call (server_clock_moved); to capture a hold after the lots under it expired, forward. The
test server runs no due-work schedule: the expiry job runs only where a test calls it.

What it proves:
- pending maturity: points of an order older than pending_days are available, younger ones are
  pending and cannot be redeemed or held (INSUFFICIENT_POINTS); a lot matures by time alone;
- ROLLING expiry consumes first-expiring-first: a redemption takes the soonest-expiring lot, and
  run_due_work expires only what is left of the due lot (exact numbers, an EXPIRE transaction in
  the statement), never points already spent; running it again expires nothing; the same holds
  in many small batches run two at a time;
- expired points are never available, whether the job has run or not: ROLLING expiry of 1 day
  and an Earn backdated 3 days, the Earn's answer and GetMember show the 100 points as
  `expired`, not available, Redeem and AuthorizeRedemption of them are FAILED_PRECONDITION
  INSUFFICIENT_POINTS (ErrorInfo metadata requested, available, expired; recorded under the
  key), a redeem of what is still valid takes the valid lot, and the job then expires all 100;
- a hold whose lots expire before its capture: the capture of what they no longer cover is
  refused (INSUFFICIENT_POINTS, `available` says what can still be captured), the hold stays
  open, a capture of the covered part succeeds, the job expires the rest;
- a refund of an order whose lot is past its expiry leaves the balance as if the job had run first;
- a server started with `--due-work-interval 0` refuses expired points too;
- INACTIVITY expiry: a member whose last activity is older than expiry_days loses all points,
  members with a recent order or redemption keep theirs; before the job runs, the idle
  member's points are `expired` (GetMember, refusals), and an order that brings the member
  back writes the EXPIRE first, so coming back never revives them;
- GetMember.pending_points lists the pending points by when they become available (summing to
  balance.pending), with the program's currency and tier basis beside them;
- GetMember.expiring_points lists the points expiring within 30 days, by date, net of spending;
- orders older than max_backdate_days are INVALID_ARGUMENT on order.occur_time, and write nothing;
- the `loyalty-ledger expire` command prints its report, exits 0 and does the same work;
- on PostgreSQL, expiry racing redemptions of the same members: whichever runs first, the
  redemption takes only valid points and the expiry all the due ones: the same ledger either way;
- (known bug, xfail) reversing an EXPIRE does not stick: the points go back into the expired lots
  and the next run expires them again;
- `verify` finds every invariant intact after each scenario.
run_due_work sweeps the whole shared test database, so assertions are about this test's members.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc, programs_pb2
from ledger.service import clock
from ledger.service.expiry import run_due_work
from ledger.service.verify import verify
from tests.cli.processes import ServerProcess
from tests.conftest import Api
from tests.grpc_helpers import balance, earn, earn_request, enroll, error_details, expect_error, key
from tests.integration.test_lifecycle_holds import authorize, capture, error_metadata

EXPIRE = common_pb2.TRANSACTION_KIND_EXPIRE
ROLLING = programs_pb2.EXPIRY_MODE_ROLLING
INACTIVITY = programs_pb2.EXPIRY_MODE_INACTIVITY


# --------------------------------------------------------------------------- helpers


def update_program(api, **fields):
    return api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(**fields), update_mask=field_mask_pb2.FieldMask(paths=list(fields))
        ),
        metadata=api.metadata,
    ).program


def whole_seconds_ago(delta: timedelta) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) - delta


def stamp(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant)
    return message


def new_member(api) -> str:
    member_id = f"m-{secrets.token_hex(4)}"
    enroll(api, member_id)
    return member_id


def earn_at(api, member_id: str, points: int, occurred: datetime):
    """Earns `points` (default rate: 1 point per 100 minor units) for an order that happened at `occurred`."""
    return earn(api, member_id, points * 100, occur_time=stamp(occurred))


def redeem(api, member_id: str, points: int):
    return api.ledger.Redeem(
        ledger_pb2.RedeemRequest(member_id=member_id, idempotency_key=key(), points=points), metadata=api.metadata
    )


def member(api, member_id: str):
    return api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=member_id), metadata=api.metadata).member


def statement(api, member_id: str, *kinds) -> list:
    return list(
        api.ledger.ListTransactions(
            ledger_pb2.ListTransactionsRequest(member_id=member_id, page_size=200, kinds=list(kinds)),
            metadata=api.metadata,
        ).transactions
    )


def expiring(api, member_id: str) -> list[tuple[int, datetime]]:
    return [(e.points, e.expire_time.ToDatetime(tzinfo=timezone.utc)) for e in member(api, member_id).expiring_points]


def as_tuple(b) -> tuple[int, int, int, int]:
    return (b.posted, b.pending, b.held, b.available)


def with_expired(b) -> tuple[int, int, int, int, int]:
    return (b.posted, b.pending, b.held, b.expired, b.available)


@contextmanager
def server_clock_moved(by: timedelta):
    """The in-process server's clock moved by `by` for the block (orders may still not be
    dated after the real now: backdate them past the moved clock too)."""
    real_now = clock.now
    clock.now = lambda: real_now() + by
    try:
        yield
    finally:
        clock.now = real_now


def assert_clean(program) -> None:
    report = verify(program.backend.db)
    assert report.clean, report.breaches


DAY = timedelta(days=1)


# --------------------------------------------------------------------------- pending


def test_pending_points_mature_after_the_return_window(program, api):
    update_program(api, pending_days=14)
    matured = new_member(api)
    earn_at(api, matured, 1000, whole_seconds_ago(20 * DAY))
    assert as_tuple(balance(api, matured)) == (1000, 0, 0, 1000)

    fresh = new_member(api)
    earned = earn_at(api, fresh, 500, whole_seconds_ago(5 * DAY))
    assert as_tuple(earned.balance) == (500, 500, 0, 0)
    assert as_tuple(balance(api, fresh)) == (500, 500, 0, 0)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        redeem(api, fresh, 1)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        api.ledger.AuthorizeRedemption(
            ledger_pb2.AuthorizeRedemptionRequest(member_id=fresh, idempotency_key=key(), points=1),
            metadata=api.metadata,
        )

    both = new_member(api)
    earn_at(api, both, 1000, whole_seconds_ago(20 * DAY))
    earn_at(api, both, 500, whole_seconds_ago(5 * DAY))
    assert as_tuple(balance(api, both)) == (1500, 500, 0, 1000)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        redeem(api, both, 1001)
    # the redemption takes matured points only: the pending 500 stay pending
    assert as_tuple(redeem(api, both, 1000).balance) == (500, 500, 0, 0)
    assert_clean(program)


def test_get_member_lists_pending_points_by_when_they_become_available(program, api):
    update_program(api, pending_days=14)
    m = new_member(api)
    earn_at(api, m, 1000, whole_seconds_ago(20 * DAY))  # matured
    older, newer = whole_seconds_ago(5 * DAY), whole_seconds_ago(2 * DAY)
    earn_at(api, m, 300, older)
    earn_at(api, m, 200, newer)
    earn_at(api, m, 50, newer)  # the same instant: one line
    shown = member(api, m)
    assert [(p.points, p.available_time.ToDatetime(tzinfo=timezone.utc)) for p in shown.pending_points] == [
        (300, older + 14 * DAY),
        (250, newer + 14 * DAY),
    ]
    assert shown.balance.pending == 550
    assert shown.currency == "USD" and shown.tier_basis == programs_pb2.TIER_BASIS_QUALIFYING_SPEND
    assert list(member(api, new_member(api)).pending_points) == []
    assert_clean(program)


def test_a_lot_matures_by_time_alone(program, api):
    update_program(api, pending_days=14)
    m = new_member(api)
    available_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    earn_at(api, m, 300, available_at - 14 * DAY)
    assert as_tuple(balance(api, m)) == (300, 300, 0, 0)
    time.sleep(max(0.0, (available_at - datetime.now(timezone.utc)).total_seconds()) + 0.1)
    assert as_tuple(balance(api, m)) == (300, 0, 0, 300)  # nothing ran, nothing was written
    assert as_tuple(redeem(api, m, 300).balance) == (0, 0, 0, 0)
    assert_clean(program)


# --------------------------------------------------------------------------- ROLLING expiry


def test_rolling_expiry_consumes_soonest_expiring_first_and_expires_only_the_rest(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=30)
    m = new_member(api)
    old = whole_seconds_ago(40 * DAY)  # its lot expired 10 days ago
    recent = whole_seconds_ago(20 * DAY)  # its lot expires in 10 days
    with server_clock_moved(-15 * DAY):  # 15 days ago, when the old lot had 5 days left
        earn_at(api, m, 1000, old)
        earn_at(api, m, 500, recent)
        assert as_tuple(balance(api, m)) == (1500, 0, 0, 1500)
        # the redemption takes the soonest-expiring lot first: 600 of the old lot's 1000
        assert as_tuple(redeem(api, m, 600).balance) == (900, 0, 0, 900)
    # today the old lot's 400 are expired, before the job has run
    assert with_expired(balance(api, m)) == (900, 0, 0, 400, 500)

    run_due_work(program.backend.db)
    assert as_tuple(balance(api, m)) == (500, 0, 0, 500)  # only the 400 left of the old lot expired
    newest = statement(api, m)
    assert [(tx.kind, tx.points) for tx in newest] == [
        (EXPIRE, -400),
        (common_pb2.TRANSACTION_KIND_REDEEM, -600),
        (common_pb2.TRANSACTION_KIND_EARN, 500),
        (common_pb2.TRANSACTION_KIND_EARN, 1000),
    ]
    assert newest[0].balance_after == 500
    assert [line.points for line in newest[0].breakdown] == [-400]
    assert expiring(api, m) == [(500, recent + 30 * DAY)]
    assert balance(api, m).expired == 0
    assert_clean(program)

    # a second run expires nothing more
    run_due_work(program.backend.db)
    assert as_tuple(balance(api, m)) == (500, 0, 0, 500)
    assert [tx.points for tx in statement(api, m, EXPIRE)] == [-400]
    assert_clean(program)


def test_rolling_expiry_never_takes_spent_points(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=30)
    spent_all, untouched, nothing_due = new_member(api), new_member(api), new_member(api)
    for m in (spent_all, untouched):
        earn_at(api, m, 700, whole_seconds_ago(31 * DAY))
    earn_at(api, nothing_due, 700, whole_seconds_ago(29 * DAY))
    with server_clock_moved(-2 * DAY):  # spent while its lot was still valid
        redeem(api, spent_all, 700)
    assert with_expired(balance(api, untouched)) == (700, 0, 0, 700, 0)
    run_due_work(program.backend.db)
    assert as_tuple(balance(api, spent_all)) == (0, 0, 0, 0)
    assert statement(api, spent_all, EXPIRE) == []
    assert as_tuple(balance(api, untouched)) == (0, 0, 0, 0)
    assert [tx.points for tx in statement(api, untouched, EXPIRE)] == [-700]
    assert as_tuple(balance(api, nothing_due)) == (700, 0, 0, 700)
    assert statement(api, nothing_due, EXPIRE) == []
    assert_clean(program)


def test_rolling_expiry_in_small_parallel_batches_expires_each_member_once(program, api):
    """Many batches, two in flight at once on PostgreSQL: every due member gets exactly one
    EXPIRE with its own seq, running balance and hash chain (verify), none is skipped or doubled."""
    update_program(api, expiry_mode=ROLLING, expiry_days=30)
    due = [new_member(api) for _ in range(9)]
    for points, m in enumerate(due, start=1):
        earn_at(api, m, 100 * points, whole_seconds_ago(31 * DAY))
    with server_clock_moved(-3 * DAY):  # before the 31-day-old lot expired
        redeem(api, due[0], 50)
    for m in due:
        earn_at(api, m, 7, whole_seconds_ago(2 * DAY))

    report = run_due_work(program.backend.db, batch_size=2, workers=2)
    expired_here = 0
    for points, m in enumerate(due, start=1):
        assert as_tuple(balance(api, m)) == (7, 0, 0, 7)
        expected = 100 * points - (50 if m == due[0] else 0)
        assert [tx.points for tx in statement(api, m, EXPIRE)] == [-expected]
        assert statement(api, m)[0].balance_after == 7
        expired_here += expected
    # Counted per program (for loyalty_points_expired_total): all of this program's, only once.
    assert report.points_expired_by_program[program.program_id] == expired_here
    assert_clean(program)

    run_due_work(program.backend.db, batch_size=2, workers=2)
    assert all(len(statement(api, m, EXPIRE)) == 1 for m in due)
    assert_clean(program)


# --------------------------------------------------------------------------- INACTIVITY expiry


def test_inactivity_expires_everything_of_idle_members_only(program, api):
    update_program(api, expiry_mode=INACTIVITY, expiry_days=30)
    idle, recent_order, recent_redeem = new_member(api), new_member(api), new_member(api)
    with server_clock_moved(-34 * DAY):  # the orders synced when they were made
        for m in (idle, recent_order, recent_redeem):
            earn_at(api, m, 1000, whole_seconds_ago(40 * DAY))
            earn_at(api, m, 200, whole_seconds_ago(35 * DAY))
    with server_clock_moved(-10 * DAY):  # idle for 25 days then, still active
        earn_at(api, recent_order, 50, whole_seconds_ago(10 * DAY))
        redeem(api, recent_redeem, 100)
    assert expiring(api, idle) == []  # INACTIVITY lots carry no date of their own
    # idle for 35 days: all expired before the job has run
    assert with_expired(balance(api, idle)) == (1200, 0, 0, 1200, 0)

    run_due_work(program.backend.db)
    assert as_tuple(balance(api, idle)) == (0, 0, 0, 0)
    expired = statement(api, idle, EXPIRE)
    assert [tx.points for tx in expired] == [-1200]
    assert "activity" in expired[0].reason
    assert as_tuple(balance(api, recent_order)) == (1250, 0, 0, 1250)
    assert as_tuple(balance(api, recent_redeem)) == (1100, 0, 0, 1100)
    assert statement(api, recent_order, EXPIRE) == statement(api, recent_redeem, EXPIRE) == []
    assert_clean(program)

    run_due_work(program.backend.db)
    assert [tx.points for tx in statement(api, idle, EXPIRE)] == [-1200]
    assert balance(api, idle).posted == 0
    # coming back: a new order earns normally
    earn_at(api, idle, 10, whole_seconds_ago(timedelta(0)))
    assert as_tuple(balance(api, idle)) == (10, 0, 0, 10)
    assert_clean(program)


# --------------------------------------------------------------------------- expiring soon


def test_get_member_lists_points_expiring_within_30_days(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=30)
    m = new_member(api)
    soonest = whole_seconds_ago(25 * DAY)  # expires in 5 days
    soon = whole_seconds_ago(10 * DAY)  # expires in 20 days
    earn_at(api, m, 1000, soon)
    earn_at(api, m, 300, soonest)
    update_program(api, expiry_days=90)
    earn_at(api, m, 700, whole_seconds_ago(10 * DAY))  # expires in 80 days: not soon
    assert expiring(api, m) == [(300, soonest + 30 * DAY), (1000, soon + 30 * DAY)]
    redeem(api, m, 100)  # taken from the soonest-expiring lot
    assert expiring(api, m) == [(200, soonest + 30 * DAY), (1000, soon + 30 * DAY)]
    redeem(api, m, 500)  # the rest of it, then 300 of the next
    assert expiring(api, m) == [(700, soon + 30 * DAY)]
    assert as_tuple(balance(api, m)) == (1400, 0, 0, 1400)
    assert_clean(program)


# --------------------------------------------------------------------------- expired before the job runs

REFUSED = grpc.StatusCode.FAILED_PRECONDITION


def refusal(call) -> tuple[str, dict, str]:
    """(ErrorInfo reason, its metadata, the message) of a call that must be refused."""
    with expect_error(REFUSED, "INSUFFICIENT_POINTS") as caught:
        call()
    return error_details(caught.value)[0], error_metadata(caught.value), caught.value.details()


def test_points_past_their_expiry_are_never_available_before_the_job(program, api):
    """The issue's case: ROLLING expiry of 1 day, an Earn backdated 3 days."""
    update_program(api, expiry_mode=ROLLING, expiry_days=1)
    m = new_member(api)
    earned = earn_at(api, m, 100, whole_seconds_ago(3 * DAY))
    assert with_expired(earned.balance) == (100, 0, 0, 100, 0)
    assert with_expired(balance(api, m)) == (100, 0, 0, 100, 0)
    assert expiring(api, m) == []  # already expired, not expiring soon
    order = earn_request(m, 1000, occur_time=stamp(whole_seconds_ago(3 * DAY))).order
    quote = api.ledger.QuoteEarn(ledger_pb2.QuoteEarnRequest(member_id=m, order=order), metadata=api.metadata)
    assert with_expired(quote.balance) == (110, 0, 0, 110, 0)  # a backdated lot is expired on arrival

    redeem_key = key()
    request = ledger_pb2.RedeemRequest(member_id=m, idempotency_key=redeem_key, points=100)
    first = refusal(lambda: api.ledger.Redeem(request, metadata=api.metadata))
    assert first == (
        "INSUFFICIENT_POINTS",
        {"requested": "100", "available": "0", "expired": "100"},
        "100 points requested but only 0 available; 100 expired points are not available",
    )
    assert refusal(lambda: redeem(api, m, 1))[1] == {"requested": "1", "available": "0", "expired": "100"}
    assert refusal(lambda: authorize(api, m, 100))[1] == {"requested": "100", "available": "0", "expired": "100"}
    assert [tx.kind for tx in statement(api, m)] == [common_pb2.TRANSACTION_KIND_EARN]  # nothing written

    run_due_work(program.backend.db)  # the job still finds all 100 due
    assert [tx.points for tx in statement(api, m, EXPIRE)] == [-100]
    assert with_expired(balance(api, m)) == (0, 0, 0, 0, 0)
    # the refusal is recorded under its key: a retry gets the same answer
    assert refusal(lambda: api.ledger.Redeem(request, metadata=api.metadata)) == first
    assert_clean(program)


def test_a_redeem_takes_only_valid_points_and_the_job_expires_all_the_due_ones(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=1)
    m = new_member(api)
    earn_at(api, m, 100, whole_seconds_ago(3 * DAY))  # expired two days ago
    an_hour_ago = whole_seconds_ago(timedelta(hours=1))
    earn_at(api, m, 30, an_hour_ago)  # valid for 23 hours
    assert with_expired(balance(api, m)) == (130, 0, 0, 100, 30)
    assert expiring(api, m) == [(30, an_hour_ago + DAY)]
    assert refusal(lambda: redeem(api, m, 31))[1] == {"requested": "31", "available": "30", "expired": "100"}
    assert with_expired(redeem(api, m, 30).balance) == (100, 0, 0, 100, 0)

    run_due_work(program.backend.db)
    assert [tx.points for tx in statement(api, m, EXPIRE)] == [-100]  # not 70: the redeem took the valid lot
    assert with_expired(balance(api, m)) == (0, 0, 0, 0, 0)
    assert [tx.balance_after for tx in statement(api, m)] == [0, 100, 130, 100]
    assert_clean(program)


def test_capturing_a_hold_whose_lots_expired_meanwhile(program, api):
    """A hold reserves available points, not lots: when lots under it expire before the
    capture, only what the member's valid points still cover can be captured. The rest is
    refused (INSUFFICIENT_POINTS; `available` is what can be captured), the hold stays open."""
    update_program(api, expiry_mode=ROLLING, expiry_days=1)
    m = new_member(api)
    earn_at(api, m, 100, whole_seconds_ago(DAY - timedelta(minutes=5)))  # expires in 5 minutes
    earn_at(api, m, 30, whole_seconds_ago(timedelta(hours=1)))
    hold = authorize(api, m, 120)  # the default 15 minutes
    assert with_expired(hold.balance) == (130, 0, 120, 0, 10)
    with server_clock_moved(timedelta(minutes=10)):  # the 100 expired, the hold is still open
        assert with_expired(balance(api, m)) == (130, 0, 120, 100, -90)
        whole_key = key()
        whole = refusal(lambda: capture(api, hold.hold.hold_id, idempotency_key=whole_key))
        assert whole[1] == {"requested": "120", "available": "30", "expired": "100"}
        assert refusal(lambda: capture(api, hold.hold.hold_id, 31))[1]["available"] == "30"
        captured = capture(api, hold.hold.hold_id, 30)
        assert with_expired(captured.balance) == (100, 0, 0, 100, 0)
        assert captured.transaction.points == -30
        assert refusal(lambda: capture(api, hold.hold.hold_id, idempotency_key=whole_key)) == whole  # recorded
        run_due_work(program.backend.db)
        assert with_expired(balance(api, m)) == (0, 0, 0, 0, 0)
    assert [tx.points for tx in statement(api, m, EXPIRE)] == [-100]
    assert_clean(program)


def test_refunding_an_order_past_its_expiry_leaves_what_the_job_first_would(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=1)
    refund_first, job_first = new_member(api), new_member(api)
    orders = {}
    for m in (refund_first, job_first):
        orders[m] = earn_at(api, m, 100, whole_seconds_ago(3 * DAY)).transaction.order_id
        earn_at(api, m, 50, whole_seconds_ago(timedelta(hours=1)))

    def refund(m):
        return api.ledger.RefundOrder(
            ledger_pb2.RefundOrderRequest(
                member_id=m, order_id=orders[m], idempotency_key=key(), amount=10_000, currency="USD"
            ),
            metadata=api.metadata,
        )

    assert with_expired(refund(refund_first).balance) == (50, 0, 0, 0, 50)
    run_due_work(program.backend.db)
    refund(job_first)
    assert with_expired(balance(api, refund_first)) == with_expired(balance(api, job_first)) == (50, 0, 0, 0, 50)
    assert statement(api, refund_first, EXPIRE) == []  # the refund took the order's own expired lot
    assert [tx.points for tx in statement(api, job_first, EXPIRE)] == [-100]
    assert_clean(program)


def test_an_idle_member_coming_back_never_revives_expired_points(program, api):
    update_program(api, expiry_mode=INACTIVITY, expiry_days=30)
    m = new_member(api)
    with server_clock_moved(-34 * DAY):
        earn_at(api, m, 1000, whole_seconds_ago(40 * DAY))
        earn_at(api, m, 200, whole_seconds_ago(35 * DAY))
    assert with_expired(balance(api, m)) == (1200, 0, 0, 1200, 0)
    assert refusal(lambda: redeem(api, m, 1))[1] == {"requested": "1", "available": "0", "expired": "1200"}
    # The member comes back before the job has run: the order writes the expiry off first.
    back = earn_at(api, m, 10, whole_seconds_ago(timedelta(0)))
    assert with_expired(back.balance) == (10, 0, 0, 0, 10)
    newest = statement(api, m)
    assert [(tx.kind, tx.points, tx.balance_after) for tx in newest] == [
        (common_pb2.TRANSACTION_KIND_EARN, 10, 10),
        (EXPIRE, -1200, 0),
        (common_pb2.TRANSACTION_KIND_EARN, 200, 1200),
        (common_pb2.TRANSACTION_KIND_EARN, 1000, 1000),
    ]
    assert "activity" in newest[1].reason
    # The three earns have their idempotency records; the write-off, under its own id, none.
    with program.backend.engine.connect() as conn:
        recorded = conn.execute(
            text(
                "SELECT t.kind FROM idempotency_records r JOIN transactions t"
                " ON t.program_id = r.program_id AND t.idempotency_key = r.idempotency_key"
                " WHERE t.program_id = :p AND t.member_id = :m"
            ),
            {"p": program.program_id, "m": m},
        ).scalars().all()
    assert sorted(recorded) == ["EARN", "EARN", "EARN"]
    # A rewarded activity brings a member back the same way.
    update_program(api, activity_rules=[programs_pb2.ActivityRule(activity_type="review_submitted", points=50)])
    reviewer = new_member(api)
    with server_clock_moved(-34 * DAY):
        earn_at(api, reviewer, 300, whole_seconds_ago(40 * DAY))
    reviewed = api.ledger.RecordActivity(
        ledger_pb2.RecordActivityRequest(
            member_id=reviewer, idempotency_key=key(), activity_type="review_submitted", channel=common_pb2.CHANNEL_WEB
        ),
        metadata=api.metadata,
    )
    assert with_expired(reviewed.balance) == (50, 0, 0, 0, 50)
    assert [tx.points for tx in statement(api, reviewer)] == [50, -300, 300]

    run_due_work(program.backend.db)  # nothing more to expire: the members are active again
    assert [tx.points for tx in statement(api, m, EXPIRE)] == [-1200]
    assert [tx.points for tx in statement(api, reviewer, EXPIRE)] == [-300]
    assert with_expired(balance(api, m)) == (10, 0, 0, 0, 10)
    assert with_expired(balance(api, reviewer)) == (50, 0, 0, 0, 50)
    assert_clean(program)


def test_a_server_that_never_runs_the_job_refuses_expired_points(program):
    """`loyalty-ledger serve --due-work-interval 0`: no expiry ever runs in the server."""
    with ServerProcess.serve(program.backend.url, extra=("--due-work-interval", "0")) as server:
        api = Api(server.wait_serving(), program.admin_key)
        try:
            update_program(api, expiry_mode=ROLLING, expiry_days=1)
            m = new_member(api)
            earn_at(api, m, 100, whole_seconds_ago(3 * DAY))
            assert with_expired(balance(api, m)) == (100, 0, 0, 100, 0)
            assert refusal(lambda: redeem(api, m, 100))[1] == {"requested": "100", "available": "0", "expired": "100"}
            assert [tx.kind for tx in statement(api, m)] == [common_pb2.TRANSACTION_KIND_EARN]
        finally:
            api.close()
    assert_clean(program)


# --------------------------------------------------------------------------- backdating bound


def test_orders_older_than_the_backdating_bound_are_invalid(program, api):
    m = new_member(api)
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="order.occur_time"):
        earn_at(api, m, 100, whole_seconds_ago(91 * DAY))
    earn_at(api, m, 100, whole_seconds_ago(89 * DAY))
    update_program(api, max_backdate_days=10)
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="order.occur_time"):
        earn_at(api, m, 100, whole_seconds_ago(11 * DAY))
    earn_at(api, m, 100, whole_seconds_ago(9 * DAY))
    assert as_tuple(balance(api, m)) == (200, 0, 0, 200)
    assert len(statement(api, m)) == 2


# --------------------------------------------------------------------------- the operators' command


def test_expire_command_prints_its_report(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=30)
    m = new_member(api)
    earn_at(api, m, 800, whole_seconds_ago(40 * DAY))
    earn_at(api, m, 100, whole_seconds_ago(1 * DAY))
    command = [str(Path(sys.executable).parent / "loyalty-ledger"), "expire"]
    env = {**os.environ, "LOYALTY_DATABASE_URL": program.backend.url}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = re.search(r"holds lapsed: (\d+); members with expired points: (\d+); points expired: (\d+)", done.stdout)
    assert report, done.stdout
    assert int(report.group(2)) >= 1 and int(report.group(3)) >= 800
    assert as_tuple(balance(api, m)) == (100, 0, 0, 100)
    assert [tx.points for tx in statement(api, m, EXPIRE)] == [-800]

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "points expired:" in again.stdout
    assert [tx.points for tx in statement(api, m, EXPIRE)] == [-800]
    assert_clean(program)


# --------------------------------------------------------------------------- reversing an expiry


def test_reversing_an_expiry_gives_the_points_back_for_good(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=30)
    m = new_member(api)
    earn_at(api, m, 1000, whole_seconds_ago(40 * DAY))
    run_due_work(program.backend.db)
    (expired,) = statement(api, m, EXPIRE)
    assert expired.points == -1000
    reversal = api.ledger.ReverseTransaction(
        ledger_pb2.ReverseTransactionRequest(transaction_id=expired.transaction_id, idempotency_key=key(), reason="wrong"),
        metadata=api.metadata,
    )
    assert as_tuple(reversal.balance) == (1000, 0, 0, 1000)
    run_due_work(program.backend.db)
    assert_clean(program)
    assert [tx.points for tx in statement(api, m, EXPIRE)] == [-1000]  # actual: [-1000, -1000]
    assert as_tuple(balance(api, m)) == (1000, 0, 0, 1000)  # actual: (0, 0, 0, 0)


# --------------------------------------------------------------------------- concurrency (PostgreSQL)


def test_expiry_racing_redemptions_never_expires_spent_points(pg_program):
    api = pg_program.api()
    count = 8
    try:
        update_program(api, expiry_mode=ROLLING, expiry_days=30)
        members = [new_member(api) for _ in range(count)]
        for m in members:
            earn_at(api, m, 1000, whole_seconds_ago(40 * DAY))  # due
            earn_at(api, m, 500, whole_seconds_ago(10 * DAY))  # valid 20 more days
        barrier = threading.Barrier(count + 2)
        errors: list = []

        def redeemer(m: str) -> None:
            channel = grpc.insecure_channel(pg_program.backend.target)
            try:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                request = ledger_pb2.RedeemRequest(member_id=m, idempotency_key=key(), points=300)
                grpc.channel_ready_future(channel).result(timeout=10)
                barrier.wait(timeout=30)
                for _ in range(50):
                    try:
                        stub.Redeem(request, metadata=api.metadata, timeout=30)
                        return
                    except grpc.RpcError as error:
                        if error.code() != grpc.StatusCode.ABORTED:
                            errors.append((m, error.code(), error.details()))
                            return
            finally:
                channel.close()

        def sweeper() -> None:
            barrier.wait(timeout=30)
            run_due_work(pg_program.backend.db)

        threads = [threading.Thread(target=redeemer, args=(m,)) for m in members]
        threads += [threading.Thread(target=sweeper) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        run_due_work(pg_program.backend.db)
        for m in members:
            expired = [tx.points for tx in statement(api, m, EXPIRE)]
            # expiry first or redemption first, the same: the redemption takes 300 of the
            # valid lot (the due one was never available), the expiry all 1000 due
            assert expired == [-1000], expired
            assert with_expired(balance(api, m)) == (200, 0, 0, 0, 200)
    finally:
        api.close()
    assert_clean(pg_program)


def test_concurrent_redemptions_never_spend_expired_points(pg_program):
    """32 terminals redeem from one member at once (group commit: member_group_commit runs them in
    shared transactions): the 100 valid points go, 10 at a time, never one of the 1000 expired."""
    api = pg_program.api()
    terminals = 32
    try:
        update_program(api, expiry_mode=ROLLING, expiry_days=1)
        m = new_member(api)
        earn_at(api, m, 1000, whole_seconds_ago(3 * DAY))
        earn_at(api, m, 100, whole_seconds_ago(timedelta(hours=1)))
        barrier = threading.Barrier(terminals)
        outcomes: list = []

        def terminal() -> None:
            with grpc.insecure_channel(pg_program.backend.target) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                request = ledger_pb2.RedeemRequest(member_id=m, idempotency_key=key(), points=10)
                barrier.wait(timeout=30)
                for _ in range(50):
                    try:
                        outcomes.append(("OK", stub.Redeem(request, metadata=api.metadata, timeout=30).balance.available))
                        return
                    except grpc.RpcError as error:
                        if error.code() != grpc.StatusCode.ABORTED:
                            outcomes.append((error_details(error)[0], error_metadata(error)))
                            return

        threads = [threading.Thread(target=terminal) for _ in range(terminals)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(outcomes) == terminals
        assert sorted(available for status, available in outcomes if status == "OK") == list(range(0, 100, 10))
        refused = [metadata for status, metadata in outcomes if status != "OK"]
        assert len(refused) == terminals - 10
        assert all(metadata["expired"] == "1000" and int(metadata["available"]) < 10 for metadata in refused)
        assert with_expired(balance(api, m)) == (1000, 0, 0, 1000, 0)
        run_due_work(pg_program.backend.db)
        assert [tx.points for tx in statement(api, m, EXPIRE)] == [-1000]
        assert with_expired(balance(api, m)) == (0, 0, 0, 0, 0)
    finally:
        api.close()
    assert_clean(pg_program)

"""Redemption holds at the till over real gRPC, on PostgreSQL and SQLite.

What it proves:
- AuthorizeRedemption reserves points: available goes down, held shows them, posted is untouched;
  a hold never takes available below zero (INSUFFICIENT_POINTS);
- CaptureRedemption debits the captured points only (full or partial; the rest is released),
  writes a CAPTURE transaction to the statement; VoidRedemption releases everything;
- a hold is used once: capture or void after capture, void or lapse is FAILED_PRECONDITION
  HOLD_NOT_OPEN; capturing more than held is CAPTURE_EXCEEDS_HOLD and leaves the hold open;
  an unknown hold, or one of another program, is NOT_FOUND HOLD_NOT_FOUND;
- a hold lapses by time alone (explicit ttl_seconds or the program's hold_ttl_seconds): held drops to 0 before any sweeper ran and capture is refused;
  run_due_work then marks it LAPSED exactly once;
- retries with the same idempotency key return the same hold / transaction and apply once;
- on PostgreSQL, 32 racing captures and voids on one hold: exactly one wins; captures racing the
  sweeper on holds that are lapsing right then: each hold ends captured or lapsed, never both;
- `verify` finds every invariant intact after each scenario.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from datetime import datetime, timezone

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from loyalty.v1 import common_pb2, ledger_pb2, ledger_pb2_grpc, programs_pb2
from ledger.service.expiry import run_due_work
from ledger.service.verify import verify
from ledger.store import holds as hold_rows
from tests.conftest import new_program
from tests.grpc_helpers import balance, earn, enroll, error_details, expect_error, key

OPEN, CAPTURED, VOIDED = ledger_pb2.Hold.STATE_OPEN, ledger_pb2.Hold.STATE_CAPTURED, ledger_pb2.Hold.STATE_VOIDED


# --------------------------------------------------------------------------- helpers


def authorize(api, member_id: str, points: int, *, idempotency_key: str | None = None, ttl: int = 0, order_id: str = ""):
    return api.ledger.AuthorizeRedemption(
        ledger_pb2.AuthorizeRedemptionRequest(
            member_id=member_id,
            idempotency_key=idempotency_key or key(),
            points=points,
            ttl_seconds=ttl,
            order_id=order_id,
        ),
        metadata=api.metadata,
    )


def capture(api, hold_id: str, points: int = 0, *, idempotency_key: str | None = None):
    return api.ledger.CaptureRedemption(
        ledger_pb2.CaptureRedemptionRequest(hold_id=hold_id, idempotency_key=idempotency_key or key(), points=points),
        metadata=api.metadata,
    )


def void(api, hold_id: str, *, idempotency_key: str | None = None):
    return api.ledger.VoidRedemption(
        ledger_pb2.VoidRedemptionRequest(hold_id=hold_id, idempotency_key=idempotency_key or key()),
        metadata=api.metadata,
    )


def statement(api, member_id: str, *kinds) -> list:
    return list(
        api.ledger.ListTransactions(
            ledger_pb2.ListTransactionsRequest(member_id=member_id, page_size=100, kinds=list(kinds)),
            metadata=api.metadata,
        ).transactions
    )


def error_metadata(error: grpc.RpcError) -> dict:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            return dict(info.metadata)
    return {}


def update_program(api, **fields):
    return api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(**fields), update_mask=field_mask_pb2.FieldMask(paths=list(fields))
        ),
        metadata=api.metadata,
    ).program


def funded_member(api, points: int = 1000) -> str:
    member_id = f"m-{secrets.token_hex(4)}"
    enroll(api, member_id)
    earn(api, member_id, points * 100)  # default rate: 1 point per 100 minor units
    return member_id


def as_tuple(b) -> tuple[int, int, int, int]:
    return (b.posted, b.pending, b.held, b.available)


def stored_hold(program, hold_id: str):
    with program.backend.engine.connect() as conn:
        return hold_rows.get(conn, program.program_id, hold_id)


def assert_clean(program) -> None:
    report = verify(program.backend.db)
    assert report.clean, report.breaches


# --------------------------------------------------------------------------- authorize / capture / void


def test_authorize_reserves_available_points(program, api):
    member = funded_member(api)
    before = datetime.now(timezone.utc)
    response = authorize(api, member, 300, order_id="o-till-1")
    hold = response.hold
    assert hold.hold_id and hold.member_id == member and hold.points == 300
    assert hold.state == OPEN and hold.order_id == "o-till-1" and hold.captured_points == 0
    ttl = hold.expire_time.ToDatetime(tzinfo=timezone.utc) - before
    assert 899 <= ttl.total_seconds() <= 905  # the program default of 900 s
    assert as_tuple(response.balance) == (1000, 0, 300, 700)
    assert as_tuple(balance(api, member)) == (1000, 0, 300, 700)
    assert [tx.kind for tx in statement(api, member)] == [common_pb2.TRANSACTION_KIND_EARN]  # nothing posted
    assert_clean(program)


def test_capture_whole_hold(program, api):
    member = funded_member(api)
    hold = authorize(api, member, 300).hold
    captured = capture(api, hold.hold_id)  # points 0: the whole hold
    assert captured.transaction.kind == common_pb2.TRANSACTION_KIND_CAPTURE
    assert captured.transaction.points == -300
    assert captured.hold.state == CAPTURED and captured.hold.captured_points == 300
    assert as_tuple(captured.balance) == (700, 0, 0, 700)
    assert as_tuple(balance(api, member)) == (700, 0, 0, 700)
    newest = statement(api, member)
    assert [(tx.kind, tx.points) for tx in newest] == [
        (common_pb2.TRANSACTION_KIND_CAPTURE, -300),
        (common_pb2.TRANSACTION_KIND_EARN, 1000),
    ]
    assert newest[0].transaction_id == captured.transaction.transaction_id
    assert newest[0].balance_after == 700
    assert hold.hold_id in newest[0].reason
    only_captures = statement(api, member, common_pb2.TRANSACTION_KIND_CAPTURE)
    assert [tx.transaction_id for tx in only_captures] == [captured.transaction.transaction_id]
    assert stored_hold(program, hold.hold_id).captured_points == 300
    assert_clean(program)


def test_partial_capture_releases_the_rest(program, api):
    member = funded_member(api)
    hold = authorize(api, member, 300).hold
    captured = capture(api, hold.hold_id, 120)
    assert captured.transaction.points == -120
    assert captured.hold.state == CAPTURED and captured.hold.captured_points == 120 and captured.hold.points == 300
    assert as_tuple(captured.balance) == (880, 0, 0, 880)
    assert as_tuple(balance(api, member)) == (880, 0, 0, 880)
    # the released 180 are spendable again
    assert as_tuple(authorize(api, member, 880).balance) == (880, 0, 880, 0)
    assert_clean(program)


def test_void_releases_the_hold(program, api):
    member = funded_member(api)
    hold = authorize(api, member, 400).hold
    voided = void(api, hold.hold_id)
    assert voided.hold.state == VOIDED and voided.hold.captured_points == 0
    assert as_tuple(voided.balance) == (1000, 0, 0, 1000)
    assert as_tuple(balance(api, member)) == (1000, 0, 0, 1000)
    assert [tx.kind for tx in statement(api, member)] == [common_pb2.TRANSACTION_KIND_EARN]
    assert_clean(program)


@pytest.mark.parametrize("closed_by", ["void", "capture", "partial-capture", "lapse"])
def test_a_closed_hold_cannot_be_used_again(program, api, closed_by):
    member = funded_member(api)
    if closed_by == "lapse":  # by the program's default hold TTL (the explicit ttl_seconds is tested below)
        update = update_program(api, hold_ttl_seconds=1)
        assert update.hold_ttl_seconds == 1
    hold = authorize(api, member, 300).hold
    expected_state = {"void": "VOIDED", "capture": "CAPTURED", "partial-capture": "CAPTURED", "lapse": "LAPSED"}
    if closed_by == "void":
        void(api, hold.hold_id)
    elif closed_by == "capture":
        capture(api, hold.hold_id)
    elif closed_by == "partial-capture":
        capture(api, hold.hold_id, 100)
    else:
        time.sleep(1.2)
    after = as_tuple(balance(api, member))
    for attempt in (lambda: capture(api, hold.hold_id), lambda: capture(api, hold.hold_id, 1), lambda: void(api, hold.hold_id)):
        with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "HOLD_NOT_OPEN") as caught:
            attempt()
        assert error_metadata(caught.value)["state"] == expected_state[closed_by]
    assert as_tuple(balance(api, member)) == after
    assert_clean(program)


def test_capture_more_than_held_is_refused_and_the_hold_stays_open(program, api):
    member = funded_member(api)
    hold = authorize(api, member, 300).hold
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "CAPTURE_EXCEEDS_HOLD") as caught:
        capture(api, hold.hold_id, 301)
    assert error_metadata(caught.value)["held"] == "300"
    assert as_tuple(balance(api, member)) == (1000, 0, 300, 700)
    assert capture(api, hold.hold_id, 300).transaction.points == -300
    assert as_tuple(balance(api, member)) == (700, 0, 0, 700)
    assert_clean(program)


def test_unknown_hold_is_not_found(api):
    for attempt in (lambda: capture(api, "hold_does_not_exist"), lambda: void(api, "hold_does_not_exist")):
        with expect_error(grpc.StatusCode.NOT_FOUND, "HOLD_NOT_FOUND"):
            attempt()


def test_hold_of_another_program_is_not_found(program, api):
    other = new_program(program.backend)
    other_api = other.api()
    try:
        member = funded_member(other_api)
        hold = authorize(other_api, member, 200).hold
        enroll(api, member)  # same member id in this program changes nothing
        for attempt in (lambda: capture(api, hold.hold_id), lambda: void(api, hold.hold_id)):
            with expect_error(grpc.StatusCode.NOT_FOUND, "HOLD_NOT_FOUND"):
                attempt()
        assert as_tuple(balance(other_api, member)) == (1000, 0, 200, 800)
        assert capture(other_api, hold.hold_id).transaction.points == -200
    finally:
        other_api.close()
    assert_clean(program)


def test_authorize_never_takes_available_below_zero(program, api):
    member = funded_member(api)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        authorize(api, member, 1001)
    authorize(api, member, 600)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        authorize(api, member, 401)
    authorize(api, member, 400)
    assert as_tuple(balance(api, member)) == (1000, 0, 1000, 0)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        authorize(api, member, 1)
    assert_clean(program)


def test_a_hold_lapses_by_time_and_the_sweeper_marks_it_once(program, api):
    run_due_work(program.backend.db)  # drain holds other tests left lapsing in the shared database
    member = funded_member(api)
    hold = authorize(api, member, 300, ttl=1).hold
    assert as_tuple(balance(api, member)) == (1000, 0, 300, 700)
    time.sleep(1.2)
    # no sweeper has run: the hold is still OPEN in the database, but lapsed by time
    assert stored_hold(program, hold.hold_id).state.value == "OPEN"
    assert as_tuple(balance(api, member)) == (1000, 0, 0, 1000)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "HOLD_NOT_OPEN") as caught:
        capture(api, hold.hold_id)
    assert error_metadata(caught.value)["state"] == "LAPSED"
    assert_clean(program)

    first = run_due_work(program.backend.db)
    assert first.holds_lapsed == 1
    row = stored_hold(program, hold.hold_id)
    assert row.state.value == "LAPSED" and row.captured_points == 0
    assert run_due_work(program.backend.db).holds_lapsed == 0
    assert stored_hold(program, hold.hold_id) == row
    assert as_tuple(balance(api, member)) == (1000, 0, 0, 1000)
    assert [tx.kind for tx in statement(api, member)] == [common_pb2.TRANSACTION_KIND_EARN]
    assert_clean(program)


def test_retries_with_the_same_key_apply_once(program, api):
    member = funded_member(api)
    authorize_key = key()
    first = authorize(api, member, 300, idempotency_key=authorize_key)
    again = authorize(api, member, 300, idempotency_key=authorize_key)
    assert again.hold.hold_id == first.hold.hold_id
    assert again == first
    assert as_tuple(balance(api, member)) == (1000, 0, 300, 700)  # held once

    capture_key = key()
    captured = capture(api, first.hold.hold_id, 250, idempotency_key=capture_key)
    retried = capture(api, first.hold.hold_id, 250, idempotency_key=capture_key)
    assert retried.transaction.transaction_id == captured.transaction.transaction_id
    assert retried == captured
    assert as_tuple(balance(api, member)) == (750, 0, 0, 750)
    assert len(statement(api, member, common_pb2.TRANSACTION_KIND_CAPTURE)) == 1
    # the same key for another request is refused
    with expect_error(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"):
        capture(api, first.hold.hold_id, 100, idempotency_key=capture_key)

    second = authorize(api, member, 100).hold
    void_key = key()
    voided = void(api, second.hold_id, idempotency_key=void_key)
    assert void(api, second.hold_id, idempotency_key=void_key) == voided  # not HOLD_NOT_OPEN
    # a refusal is recorded too: its retry answers the same even though the hold is closed now
    third = authorize(api, member, 100).hold
    refused_key = key()
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "CAPTURE_EXCEEDS_HOLD"):
        capture(api, third.hold_id, 101, idempotency_key=refused_key)
    void(api, third.hold_id)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "CAPTURE_EXCEEDS_HOLD"):
        capture(api, third.hold_id, 101, idempotency_key=refused_key)
    assert as_tuple(balance(api, member)) == (750, 0, 0, 750)
    assert_clean(program)


# --------------------------------------------------------------------------- concurrency (PostgreSQL)


def _call_until_decided(call, request, metadata):
    """(code, reason, response); ABORTED CONFLICT_RETRY is retried with the same request and key."""
    for _ in range(50):
        try:
            return grpc.StatusCode.OK, "", call(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            reason = error_details(error)[0]
            if error.code() == grpc.StatusCode.ABORTED and reason == "CONFLICT_RETRY":
                time.sleep(random.uniform(0, 0.01))
                continue
            return error.code(), reason, None
    raise AssertionError("still CONFLICT_RETRY after 50 attempts")


def _race_on_one_hold(pg_program, api, threads: int, captures: int):
    member = funded_member(api)
    hold = authorize(api, member, 500).hold
    barrier = threading.Barrier(threads)
    results: list = [None] * threads
    amounts = random.sample(range(1, 501), captures)

    def worker(i: int) -> None:
        channel = grpc.insecure_channel(pg_program.backend.target)
        try:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            if i < captures:
                call = stub.CaptureRedemption
                request = ledger_pb2.CaptureRedemptionRequest(hold_id=hold.hold_id, idempotency_key=key(), points=amounts[i])
            else:
                call = stub.VoidRedemption
                request = ledger_pb2.VoidRedemptionRequest(hold_id=hold.hold_id, idempotency_key=key())
            grpc.channel_ready_future(channel).result(timeout=10)
            barrier.wait(timeout=30)
            results[i] = _call_until_decided(call, request, api.metadata)
        finally:
            channel.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert all(r is not None for r in results), results
    winners = [i for i, (code, _, _) in enumerate(results) if code == grpc.StatusCode.OK]
    assert len(winners) == 1, results
    losers = {(code, reason) for i, (code, reason, _) in enumerate(results) if i not in winners}
    assert losers <= {(grpc.StatusCode.FAILED_PRECONDITION, "HOLD_NOT_OPEN")}, losers
    (winner,) = winners
    captured = amounts[winner] if winner < captures else 0
    assert as_tuple(balance(api, member)) == (1000 - captured, 0, 0, 1000 - captured)
    captures_posted = statement(api, member, common_pb2.TRANSACTION_KIND_CAPTURE)
    assert [tx.points for tx in captures_posted] == ([-captured] if captured else [])
    row = stored_hold(pg_program, hold.hold_id)
    assert (row.state.value, row.captured_points) == (("CAPTURED", captured) if captured else ("VOIDED", 0))
    return winner < captures


def test_racing_captures_and_voids_on_one_hold_exactly_one_wins(pg_program):
    api = pg_program.api()
    try:
        for _round in range(2):
            _race_on_one_hold(pg_program, api, threads=32, captures=16)
        # all captures, different partial amounts: still exactly one
        assert _race_on_one_hold(pg_program, api, threads=32, captures=32)
    finally:
        api.close()
    assert_clean(pg_program)


def test_captures_racing_the_sweeper_end_captured_or_lapsed_never_both(pg_program):
    api = pg_program.api()
    count = 16
    try:
        members = [funded_member(api) for _ in range(count)]
        holds = [authorize(api, m, 100 + i, ttl=1).hold for i, m in enumerate(members)]
        deadlines = [h.expire_time.ToDatetime(tzinfo=timezone.utc).timestamp() for h in holds]
        results: list = [None] * count
        stop = threading.Event()
        barrier = threading.Barrier(count + 2)

        def capturer(i: int) -> None:
            channel = grpc.insecure_channel(pg_program.backend.target)
            try:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                grpc.channel_ready_future(channel).result(timeout=10)
                barrier.wait(timeout=30)
                # aim at the instant the hold lapses, a little before or after
                time.sleep(max(0.0, deadlines[i] + random.uniform(-0.06, 0.02) - time.time()))
                request = ledger_pb2.CaptureRedemptionRequest(hold_id=holds[i].hold_id, idempotency_key=key())
                results[i] = _call_until_decided(stub.CaptureRedemption, request, api.metadata)
            finally:
                channel.close()

        def sweeper() -> None:
            barrier.wait(timeout=30)
            while not stop.is_set():
                run_due_work(pg_program.backend.db)

        threads = [threading.Thread(target=capturer, args=(i,)) for i in range(count)]
        threads += [threading.Thread(target=sweeper) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads[:count]:
            t.join(timeout=60)
        time.sleep(max(0.0, max(deadlines) + 0.1 - time.time()))
        stop.set()
        for t in threads[count:]:
            t.join(timeout=60)
        run_due_work(pg_program.backend.db)

        outcomes = {"captured": 0, "lapsed": 0}
        for i, (member, hold) in enumerate(zip(members, holds)):
            code, reason, response = results[i]
            row = stored_hold(pg_program, hold.hold_id)
            posted = statement(api, member, common_pb2.TRANSACTION_KIND_CAPTURE)
            if code == grpc.StatusCode.OK:
                assert row.state.value == "CAPTURED" and row.captured_points == hold.points
                assert [tx.transaction_id for tx in posted] == [response.transaction.transaction_id]
                assert as_tuple(balance(api, member)) == (1000 - hold.points, 0, 0, 1000 - hold.points)
                outcomes["captured"] += 1
            else:
                assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_NOT_OPEN")
                assert row.state.value == "LAPSED" and row.captured_points == 0
                assert posted == []
                assert as_tuple(balance(api, member)) == (1000, 0, 0, 1000)
                outcomes["lapsed"] += 1
        assert sum(outcomes.values()) == count
    finally:
        api.close()
    assert_clean(pg_program)

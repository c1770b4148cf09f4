"""loyalty.v1.Events through the real gRPC API, on PostgreSQL and SQLite (DESIGN.md section 10).

- every ledger change (enrolment, earn, redeem, capture, adjustment, reversal, refund) has
  exactly its event, of its type, with its payload; a refused or invalid call writes none;
- ListEvents pages with signed tokens, starts after a cursor and filters by type;
- WatchEvents replays what exists, then follows new events within a second;
- writers on several threads and a watcher: the watcher sees every event exactly once, in
  position order, with no gap, and each member's events in the order of its ledger;
- only the `events` and `admin` roles may read events; a bad cursor, page token or type is
  INVALID_ARGUMENT, a cursor older than the retention OUT_OF_RANGE / CURSOR_EXPIRED.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from ledger.domain.kinds import Role
from ledger.service.expiry import run_due_work
from loyalty.v1 import common_pb2, events_pb2, ledger_pb2
from tests.grpc_helpers import earn, enroll, expect_error, key
from tests.integration.ledger_checks import assert_verify_clean, statement
from tests.integration.test_lifecycle_expiry import server_clock_moved


@pytest.fixture(autouse=True)
def _verify_after(program):
    yield
    assert_verify_clean(program)


def list_all(api, **request) -> list:
    found, token = [], ""
    while True:
        page = api.events.ListEvents(
            events_pb2.ListEventsRequest(page_size=request.pop("page_size", 500), page_token=token, **request),
            metadata=api.metadata,
        )
        found.extend(page.events)
        token = page.next_page_token
        if not token:
            return found


def adjust(api, member_id: str, points: int, reason: str = "goodwill"):
    return api.ledger.AdjustPoints(
        ledger_pb2.AdjustPointsRequest(member_id=member_id, idempotency_key=key(), points=points, reason=reason),
        metadata=api.metadata,
    )


class Watcher:
    """A WatchEvents stream read on a thread of its own into a queue."""

    def __init__(self, api, **request) -> None:
        self.call = api.events.WatchEvents(events_pb2.WatchEventsRequest(**request), metadata=api.metadata)
        self.received: queue.Queue = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                for event in message.events:
                    self.received.put((time.monotonic(), event))
        except grpc.RpcError as error:
            self.error = error

    def take(self, count: int, timeout: float = 20.0) -> list:
        out = []
        ends = time.monotonic() + timeout
        while len(out) < count:
            out.append(self.received.get(timeout=max(0.01, ends - time.monotonic())))
        return out

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(10)


def test_every_change_has_exactly_its_event(program, api):
    member_id = f"m-{key()}"
    enroll(api, member_id)
    earned = earn(api, member_id, 2599, store_id="store-7").transaction
    added = adjust(api, member_id, 500).transaction
    redeemed = api.ledger.Redeem(
        ledger_pb2.RedeemRequest(member_id=member_id, idempotency_key=key(), points=120), metadata=api.metadata
    ).transaction
    hold = api.ledger.AuthorizeRedemption(
        ledger_pb2.AuthorizeRedemptionRequest(member_id=member_id, idempotency_key=key(), points=30),
        metadata=api.metadata,
    ).hold
    captured = api.ledger.CaptureRedemption(
        ledger_pb2.CaptureRedemptionRequest(hold_id=hold.hold_id, idempotency_key=key()), metadata=api.metadata
    ).transaction
    reversed_ = api.ledger.ReverseTransaction(
        ledger_pb2.ReverseTransactionRequest(transaction_id=redeemed.transaction_id, idempotency_key=key()),
        metadata=api.metadata,
    ).transaction
    refunded = api.ledger.RefundOrder(
        ledger_pb2.RefundOrderRequest(
            member_id=member_id, order_id=earned.order_id, idempotency_key=key(), amount=1000
        ),
        metadata=api.metadata,
    ).transaction
    # refused calls write nothing, events included
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        api.ledger.Redeem(
            ledger_pb2.RedeemRequest(member_id=member_id, idempotency_key=key(), points=10**9), metadata=api.metadata
        )
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT):
        adjust(api, member_id, 0)
    enroll(api, member_id)  # enrolment is idempotent: no second member.enrolled

    events = list_all(api)
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)
    assert [(e.type, e.transaction_id) for e in events] == [
        ("member.enrolled", ""),
        ("points.earned", earned.transaction_id),
        ("points.adjusted", added.transaction_id),
        ("points.redeemed", redeemed.transaction_id),
        ("points.redeemed", captured.transaction_id),
        ("points.reversed", reversed_.transaction_id),
        ("points.reversed", refunded.transaction_id),
    ]
    assert {e.member_id for e in events} == {member_id}
    # every transaction of the statement has its event, and no other event has one
    assert {t.transaction_id for t in statement(api, member_id)} == {e.transaction_id for e in events[1:]}
    assert events[0].WhichOneof("payload") == "member_enrolled" and events[0].member_enrolled.referral_code
    earned_event = events[1]
    assert earned_event.WhichOneof("payload") == "points_earned"
    movement = earned_event.points_earned
    assert (movement.kind, movement.points, movement.posted_after) == (
        common_pb2.TRANSACTION_KIND_EARN,
        earned.points,
        earned.points,
    )
    assert (movement.order_id, movement.store_id, movement.channel) == (earned.order_id, "store-7", common_pb2.CHANNEL_POS)
    assert earned_event.occur_time == earned.occur_time and earned_event.create_time == earned.create_time
    assert events[2].points_adjusted.reason == "goodwill" and events[2].points_adjusted.points == 500
    assert events[5].points_reversed.reverses_transaction_id == redeemed.transaction_id
    assert events[6].points_reversed.kind == common_pb2.TRANSACTION_KIND_REFUND
    balances = [t.balance_after for t in reversed(statement(api, member_id))]
    assert [e.WhichOneof("payload") and getattr(e, e.WhichOneof("payload")).posted_after for e in events[1:]] == balances


def test_list_events_pages_starts_after_a_cursor_and_filters_by_type(program, api):
    members = [f"m-{key()}" for _ in range(3)]
    for member_id in members:
        enroll(api, member_id)
        adjust(api, member_id, 10)
        adjust(api, member_id, -3)
    everything = list_all(api)
    assert len(everything) == 9
    paged = list_all(api, page_size=2)
    assert paged == everything
    after = list_all(api, after_event_id=everything[3].event_id)
    assert after == everything[4:]
    adjusted = list_all(api, types=["points.adjusted"])
    assert adjusted == [e for e in everything if e.type == "points.adjusted"]
    enrolled = list_all(api, types=["member.enrolled"], after_event_id=everything[0].event_id, page_size=1)
    assert [e.member_id for e in enrolled] == members[1:]
    # at the end: an empty page, no token
    last = api.events.ListEvents(
        events_pb2.ListEventsRequest(after_event_id=everything[-1].event_id), metadata=api.metadata
    )
    assert (list(last.events), last.next_page_token) == ([], "")


def test_watch_replays_then_follows_live_within_a_second(program, api):
    member_id = f"m-{key()}"
    enroll(api, member_id)
    adjust(api, member_id, 5)
    watcher = Watcher(api)
    try:
        replayed = [event for _, event in watcher.take(2)]
        assert [e.type for e in replayed] == ["member.enrolled", "points.adjusted"]
        time.sleep(1.5)  # at rest: the stream is waiting
        delays = []
        for points in (7, 8, 9):
            committed = time.monotonic()
            written = adjust(api, member_id, points).transaction
            ((arrived, event),) = watcher.take(1, timeout=5)
            assert event.transaction_id == written.transaction_id
            delays.append(arrived - committed)
            time.sleep(0.4)
        assert max(delays) < 1.0, delays
        # a second watcher from a cursor gets what came after it, then follows too
        second = Watcher(api, after_event_id=replayed[-1].event_id, types=["points.adjusted"])
        try:
            assert [e.points_adjusted.points for _, e in second.take(3)] == [7, 8, 9]
        finally:
            second.close()
    finally:
        watcher.close()
    assert watcher.error is None or watcher.error.code() == grpc.StatusCode.CANCELLED


def test_concurrent_writers_and_a_watcher_see_every_event_once_in_commit_order(program, api):
    member_ids = [f"m-{n}-{key()}" for n in range(4)]
    for member_id in member_ids:
        enroll(api, member_id)
        adjust(api, member_id, 10_000)
    start = list_all(api)
    watcher = Watcher(api, after_event_id=start[-1].event_id)
    writers, each = 4, 25
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        rng = random.Random(writer)
        own = program.api(Role.SUPPORT)
        try:
            for _ in range(each):
                member_id = rng.choice(member_ids)
                if rng.random() < 0.5:
                    earn(own, member_id, rng.randint(100, 5000))
                else:
                    adjust(own, member_id, rng.choice((-5, -1, 3, 4)))
        except BaseException as error:
            failures.append(error)
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures
        seen = [event for _, event in watcher.take(writers * each, timeout=30)]
        time.sleep(0.6)
        assert watcher.received.empty()  # nothing twice, nothing more
    finally:
        watcher.close()
    listed = list_all(api, after_event_id=start[-1].event_id)
    assert [e.event_id for e in seen] == [e.event_id for e in listed]
    assert len({e.event_id for e in seen}) == writers * each
    for member_id in member_ids:  # each member's events in its ledger's order
        ledger = [t.transaction_id for t in reversed(statement(api, member_id))][1:]  # after the seed
        assert [e.transaction_id for e in seen if e.member_id == member_id] == ledger


@pytest.mark.parametrize("role", [Role.POS, Role.STOREFRONT, Role.SUPPORT, Role.MARKETING])
def test_only_events_and_admin_keys_read_events(program, role):
    member_id = f"m-{key()}"
    admin = program.api()
    enroll(admin, member_id)
    refused, reader = program.api(role), program.api(Role.EVENTS)
    try:
        with expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"):
            refused.events.ListEvents(events_pb2.ListEventsRequest(), metadata=refused.metadata)
        with expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"):
            list(refused.events.WatchEvents(events_pb2.WatchEventsRequest(), metadata=refused.metadata, timeout=5))
        assert [e.type for e in list_all(reader)] == ["member.enrolled"]
        stream = reader.events.WatchEvents(events_pb2.WatchEventsRequest(), metadata=reader.metadata, timeout=5)
        assert [e.type for e in next(stream).events] == ["member.enrolled"]
        stream.cancel()
        with expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"):
            reader.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=member_id), metadata=reader.metadata)
        with expect_error(grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID"):
            list(reader.events.WatchEvents(events_pb2.WatchEventsRequest(), timeout=5))
        with expect_error(grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID"):
            list(
                reader.events.WatchEvents(
                    events_pb2.WatchEventsRequest(), metadata=(("authorization", "Bearer nope"),), timeout=5
                )
            )
    finally:
        admin.close()
        refused.close()
        reader.close()


def test_bad_cursors_page_tokens_and_types_are_invalid_argument(program, api):
    enroll(api, f"m-{key()}")
    for bad in ("nonsense", "ev_12", "ev_00000000000000ff", "ev_-000000000000001"):
        with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "after_event_id"):
            api.events.ListEvents(events_pb2.ListEventsRequest(after_event_id=bad), metadata=api.metadata)
        with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "after_event_id"):
            list(api.events.WatchEvents(events_pb2.WatchEventsRequest(after_event_id=bad), metadata=api.metadata, timeout=5))
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "page_token"):
        api.events.ListEvents(events_pb2.ListEventsRequest(page_token="forged"), metadata=api.metadata)
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "types[1]"):
        api.events.ListEvents(events_pb2.ListEventsRequest(types=["points.earned", "points.lost"]), metadata=api.metadata)
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "types[0]"):
        list(api.events.WatchEvents(events_pb2.WatchEventsRequest(types=["x"]), metadata=api.metadata, timeout=5))
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "page_size"):
        api.events.ListEvents(events_pb2.ListEventsRequest(page_size=501), metadata=api.metadata)
    # a token of one type filter is refused for another
    for n in range(3):
        enroll(api, f"m-{n}-{key()}")
    page = api.events.ListEvents(events_pb2.ListEventsRequest(page_size=1), metadata=api.metadata)
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "page_token"):
        api.events.ListEvents(
            events_pb2.ListEventsRequest(page_token=page.next_page_token, types=["member.enrolled"]),
            metadata=api.metadata,
        )


def test_a_cursor_older_than_the_retention_is_out_of_range(program, api):
    member_id = f"m-{key()}"
    with server_clock_moved(-timedelta(days=40)):
        enroll(api, member_id)
        adjust(api, member_id, 5)
    adjust(api, member_id, 6)
    old = list_all(api)
    assert len(old) == 3
    # the due work (run by the leader among the servers) prunes them
    report = run_due_work(program.backend.db)
    assert report.events_pruned >= 2
    kept = list_all(api)
    assert [e.event_id for e in kept] == [old[2].event_id]
    for cursor in (old[0].event_id,):
        with expect_error(grpc.StatusCode.OUT_OF_RANGE, "CURSOR_EXPIRED"):
            api.events.ListEvents(events_pb2.ListEventsRequest(after_event_id=cursor), metadata=api.metadata)
        with expect_error(grpc.StatusCode.OUT_OF_RANGE, "CURSOR_EXPIRED"):
            list(api.events.WatchEvents(events_pb2.WatchEventsRequest(after_event_id=cursor), metadata=api.metadata, timeout=5))
    # the last pruned event is still a good cursor: nothing after it was lost
    assert list_all(api, after_event_id=old[1].event_id) == kept
    assert datetime.now(timezone.utc) - old[0].create_time.ToDatetime(tzinfo=timezone.utc) > timedelta(days=39)


def test_the_retention_is_a_program_setting(program, api):
    from google.protobuf import field_mask_pb2

    from loyalty.v1 import programs_pb2

    def update(days: int):
        return api.programs.UpdateProgram(
            programs_pb2.UpdateProgramRequest(
                program=programs_pb2.Program(event_retention_days=days),
                update_mask=field_mask_pb2.FieldMask(paths=["event_retention_days"]),
            ),
            metadata=api.metadata,
        ).program

    assert api.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=api.metadata).program.event_retention_days == 30
    for bad in (0, 3651):
        with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "program.event_retention_days"):
            update(bad)
    member_id = f"m-{key()}"
    with server_clock_moved(-timedelta(days=10)):
        enroll(api, member_id)
    adjust(api, member_id, 3)
    run_due_work(program.backend.db)
    assert len(list_all(api)) == 2  # 10 days old: kept under 30 days
    assert update(7).event_retention_days == 7
    run_due_work(program.backend.db)
    assert [e.type for e in list_all(api)] == ["points.adjusted"]


def test_a_stream_is_rate_limited_logged_and_measured_like_a_call(program, caplog):
    """The call guard takes the key's rate limit for a stream as for a unary call, and the
    stream is logged and counted once, when it ends (grpc_type server_stream)."""
    import logging

    from ledger.api import metrics
    from ledger.api import server as grpc_server
    from ledger.api.rate_limits import RateLimiter
    from tests.conftest import Api

    running = grpc_server.start(program.backend.db, "127.0.0.1:0", max_workers=4, limiter=RateLimiter(0.01, 1))
    reader = Api(f"127.0.0.1:{running.port}", program.key(Role.EVENTS))
    labels = ("server_stream", "loyalty.v1.Events", "WatchEvents")
    cancelled_before = metrics.HANDLED.labels(*labels, "CANCELLED")._value.get()
    try:
        with caplog.at_level(logging.INFO, logger="ledger.calls"):
            stream = reader.events.WatchEvents(events_pb2.WatchEventsRequest(), metadata=reader.metadata, timeout=10)
            admin = program.api()
            enroll(admin, f"m-{key()}")
            admin.close()
            assert [e.type for e in next(stream).events] == ["member.enrolled"]
            with expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"):
                list(reader.events.WatchEvents(events_pb2.WatchEventsRequest(), metadata=reader.metadata, timeout=10))
            stream.cancel()
            ends = time.monotonic() + 5
            while metrics.HANDLED.labels(*labels, "CANCELLED")._value.get() == cancelled_before:
                assert time.monotonic() < ends, "the cancelled stream was not counted"
                time.sleep(0.05)
        logged = [(r.rpc, r.code, r.program) for r in caplog.records if getattr(r, "rpc", "") == "Events.WatchEvents"]
        assert ("Events.WatchEvents", "RESOURCE_EXHAUSTED", program.program_id) in logged
        assert ("Events.WatchEvents", "CANCELLED", program.program_id) in logged
        assert len(logged) == 2  # one line per call, none for its polls
    finally:
        reader.close()
        running.stop(1)


def test_the_ledgers_own_changes_have_their_events_too(program, api):
    """Tier changes, referral rewards and their reversal, and expiry: each transaction the
    ledger writes by itself has its event, of its type, with its payload."""
    from tests.integration import test_earning_engine_tiers as tiers
    from tests.integration import test_referrals as referrals
    from tests.integration.test_lifecycle_expiry import DAY, ROLLING, earn_at, update_program, whole_seconds_ago

    tiers.set_tiers(api, tiers.LADDER)
    referrals.configure(api, pending_days=14)
    alice, code = referrals.referrer(api)
    bob = referrals.referee(api, code)
    order_id, _, earned = referrals.order(api, bob, 20_000)  # Silver at 10,000: a tier change too
    refunded = referrals.refund(api, bob, order_id, 20_000).transaction
    update_program(api, expiry_mode=ROLLING, expiry_days=30)
    carol = f"m-{key()}"
    enroll(api, carol)
    earn_at(api, carol, 70, whole_seconds_ago(31 * DAY))
    run_due_work(program.backend.db)

    events = list_all(api)
    by_type: dict[str, list] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)
    [rewarded] = by_type["referral.rewarded"]
    assert rewarded.member_id == bob
    assert (rewarded.referral_rewarded.referrer_member_id, rewarded.referral_rewarded.referrer_points,
            rewarded.referral_rewarded.referee_points) == (alice, referrals.REFERRER_POINTS, referrals.REFEREE_POINTS)
    [taken_back] = by_type["referral.reversed"]
    assert taken_back.referral_reversed.reverses_transaction_id == rewarded.transaction_id
    assert (taken_back.referral_reversed.referrer_points, taken_back.referral_reversed.referee_points) == (
        -referrals.REFERRER_POINTS,
        -referrals.REFEREE_POINTS,
    )
    assert taken_back.referral_reversed.order_id == order_id
    changes = [(e.member_id, e.tier_changed.from_tier, e.tier_changed.to_tier) for e in by_type["tier.changed"]]
    assert (bob, "Member", "Silver") in changes or (bob, "", "Silver") in changes, changes
    [expired] = by_type["points.expired"]
    assert (expired.member_id, expired.points_expired.points, expired.points_expired.posted_after) == (carol, -70, 0)
    assert expired.points_expired.kind == common_pb2.TRANSACTION_KIND_EXPIRE
    refund_event = next(e for e in by_type["points.reversed"] if e.transaction_id == refunded.transaction_id)
    assert refund_event.points_reversed.kind == common_pb2.TRANSACTION_KIND_REFUND
    assert earned.transaction.transaction_id in {e.transaction_id for e in by_type["points.earned"]}
    # every transaction of every member has exactly its event
    written = set()
    for member_id in (alice, bob, carol):
        written |= {t.transaction_id for t in statement(api, member_id)}
    with_transaction = [e.transaction_id for e in events if e.transaction_id]
    assert sorted(with_transaction) == sorted(written)


def test_a_stopping_server_ends_its_streams_at_once(program):
    """A stream never ends by itself: a server that stops ends it (UNAVAILABLE /
    SERVER_STOPPING, the client resumes after its last event_id) rather than holding the
    shutdown for its whole grace period."""
    from ledger.api import server as grpc_server
    from tests.conftest import Api

    running = grpc_server.start(program.backend.db, "127.0.0.1:0", max_workers=2)
    reader = Api(f"127.0.0.1:{running.port}", program.key(Role.EVENTS))
    try:
        watcher = Watcher(reader)
        time.sleep(0.5)  # the stream is open and waiting
        started = time.monotonic()
        running.stop(10)
        assert time.monotonic() - started < 5
        watcher.thread.join(5)
        assert watcher.error is not None and watcher.error.code() == grpc.StatusCode.UNAVAILABLE
        assert watcher.error.details().startswith("the server is stopping")
    finally:
        reader.close()


def test_fuzzed_list_and_watch_requests_never_answer_internal(program, api):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    enroll(api, f"m-{key()}")
    texts = st.one_of(st.text(max_size=40), st.sampled_from(["", "ev_0000000000000001", "ev_ffffffffffffffff"]))
    types = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(["points.earned", "member.enrolled"])), max_size=3)

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(after=texts, token=texts, size=st.integers(-(2**31), 2**31 - 1), wanted=types)
    def fuzz(after, token, size, wanted):
        for call in (
            lambda: api.events.ListEvents(
                events_pb2.ListEventsRequest(after_event_id=after, page_token=token, page_size=size, types=wanted),
                metadata=api.metadata,
                timeout=10,
            ),
            lambda: next(
                api.events.WatchEvents(
                    events_pb2.WatchEventsRequest(after_event_id=after, types=wanted), metadata=api.metadata, timeout=1
                ),
                None,
            ),
        ):
            try:
                call()
            except grpc.RpcError as error:
                assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), error.details()

    fuzz()

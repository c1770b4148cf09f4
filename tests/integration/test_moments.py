"""The post-purchase moments through the real gRPC API, on PostgreSQL and SQLite (DESIGN.md section 10).

Orders are backdated (order.occur_time) so that the due work, run with a `now` of the test's
choosing, finds moments due; the events are read back with ListEvents.

What it proves:
- points.expiring: one event per member and expiry day within `moments.points_expiring_days`,
  with the points left after a redemption, the day and the instant; nothing for lots beyond
  the window; the INACTIVITY policy warns of the day all points would go;
- review.requested: N days after an order, once, not for an order fully refunded, not yet
  for a recent one (which gets its turn when the clock has moved);
- member.lapsed: N days after a member's last order, not for a member who ordered since;
- tier.downgrade_warning: a member whose tier review is near and would move them down is told
  what is still needed; a member on course to keep the tier is not;
- each moment is told once: the due work run again, and run by two "leaders" at once on
  separate connections, tells nothing twice; `moments.*` = 0 turns a moment off;
- the settings: GetProgram shows the defaults, UpdateProgram changes the whole message or one
  field, values out of 0..3650 and unknown paths are INVALID_ARGUMENT and change nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta, timezone

import grpc
import pytest
from google.protobuf import field_mask_pb2

from ledger.service import clock
from ledger.service.moments import tell_due_moments
from ledger.store import moments as moment_store
from ledger.store import unit_of_work
from ledger.store.database import Database
from ledger.store.engine import create_engine_for
from loyalty.v1 import events_pb2, ledger_pb2, programs_pb2
from tests.grpc_helpers import earn, enroll, expect_error, key
from tests.integration.ledger_checks import assert_verify_clean
from tests.integration.test_events import list_all
from tests.integration.test_lifecycle_expiry import (
    INACTIVITY,
    ROLLING,
    earn_at,
    new_member,
    redeem,
    stamp,
    update_program,
    whole_seconds_ago,
)

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _verify_after(program):
    yield
    assert_verify_clean(program)


def set_moments(api, paths: list[str], **values):
    return api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(moments=programs_pb2.PostPurchaseMoments(**values)),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        ),
        metadata=api.metadata,
    ).program


def moments_of(api, event_type: str) -> list:
    return list_all(api, types=[event_type])


def tell(program, now=None) -> Counter:
    return tell_due_moments(program.backend.db, now or clock.now()).told


def test_settings_have_defaults_and_change_as_a_whole_or_one_field(program, api):
    shown = api.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=api.metadata).program.moments
    assert (shown.points_expiring_days, shown.tier_downgrade_warning_days, shown.review_request_days, shown.lapsed_days) == (
        30, 14, 10, 180,
    )
    changed = set_moments(api, ["moments.lapsed_days"], lapsed_days=90, review_request_days=99).moments
    assert (changed.lapsed_days, changed.review_request_days) == (90, 10)  # only the named field
    whole = set_moments(api, ["moments"], points_expiring_days=7).moments
    assert (whole.points_expiring_days, whole.tier_downgrade_warning_days, whole.review_request_days, whole.lapsed_days) == (
        7, 0, 0, 0,
    )
    for paths, values in ((["moments.lapsed_days"], {"lapsed_days": 3651}), (["moments"], {"review_request_days": -1})):
        with expect_error(grpc.StatusCode.INVALID_ARGUMENT):
            set_moments(api, paths, **values)
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT):
        set_moments(api, ["moments.no_such_days"], lapsed_days=1)
    after = api.programs.GetProgram(programs_pb2.GetProgramRequest(), metadata=api.metadata).program.moments
    assert after == whole


def test_points_expiring_reminds_once_per_member_and_day_with_the_points_left(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=40)
    set_moments(api, ["moments"], points_expiring_days=30)  # the others off: this test's events only
    member_id = new_member(api)
    placed = whole_seconds_ago(20 * DAY).replace(hour=12, minute=0, second=0)  # mid-day: +1 minute is the same day
    earn_at(api, member_id, 300, placed)  # expires in 20 days
    earn_at(api, member_id, 50, placed + timedelta(minutes=1))  # the same day
    earn_at(api, member_id, 70, whole_seconds_ago(5 * DAY))  # expires in 35 days: not yet
    redeem(api, member_id, 100)  # takes the soonest-expiring first
    other = new_member(api)
    earn_at(api, other, 10, whole_seconds_ago(30 * DAY))

    told = tell(program)
    assert told["points.expiring"] >= 2  # the shared database may hold other programs' moments
    events = moments_of(api, "points.expiring")
    mine = [e for e in events if e.member_id == member_id]
    assert len(mine) == 1
    expiring = mine[0].points_expiring
    first = placed + 40 * DAY
    assert expiring.points == 250
    assert expiring.expire_time.ToDatetime(tzinfo=timezone.utc) == first
    assert expiring.expire_date == first.date().isoformat()
    assert expiring.days_left in (19, 20)  # by the UTC date, whatever the hour
    assert mine[0].transaction_id == ""
    assert [e.points_expiring.points for e in events if e.member_id == other] == [10]

    tell(program)  # again: nothing new
    assert len(moments_of(api, "points.expiring")) == len(events)
    # and the lots of days told are not even read again (the key, computed in SQL, matches)
    with unit_of_work.snapshot(program.backend.db) as conn:
        unread = list(
            moment_store.lots_expiring_by_member(conn, program.program_id, clock.now(), clock.now() + 30 * DAY, 100)
        )
    assert unread == []
    # 6 days on, the 70 points are within 30 days too: a reminder of their own day
    tell(program, clock.now() + 6 * DAY)
    later = [e for e in moments_of(api, "points.expiring") if e.member_id == member_id]
    assert [e.points_expiring.points for e in later] == [250, 70]


def test_inactivity_expiry_warns_of_the_day_all_points_would_go(program, api):
    update_program(api, expiry_mode=INACTIVITY, expiry_days=60)
    set_moments(api, ["moments"], points_expiring_days=30)
    idle = new_member(api)
    earn_at(api, idle, 120, whole_seconds_ago(45 * DAY))
    active = new_member(api)
    earn_at(api, active, 80, whole_seconds_ago(DAY))
    tell(program)
    told = {e.member_id: e.points_expiring for e in moments_of(api, "points.expiring")}
    assert active not in told
    assert told[idle].points == 120 and told[idle].days_left in (14, 15)


def test_review_is_requested_once_per_order_and_never_for_a_refunded_one(program, api):
    set_moments(api, ["moments"], review_request_days=10)
    member_id = new_member(api)
    kept = earn(api, member_id, 5_000, occur_time=stamp(whole_seconds_ago(11 * DAY))).transaction
    refunded = earn(api, member_id, 3_000, occur_time=stamp(whole_seconds_ago(11 * DAY))).transaction
    api.ledger.RefundOrder(
        ledger_pb2.RefundOrderRequest(member_id=member_id, order_id=refunded.order_id, idempotency_key=key(), amount=3_000),
        metadata=api.metadata,
    )
    partly = earn(api, member_id, 4_000, occur_time=stamp(whole_seconds_ago(12 * DAY))).transaction
    api.ledger.RefundOrder(
        ledger_pb2.RefundOrderRequest(member_id=member_id, order_id=partly.order_id, idempotency_key=key(), amount=1_000),
        metadata=api.metadata,
    )
    recent = earn(api, member_id, 2_000, occur_time=stamp(whole_seconds_ago(3 * DAY))).transaction
    long_ago = earn(api, member_id, 2_000, occur_time=stamp(whole_seconds_ago(30 * DAY))).transaction  # past the horizon

    tell(program)
    requests = {e.review_requested.order_id: e for e in moments_of(api, "review.requested")}
    assert set(requests) == {kept.order_id, partly.order_id}
    assert requests[partly.order_id].review_requested.refunded_amount == 1_000
    assert requests[kept.order_id].review_requested.order_amount == 5_000
    assert requests[kept.order_id].member_id == member_id
    tell(program)
    assert len(moments_of(api, "review.requested")) == 2
    tell(program, clock.now() + 8 * DAY)  # the recent order's day has come
    assert {e.review_requested.order_id for e in moments_of(api, "review.requested")} == {
        kept.order_id, partly.order_id, recent.order_id,
    }
    assert long_ago.order_id not in {e.review_requested.order_id for e in moments_of(api, "review.requested")}


def test_a_member_lapses_after_n_days_without_an_order(program, api):
    set_moments(api, ["moments"], lapsed_days=30)
    lapsed = new_member(api)
    earn(api, lapsed, 1_000, occur_time=stamp(whole_seconds_ago(40 * DAY)))
    last = earn(api, lapsed, 1_000, occur_time=stamp(whole_seconds_ago(32 * DAY))).transaction
    back = new_member(api)
    earn(api, back, 1_000, occur_time=stamp(whole_seconds_ago(32 * DAY)))
    earn(api, back, 1_000, occur_time=stamp(whole_seconds_ago(2 * DAY)))
    tell(program)
    events = moments_of(api, "member.lapsed")
    assert [(e.member_id, e.member_lapsed.last_order_id, e.member_lapsed.days_without_order) for e in events] == [
        (lapsed, last.order_id, 32)
    ]
    tell(program)
    assert len(moments_of(api, "member.lapsed")) == 1


def test_a_tier_review_that_would_move_down_is_warned_of_with_what_is_needed(program, api):
    api.programs.SetTiers(
        programs_pb2.SetTiersRequest(
            tiers=[programs_pb2.Tier(name="Silver", threshold=100_000, earn_multiplier_bps=10_000, qualification_days=10)]
        ),
        metadata=api.metadata,
    )
    update_program(api, tier_period_days=20)
    set_moments(api, ["moments"], tier_downgrade_warning_days=30)
    slipping = new_member(api)  # reached Silver 5 days ago; by the review that spend is out of the window
    earn(api, slipping, 150_000, occur_time=stamp(whole_seconds_ago(5 * DAY)))
    tell(program)
    warnings = {e.member_id: e.tier_downgrade_warning for e in moments_of(api, "tier.downgrade_warning")}
    assert set(warnings) == {slipping}
    warning = warnings[slipping]
    assert (warning.tier, warning.would_move_to, warning.qualifying_value, warning.threshold, warning.needed) == (
        "Silver", "", 0, 100_000, 100_000,
    )
    assert warning.basis == programs_pb2.TIER_BASIS_QUALIFYING_SPEND
    tell(program)
    assert len(moments_of(api, "tier.downgrade_warning")) == 1


def test_two_leaders_at_once_tell_each_moment_once(program, api):
    """A leader that lost the lead without knowing yet and the new one run the moments together,
    each on its own connection pool: every key is claimed by one of them."""
    set_moments(api, ["moments"], review_request_days=10)
    members = [new_member(api) for _ in range(30)]
    for member_id in members:
        for _ in range(3):
            earn(api, member_id, 1_000, occur_time=stamp(whole_seconds_ago(11 * DAY)))
    url = program.backend.url
    now = clock.now()
    counts: list[int] = []
    errors: list[BaseException] = []

    def leader() -> None:
        db = Database(create_engine_for(url, pool_size=2))
        try:
            counts.append(tell_due_moments(db, now, page=7).told["review.requested"])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            db.dispose()

    threads = [threading.Thread(target=leader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    events = moments_of(api, "review.requested")
    assert len(events) == 90 == len({e.review_requested.order_id for e in events})
    assert sum(counts) >= 90  # and other programs' in the shared database, each once too


def test_a_moment_turned_off_is_not_told(program, api):
    set_moments(api, ["moments"])  # all off
    member_id = new_member(api)
    earn(api, member_id, 1_000, occur_time=stamp(whole_seconds_ago(60 * DAY)))
    earn(api, member_id, 1_000, occur_time=stamp(whole_seconds_ago(11 * DAY)))
    tell(program)
    assert list_all(api, types=["points.expiring", "review.requested", "member.lapsed"]) == []
    enroll(api, member_id)
    assert api.events.ListEvents(events_pb2.ListEventsRequest(types=["member.lapsed"]), metadata=api.metadata).events == []

"""RFM figures on GetMember, kept current by Earn and RefundOrder, scored by the refresh; segments
and their members through the Programs API; campaigns for a segment. Both backends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import grpc
from sqlalchemy import select, update
from google.protobuf import field_mask_pb2

from ledger.domain.kinds import Role
from ledger.service import segments
from ledger.store.tables import member_rfm
from loyalty.v1 import common_pb2, events_pb2, ledger_pb2, programs_pb2
from tests.grpc_helpers import earn, enroll, expect_error, key
from tests.integration.ledger_checks import statement


def member(api, member_id: str) -> ledger_pb2.Member:
    return api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=member_id), metadata=api.metadata).member


def refund(api, member_id: str, order_id: str, amount: int):
    return api.ledger.RefundOrder(
        ledger_pb2.RefundOrderRequest(member_id=member_id, order_id=order_id, amount=amount, idempotency_key=key()),
        metadata=api.metadata,
    )


def at(days_ago: float) -> dict:
    when = datetime.now(timezone.utc) - timedelta(days=days_ago)
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(when)
    return {"occur_time": stamp}


def test_get_member_shows_rfm_kept_current_by_earn_and_refund(api, program):
    enroll(api, "r-1")
    before = member(api, "r-1")
    assert before.rfm.recency_days == -1 and before.rfm.frequency == 0 and before.rfm.monetary == 0
    assert before.rfm.window_days == 365 and before.rfm.recency_score == 0 and not before.rfm.HasField("last_order_time")
    earn(api, "r-1", 5000, order_id="r-1-a", **at(10))
    earn(api, "r-1", 3000, order_id="r-1-b", **at(2))
    shown = member(api, "r-1").rfm
    assert (shown.recency_days, shown.frequency, shown.monetary) == (2, 2, 8000)
    refund(api, "r-1", "r-1-a", 2000)
    shown = member(api, "r-1").rfm
    assert (shown.recency_days, shown.frequency, shown.monetary) == (2, 2, 6000)  # a refund counts against spend


def _stored(program, member_id: str) -> tuple:
    with program.backend.db.engine.connect() as conn:
        row = conn.execute(
            select(member_rfm.c.orders, member_rfm.c.spend).where(
                member_rfm.c.program_id == program.program_id, member_rfm.c.member_id == member_id
            )
        ).one()
    return int(row.orders), int(row.spend)


def test_earn_adds_its_order_to_the_stored_figures_and_the_refresh_makes_them_exact(api, program):
    enroll(api, "inc-1")
    earn(api, "inc-1", 5000, order_id="inc-a", **at(10))
    assert _stored(program, "inc-1") == (1, 5000)  # nothing stored before: summed from the ledger
    segments.refresh_program(program.backend.db, program.program_id)
    earn(api, "inc-1", 3000, order_id="inc-b", **at(1))
    shown = member(api, "inc-1").rfm
    assert _stored(program, "inc-1") == (shown.frequency, shown.monetary) == (2, 8000)
    # An Earn reads one stored row, not the member's history: what is stored (here made stale,
    # as an order that has left the window since the last refresh leaves it) is what it adds to...
    with program.backend.db.engine.begin() as conn:
        conn.execute(
            update(member_rfm)
            .where(member_rfm.c.program_id == program.program_id, member_rfm.c.member_id == "inc-1")
            .values(orders=7)
        )
    earn(api, "inc-1", 1000, order_id="inc-c")
    assert _stored(program, "inc-1") == (8, 9000)
    # ...until the refresh recomputes it from the ledger, though the member earned just now (the
    # pass over everyone leaves such a member alone; the pass right after it, under the member's
    # lock, does not). GetMember always shows the ledger's figures.
    assert (member(api, "inc-1").rfm.frequency, member(api, "inc-1").rfm.monetary) == (3, 9000)
    segments.refresh_program(program.backend.db, program.program_id)
    assert _stored(program, "inc-1") == (3, 9000)
    # A reversed earn takes its spend out of the stored figures at once (its EARN row stays, so
    # it still counts as an order, as in GetMember).
    third = [tx for tx in statement(api, "inc-1") if tx.order_id == "inc-c"][0]
    api.ledger.ReverseTransaction(
        ledger_pb2.ReverseTransactionRequest(transaction_id=third.transaction_id, idempotency_key=key(), reason="test"),
        metadata=api.metadata,
    )
    shown = member(api, "inc-1").rfm
    assert _stored(program, "inc-1") == (shown.frequency, shown.monetary) == (3, 8000)


def test_refresh_scores_members_by_quintile_and_fills_presets(api, program):
    for i in range(10):
        enroll(api, f"q-{i}")
        for n in range(i):
            earn(api, f"q-{i}", 1000 * (i + 1), order_id=f"q-{i}-{n}", **at(60 - 5 * i))
    report = segments.refresh_program(program.backend.db, program.program_id)
    assert report.members == 10
    scores = [member(api, f"q-{i}").rfm for i in range(10)]
    assert [s.frequency_score for s in scores] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [s.recency_score for s in scores] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert all(s.HasField("scores_time") for s in scores)
    assert "champions" in member(api, "q-9").segments and "new" in member(api, "q-0").segments


def _segment(api, ref: str) -> programs_pb2.Segment:
    return api.programs.GetSegment(programs_pb2.GetSegmentRequest(segment=ref), metadata=api.metadata).segment


def test_segments_api_presets_create_update_list_and_members(api, program):
    listed = api.programs.ListSegments(programs_pb2.ListSegmentsRequest(), metadata=api.metadata)
    assert sorted(s.name for s in listed.segments if s.preset) == ["at_risk", "champions", "lapsed", "loyal", "new"]
    big = programs_pb2.Segment(
        name="big_spenders", description="spent 100.00 or more",
        conditions=programs_pb2.SegmentConditions(spend=programs_pb2.IntRange(min=10000)),
    )
    created = api.programs.CreateSegment(programs_pb2.CreateSegmentRequest(segment=big), metadata=api.metadata).segment
    assert created.segment_id.startswith("seg_") and created.size == 0 and not created.HasField("compute_time")
    for i in range(7):
        enroll(api, f"s-{i}")
        earn(api, f"s-{i}", 4000 * i + 1, order_id=f"s-{i}-a")
    assert _segment(api, "big_spenders").size == 4  # each member's own Earn put them in at once
    segments.refresh_program(program.backend.db, program.program_id)
    shown = _segment(api, created.segment_id)
    assert shown.size == 4 and shown.HasField("compute_time")
    seen, token = [], ""
    while True:
        page = api.programs.ListSegmentMembers(
            programs_pb2.ListSegmentMembersRequest(segment="big_spenders", page_size=3, page_token=token),
            metadata=api.metadata,
        )
        seen += [m.member_id for m in page.members]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["s-3", "s-4", "s-5", "s-6"]
    assert list(member(api, "s-6").segments).count("big_spenders") == 1
    # A refund below the threshold takes the member out, with its event.
    refund(api, "s-3", "s-3-a", 5000)
    assert "big_spenders" not in member(api, "s-3").segments
    events = api.events.ListEvents(
        events_pb2.ListEventsRequest(types=["segment.entered", "segment.exited"], page_size=500), metadata=api.metadata
    ).events
    moved = [(e.type, e.member_id, e.WhichOneof("payload")) for e in events if e.member_id == "s-3"]
    assert ("segment.entered", "s-3", "segment_entered") in moved and moved[-1] == ("segment.exited", "s-3", "segment_exited")
    updated = api.programs.UpdateSegment(
        programs_pb2.UpdateSegmentRequest(
            segment=programs_pb2.Segment(segment_id=created.segment_id, description="changed"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=api.metadata,
    ).segment
    assert updated.description == "changed" and updated.conditions.spend.min == 10000
    with expect_error(grpc.StatusCode.ALREADY_EXISTS, "SEGMENT_NAME_TAKEN"):
        api.programs.CreateSegment(programs_pb2.CreateSegmentRequest(segment=big), metadata=api.metadata)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "SEGMENT_IS_PRESET"):
        api.programs.UpdateSegment(
            programs_pb2.UpdateSegmentRequest(
                segment=programs_pb2.Segment(segment_id="seg_lapsed", name="gone"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            ),
            metadata=api.metadata,
        )
    with expect_error(grpc.StatusCode.NOT_FOUND, "SEGMENT_NOT_FOUND"):
        _segment(api, "nope")
    bad = programs_pb2.Segment(name="bad", conditions=programs_pb2.SegmentConditions(recency_score=programs_pb2.IntRange(min=6)))
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"):
        api.programs.CreateSegment(programs_pb2.CreateSegmentRequest(segment=bad), metadata=api.metadata)


def test_roles_marketing_manages_segments_pos_sees_its_own(program):
    marketing, pos = program.api(Role.MARKETING), program.api(Role.POS)
    try:
        assert marketing.programs.ListSegments(programs_pb2.ListSegmentsRequest(), metadata=marketing.metadata).segments
        with expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"):
            pos.programs.ListSegments(programs_pb2.ListSegmentsRequest(), metadata=pos.metadata)
        enroll(pos, "p-1")
        assert member(pos, "p-1").rfm.window_days == 365
    finally:
        marketing.close()
        pos.close()


def test_win_back_campaign_doubles_points_for_lapsed_members_only(api, program):
    api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(max_backdate_days=400), update_mask=field_mask_pb2.FieldMask(paths=["max_backdate_days"])
        ),
        metadata=api.metadata,
    )
    for m in ("lapsed-1", "active-1"):
        enroll(api, m)
    earn(api, "lapsed-1", 1000, order_id="wb-old", **at(200))
    earn(api, "active-1", 1000, order_id="wb-recent", **at(3))
    assert member(api, "lapsed-1").segments == ["lapsed"]  # its own (backdated) order put it there
    start, end = at(1)["occur_time"], at(-30)["occur_time"]
    campaign = api.programs.CreateCampaign(
        programs_pb2.CreateCampaignRequest(
            campaign=programs_pb2.Campaign(
                name="Win-back", start_time=start, end_time=end, multiplier_bps=20000,
                conditions=programs_pb2.CampaignConditions(segments=["lapsed"]),
            )
        ),
        metadata=api.metadata,
    ).campaign
    assert list(campaign.conditions.segments) == ["seg_lapsed"]
    quote = api.ledger.QuoteEarn(
        ledger_pb2.QuoteEarnRequest(
            member_id="lapsed-1", order=common_pb2.Order(order_id="q", amount=5000, currency="USD", channel=common_pb2.CHANNEL_POS)
        ),
        metadata=api.metadata,
    ).transaction
    back = earn(api, "lapsed-1", 5000, order_id="wb-back").transaction
    other = earn(api, "active-1", 5000, order_id="wb-other").transaction
    assert back.points == quote.points == 100 and other.points == 50
    line = [b for b in back.breakdown if b.source == common_pb2.POINTS_SOURCE_CAMPAIGN][0]
    assert "Win-back" in line.description and "seg_lapsed" in line.description
    assert member(api, "lapsed-1").segments == []  # the order that won them back took them out
    with expect_error(grpc.StatusCode.NOT_FOUND, "SEGMENT_NOT_FOUND"):
        api.programs.CreateCampaign(
            programs_pb2.CreateCampaignRequest(
                campaign=programs_pb2.Campaign(
                    name="x", start_time=start, end_time=end, bonus_points=5,
                    conditions=programs_pb2.CampaignConditions(segments=["nope"]),
                )
            ),
            metadata=api.metadata,
        )


"""loyalty.v1.Events: the program's events, page by page (ListEvents) or followed (WatchEvents).

ListEvents is a unary call like the others. WatchEvents is served by ledger.api.unary_calls'
streaming driver: the guard authenticates, authorizes and rate-limits the call once (through
open_watch, on a worker), then the driver polls Watch.poll on a worker and sleeps on the
event loop between polls, so a waiting stream holds neither a database connection nor a
thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ledger.api import enums, responses
from ledger.api.event_feed import Feed, Feeds
from ledger.api.call_guard import current_caller
from ledger.domain.events import Event
from ledger.domain.kinds import Channel, TransactionKind
from ledger.domain.program import TierBasis
from ledger.service import events as event_service
from ledger.service.caller import Caller
from loyalty.v1 import events_pb2, events_pb2_grpc

if TYPE_CHECKING:  # the port's type only: the api layer imports nothing of the store
    from ledger.store.database import Database

# event type -> the payload's oneof member
_PAYLOAD_FIELDS = {
    "member.enrolled": "member_enrolled",
    "points.earned": "points_earned",
    "points.redeemed": "points_redeemed",
    "points.adjusted": "points_adjusted",
    "points.reversed": "points_reversed",
    "points.expired": "points_expired",
    "tier.changed": "tier_changed",
    "referral.rewarded": "referral_rewarded",
    "referral.reversed": "referral_reversed",
    "transfer.completed": "transfer_completed",
    "points.expiring": "points_expiring",
    "tier.downgrade_warning": "tier_downgrade_warning",
    "review.requested": "review_requested",
    "member.lapsed": "member_lapsed",
    "points.forfeited": "points_forfeited",
    "segment.entered": "segment_entered",
    "segment.exited": "segment_exited",
}


def event_message(event: Event) -> events_pb2.Event:
    message = events_pb2.Event(
        event_id=event.event_id,
        type=event.type,
        member_id=event.member_id,
        occur_time=responses.timestamp(event.occurred_at),
        create_time=responses.timestamp(event.created_at),
        transaction_id=event.transaction_id,
    )
    payload = event.payload
    field = _PAYLOAD_FIELDS[event.type]
    if event.type == "member.enrolled":
        message.member_enrolled.referral_code = payload["referral_code"]
    elif event.type == "tier.changed":
        message.tier_changed.CopyFrom(
            events_pb2.TierChanged(from_tier=payload["from_tier"], to_tier=payload["to_tier"], reason=payload["reason"])
        )
    elif event.type == "transfer.completed":
        message.transfer_completed.CopyFrom(
            events_pb2.TransferCompleted(
                to_member_id=payload["to_member_id"],
                points=payload["points"],
                from_posted_after=payload["from_posted_after"],
                to_posted_after=payload["to_posted_after"],
                reason=payload["reason"],
            )
        )
    elif event.type == "points.expiring":
        message.points_expiring.CopyFrom(
            events_pb2.PointsExpiring(
                points=payload["points"],
                expire_time=responses.timestamp(_instant(payload["expire_time"])),
                expire_date=payload["expire_date"],
                days_left=payload["days_left"],
            )
        )
    elif event.type == "tier.downgrade_warning":
        message.tier_downgrade_warning.CopyFrom(
            events_pb2.TierDowngradeWarning(
                tier=payload["tier"],
                review_time=responses.timestamp(_instant(payload["review_time"])),
                would_move_to=payload["would_move_to"],
                basis=enums.number(enums.TIER_BASES, TierBasis(payload["basis"])),
                qualifying_value=payload["qualifying_value"],
                threshold=payload["threshold"],
                needed=payload["needed"],
            )
        )
    elif event.type == "review.requested":
        message.review_requested.CopyFrom(
            events_pb2.ReviewRequested(
                order_id=payload["order_id"],
                transaction_id=payload["transaction_id"],
                order_time=responses.timestamp(_instant(payload["order_time"])),
                order_amount=payload["order_amount"],
                refunded_amount=payload["refunded_amount"],
                currency=payload["currency"],
                channel=enums.number(enums.CHANNELS, Channel(payload["channel"])),
                store_id=payload["store_id"],
            )
        )
    elif event.type == "member.lapsed":
        message.member_lapsed.CopyFrom(
            events_pb2.MemberLapsed(
                last_order_id=payload["last_order_id"],
                last_order_time=responses.timestamp(_instant(payload["last_order_time"])),
                days_without_order=payload["days_without_order"],
            )
        )
    elif event.type.startswith("segment."):
        getattr(message, field).CopyFrom(
            events_pb2.SegmentMembership(
                segment_id=payload["segment_id"], segment_name=payload["segment_name"], reason=payload["reason"]
            )
        )
    elif event.type.startswith("referral."):
        points = payload["points"]
        referrer = next((m for m in points if m != event.member_id), "")
        getattr(message, field).CopyFrom(
            events_pb2.ReferralPoints(
                referrer_member_id=referrer,
                referrer_points=points.get(referrer, 0),
                referee_points=points.get(event.member_id, 0),
                order_id=payload["order_id"],
                reverses_transaction_id=payload["reverses_transaction_id"],
                reason=payload["reason"],
            )
        )
    else:
        getattr(message, field).CopyFrom(
            events_pb2.PointsMovement(
                kind=enums.number(enums.KINDS, TransactionKind(payload["kind"])),
                points=payload["points"],
                posted_after=payload["balance_after"],
                order_id=payload["order_id"] or "",
                channel=enums.number(enums.CHANNELS, Channel(payload["channel"])),
                store_id=payload["store_id"],
                reason=payload["reason"],
                reverses_transaction_id=payload["reverses_transaction_id"] or "",
                activity_type=payload["activity_type"] or "",
            )
        )
    return message


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Watch:
    """One WatchEvents stream's cursor; poll() runs on a worker, one at a time. A stream that
    has caught up is served from its program's feed (ledger.api.event_feed), read once for
    all the program's streams; one further behind reads the database itself."""

    def __init__(self, db: Database, caller: Caller, after: int, types: tuple[str, ...], feed: Feed) -> None:
        self._db, self.caller, self._after, self._types, self._feed = db, caller, after, types, feed

    def poll(self) -> events_pb2.WatchEventsResponse | None:
        served = self._feed.after(self._after, self._types, event_service.MAX_PAGE)
        if served is not None:
            messages, self._after = served
            return events_pb2.WatchEventsResponse(events=messages) if messages else None
        polled = event_service.poll(self._db, self.caller, self._after, self._types)
        self._after = polled.cursor
        if not polled.events:
            return None
        return events_pb2.WatchEventsResponse(events=[event_message(e) for e in polled.events])


class EventsServicer(events_pb2_grpc.EventsServicer):
    # Served by the streaming driver (ledger.api.unary_calls): opened by open_watch.
    STREAMING = {"WatchEvents": "open_watch"}

    def __init__(self, db: Database) -> None:
        self._db = db
        self._feeds = Feeds(db, event_message)

    def ListEvents(self, request, context):
        page = event_service.list_events(
            self._db,
            current_caller(),
            request.after_event_id,
            request.page_token,
            request.page_size,
            list(request.types),
        )
        return events_pb2.ListEventsResponse(
            events=[event_message(e) for e in page.events], next_page_token=page.next_page_token
        )

    def WatchEvents(self, request, context):
        raise NotImplementedError("served by ledger.api.unary_calls' streaming driver through open_watch")

    def open_watch(self, request, context) -> Watch:
        caller = current_caller()
        types = event_service.check_types(list(request.types))
        after = event_service.start_position(self._db, caller, request.after_event_id)
        return Watch(self._db, caller, after, types, self._feeds.of(caller))

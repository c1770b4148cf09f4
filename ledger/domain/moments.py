"""The post-purchase moments: events the ledger tells because time passed, not because a call
changed something (DESIGN.md section 10). Pure rules: given the facts the due work loaded,
which moments are due now, each with the key that makes it happen once.

- points.expiring: some of a member's points expire within N days (default 30); one event per
  member and expiry date (UTC), with the points and the date.
- tier.downgrade_warning: the member's tier review is within N days (default 14) and, on what
  the member has done so far, it would move them down; with what is still needed to keep it.
- review.requested: N days (default 10) after an order, once per order, never for an order
  fully refunded (or reversed) by then.
- member.lapsed: N days (default 180) after a member's last order, with no order since.

N = 0 turns a moment off. A moment's key (its idempotency key) names what it is about, so
the due work may run as often as it likes, on any process, and after a change of leader:
the store claims a key at most once, in the transaction that writes the event.

A late moment is still told, within a catch-up horizon (LATE_HORIZON): after an outage of the
due work, or an order backfilled a few days late. Older ones are not: a history imported from
another system must not send a member a year of review requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from ledger.domain.program import MomentSettings, ProgramRules
from ledger.domain.tiers import QualifyingTotals, TierDefinition, highest_reached, rank

POINTS_EXPIRING = "points.expiring"
TIER_DOWNGRADE_WARNING = "tier.downgrade_warning"
REVIEW_REQUESTED = "review.requested"
MEMBER_LAPSED = "member.lapsed"

MAX_DAYS = 3650
LATE_HORIZON = timedelta(days=7)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Moment:
    """A due moment: its event's type, member and payload (JSON text), and the key it is told once under."""

    type: str
    member_id: str
    key: str
    occurred_at: datetime  # the moment the event speaks of (the expiry, the review, the order's day N)
    payload: str


def _utc_day(at: datetime) -> date:
    return at.astimezone(timezone.utc).date()


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_day(at: datetime) -> int:
    """Whole UTC days since 1970-01-01: an expiry day's number in its moment's key (the store
    can compute it from a stored instant with integer arithmetic, to skip lots already told)."""
    return (at - EPOCH) // DAY


def expiring_key(member_id: str, day_number: int) -> str:
    return f"{POINTS_EXPIRING}/{member_id}/{day_number}"


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- points.expiring


def expiring_window(settings: MomentSettings, now: datetime) -> tuple[datetime, datetime] | None:
    """Lots expiring in (start, end] are due a reminder now."""
    if settings.points_expiring_days <= 0:
        return None
    return now, now + timedelta(days=settings.points_expiring_days)


def points_expiring(member_id: str, lots: list[tuple[datetime, int]], now: datetime, settings: MomentSettings) -> list[Moment]:
    """One reminder per UTC date on which some of the member's points expire within the window.

    lots: (expires_at, points left) of the member's lots (any; those outside the window or with
    nothing left are ignored). For a program whose points expire after inactivity, the caller
    passes one pseudo-lot: the day all points would go, and how many."""
    window = expiring_window(settings, now)
    if window is None:
        return []
    start, end = window
    by_day: dict[date, tuple[datetime, int]] = {}
    for expires_at, points in lots:
        if points <= 0 or not start < expires_at <= end:
            continue
        day = _utc_day(expires_at)
        first, total = by_day.get(day, (expires_at, 0))
        by_day[day] = (min(first, expires_at), total + points)
    return [
        Moment(
            POINTS_EXPIRING,
            member_id,
            expiring_key(member_id, epoch_day(first)),
            first,
            json.dumps(
                {
                    "points": total,
                    "expire_time": _iso(first),
                    "expire_date": day.isoformat(),
                    "days_left": (day - _utc_day(now)).days,
                }
            ),
        )
        for day, (first, total) in sorted(by_day.items())
    ]


# ---------------------------------------------------------------- tier.downgrade_warning


def warning_window(settings: MomentSettings, now: datetime) -> tuple[datetime, datetime] | None:
    """Tier reviews in (start, end] are due a warning now."""
    if settings.tier_downgrade_warning_days <= 0:
        return None
    return now, now + timedelta(days=settings.tier_downgrade_warning_days)


def downgrade_warning(
    member_id: str,
    tier_name: str,
    review_at: datetime,
    tiers: list[TierDefinition],
    rules: ProgramRules,
    totals_at_review: list[QualifyingTotals],
    now: datetime,
    settings: MomentSettings,
) -> Moment | None:
    """A warning when the review of the member's tier, within the window, would move them down.

    totals_at_review: per tier (tiers' order), the member's qualifying totals over that tier's
    own window as they will stand at the review on what the member did so far. The review
    keeps the tier when its own window reaches its threshold (ledger.domain.tiers); the
    warning says how much of the tier's basis is still needed for that."""
    window = warning_window(settings, now)
    if window is None or not window[0] < review_at <= window[1]:
        return None
    held = rank(tiers, tier_name)
    if held < 0:
        return None  # a tier no longer defined: the review keeps nothing to warn about
    reached, _ = highest_reached(tiers, rules, totals_at_review)
    if rank(tiers, reached.name if reached else None) >= held:
        return None
    tier = tiers[held]
    value = totals_at_review[held].value(rules)
    return Moment(
        TIER_DOWNGRADE_WARNING,
        member_id,
        f"{TIER_DOWNGRADE_WARNING}/{member_id}/{_iso(review_at)}",
        review_at,
        json.dumps(
            {
                "tier": tier.name,
                "review_time": _iso(review_at),
                "would_move_to": reached.name if reached else "",
                "basis": rules.tier_basis.value,
                "qualifying_value": value,
                "threshold": tier.threshold,
                "needed": tier.threshold - value,
            }
        ),
    )


# ---------------------------------------------------------------- review.requested


@dataclass(frozen=True)
class OrderFacts:
    """An order as the review request needs it, with what has been refunded of it so far."""

    member_id: str
    order_id: str
    transaction_id: str
    occurred_at: datetime
    amount: int
    currency: str
    channel: str
    store_id: str
    refunded_amount: int
    reversed: bool  # the earn itself was reversed by support


def review_window(settings: MomentSettings, now: datetime) -> tuple[datetime, datetime] | None:
    """Orders placed in (start, end] are due a review request now."""
    if settings.review_request_days <= 0:
        return None
    end = now - timedelta(days=settings.review_request_days)
    return end - LATE_HORIZON, end


def fully_refunded(order: OrderFacts) -> bool:
    return order.reversed or (order.amount > 0 and order.refunded_amount >= order.amount)


def review_request(order: OrderFacts, now: datetime, settings: MomentSettings) -> Moment | None:
    window = review_window(settings, now)
    if window is None or not window[0] < order.occurred_at <= window[1] or fully_refunded(order):
        return None
    return Moment(
        REVIEW_REQUESTED,
        order.member_id,
        f"{REVIEW_REQUESTED}/{order.order_id}",
        order.occurred_at + timedelta(days=settings.review_request_days),
        json.dumps(
            {
                "order_id": order.order_id,
                "transaction_id": order.transaction_id,
                "order_time": _iso(order.occurred_at),
                "order_amount": order.amount,
                "refunded_amount": order.refunded_amount,
                "currency": order.currency,
                "channel": order.channel,
                "store_id": order.store_id,
            }
        ),
    )


# ---------------------------------------------------------------- member.lapsed


def lapse_window(settings: MomentSettings, now: datetime) -> tuple[datetime, datetime] | None:
    """Members whose last order was placed in (start, end] lapse now."""
    if settings.lapsed_days <= 0:
        return None
    end = now - timedelta(days=settings.lapsed_days)
    return end - LATE_HORIZON, end


def lapse(member_id: str, last_order_id: str, last_order_at: datetime, now: datetime, settings: MomentSettings) -> Moment | None:
    """member.lapsed for a member whose last order (the latest; none after it) is last_order_at."""
    window = lapse_window(settings, now)
    if window is None or not window[0] < last_order_at <= window[1]:
        return None
    lapsed_at = last_order_at + timedelta(days=settings.lapsed_days)
    return Moment(
        MEMBER_LAPSED,
        member_id,
        # Once per lapse: a member who orders again and lapses again is told again.
        f"{MEMBER_LAPSED}/{member_id}/{_iso(last_order_at)}",
        lapsed_at,
        json.dumps(
            {
                "last_order_id": last_order_id,
                "last_order_time": _iso(last_order_at),
                "days_without_order": (now - last_order_at) // DAY,
            }
        ),
    )

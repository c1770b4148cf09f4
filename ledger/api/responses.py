"""Domain results -> proto messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.api import enums
from ledger.service import clock
from ledger.domain.balance import Balance
from ledger.domain.holds import HoldFacts, HoldState
from ledger.domain.liability import LiabilityReport
from ledger.domain.records import TransactionView
from ledger.domain.referrals import ReferralState
from ledger.domain.segments import RANGE_FIELDS, RfmView
from ledger.domain.tiers import TierDefinition, TierState
from loyalty.v1 import common_pb2, ledger_pb2, programs_pb2
from ledger.service.campaigns import CampaignReport
from ledger.service.members import MemberSummary
from ledger.service.segments import SegmentReport
from ledger.service.programs import ProgramSettings
from ledger.service.referrals import ReferralView
from ledger.domain.rewards import RewardRecord


def timestamp(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant)
    return message


def balance(value: Balance) -> common_pb2.Balance:
    return common_pb2.Balance(
        posted=value.posted, pending=value.pending, held=value.held, available=value.available, expired=value.expired
    )


def transaction(view: TransactionView) -> common_pb2.Transaction:
    return common_pb2.Transaction(
        transaction_id=view.transaction_id,
        member_id=view.member_id,
        kind=enums.number(enums.KINDS, view.kind),
        points=view.points,
        breakdown=[
            common_pb2.PointsBreakdown(
                source=enums.number(enums.SOURCES, line.source),
                points=line.points,
                campaign_id=line.campaign_id,
                description=line.description,
            )
            for line in view.breakdown
        ],
        channel=enums.number(enums.CHANNELS, view.channel),
        store_id=view.store_id,
        order_id=view.order_id,
        reason=view.reason,
        idempotency_key=view.idempotency_key,
        reverses_transaction_id=view.reverses_transaction_id,
        occur_time=timestamp(view.occurred_at),
        create_time=timestamp(view.created_at),
        balance_after=view.balance_after,
        api_key_id=view.api_key_id,
        order_amount=view.order_amount,
        currency=view.currency,
        sequence=view.sequence,
        activity_type=view.activity_type,
        tier_from=view.tier_from,
        tier_to=view.tier_to,
    )


def member(summary: MemberSummary) -> ledger_pb2.Member:
    state = summary.state
    return ledger_pb2.Member(
        member_id=state.member_id,
        balance=balance(summary.balance),
        referral_code=state.referral_code,
        status=enums.number(enums.MEMBER_STATUSES, state.status),
        enroll_time=timestamp(state.enrolled_at),
        expiring_points=[
            ledger_pb2.ExpiringPoints(points=points, expire_time=timestamp(at)) for at, points in summary.expiring
        ],
        pending_points=[
            ledger_pb2.PendingPoints(points=points, available_time=timestamp(at)) for at, points in summary.pending
        ],
        currency=summary.rules.currency if summary.rules else "",
        tier_basis=(
            enums.number(enums.TIER_BASES, summary.rules.tier_basis) if summary.rules else programs_pb2.TIER_BASIS_UNSPECIFIED
        ),
        tier=_member_tier(summary.tier.state) if summary.tier.state else None,
        profile=ledger_pb2.MemberProfile(
            email=summary.profile.email,
            name=summary.profile.name,
            birth_date=summary.profile.birth_date,
            locale=summary.profile.locale,
            marketing_consent=summary.profile.marketing_consent,
            marketing_consent_time=(
                timestamp(summary.profile.marketing_consent_at) if summary.profile.marketing_consent_at else None
            ),
        ),
        close_time=timestamp(state.closed_at) if state.closed_at else None,
        erase_time=timestamp(state.erased_at) if state.erased_at else None,
        tier_progress=(
            ledger_pb2.TierProgress(
                next_tier_name=summary.tier.progress.next_tier,
                qualifying_value=summary.tier.progress.qualifying_value,
                remaining=summary.tier.progress.remaining,
            )
            if summary.tier.progress
            else None
        ),
        rfm=_rfm(summary.rfm) if summary.rfm else None,
        segments=list(summary.rfm.segments) if summary.rfm else [],
    )


def _rfm(view: RfmView) -> ledger_pb2.MemberRfm:
    figures, scores = view.figures, view.profile.scores
    message = ledger_pb2.MemberRfm(
        recency_days=view.profile.recency_days if view.profile.recency_days is not None else -1,
        frequency=figures.orders,
        monetary=figures.spend,
        recency_score=scores.recency,
        frequency_score=scores.frequency,
        monetary_score=scores.monetary,
        window_days=view.window_days,
    )
    last = view.last_order_time
    if last is not None:
        message.last_order_time.CopyFrom(timestamp(last))
    if view.cuts.computed_at is not None:
        message.scores_time.CopyFrom(timestamp(view.cuts.computed_at))
    return message


def _member_tier(state: TierState) -> ledger_pb2.MemberTier:
    tier = ledger_pb2.MemberTier(name=state.name, earn_multiplier_bps=state.multiplier_bps)
    if state.reached_at.year > 1970:
        tier.reach_time.CopyFrom(timestamp(state.reached_at))
    if state.held_until.year < 9999:
        tier.period_end_time.CopyFrom(timestamp(state.held_until))
    return tier


def program(settings: ProgramSettings) -> programs_pb2.Program:
    rules = settings.rules
    return programs_pb2.Program(
        program_id=rules.program_id,
        name=rules.name,
        currency=rules.currency,
        earn_rate=programs_pb2.EarnRate(points=rules.earn_rate.points, per_amount=rules.earn_rate.per_amount),
        rounding_mode=enums.number(enums.ROUNDINGS, rules.rounding),
        pending_days=rules.pending_days,
        expiry_mode=enums.number(enums.EXPIRY_MODES, rules.expiry_mode),
        expiry_days=rules.expiry_days,
        negative_balance_policy=enums.number(enums.NEGATIVE_POLICIES, rules.negative_balance_policy),
        hold_ttl_seconds=rules.hold_ttl_seconds,
        max_backdate_days=rules.max_backdate_days,
        event_retention_days=rules.event_retention_days,
        rfm_window_days=rules.rfm_window_days,
        create_time=timestamp(settings.created_at),
        update_time=timestamp(settings.updated_at),
        min_order_amount=rules.min_order_amount,
        channel_earn_rates=[
            programs_pb2.ChannelEarnRate(
                channel=enums.number(enums.CHANNELS, channel), rate=programs_pb2.EarnRate(points=r.points, per_amount=r.per_amount)
            )
            for channel, r in rules.channel_rates
        ],
        earn_rate_rules=[
            programs_pb2.EarnRateRule(
                sku=rule.sku,
                category=rule.category,
                rate=programs_pb2.EarnRate(points=rule.rate.points, per_amount=rule.rate.per_amount),
                excluded=rule.excluded,
            )
            for rule in rules.rate_rules
        ],
        activity_rules=[
            programs_pb2.ActivityRule(
                activity_type=a.activity_type, points=a.points, max_per_period=a.max_per_period, period_days=a.period_days,
                allowed_roles=[enums.number(enums.ROLES, role) for role in a.roles],
            )
            for a in rules.activity_rules
        ],
        tier_basis=enums.number(enums.TIER_BASES, rules.tier_basis),
        tier_window=enums.number(enums.TIER_WINDOWS, rules.tier_window),
        tier_period_days=rules.tier_period_days,
        tier_grace_days=rules.tier_grace_days,
        referral=programs_pb2.ReferralRules(**vars(rules.referral)),
        transfer_rules=programs_pb2.TransferRules(
            disabled=not rules.transfer.enabled,
            max_points_per_transfer=rules.transfer.max_points_per_transfer,
            max_points_per_month=rules.transfer.max_points_per_month,
            pos_allowed=rules.transfer.pos_allowed,
        ),
        moments=programs_pb2.PostPurchaseMoments(**rules.moments.to_json()),
        close_policy=enums.number(enums.CLOSE_POLICIES, rules.close_policy),
        point_value=programs_pb2.PointValue(
            minor_units=rules.point_value.minor_units, scale=rules.point_value.scale
        ),
    )


def tier(definition: TierDefinition) -> programs_pb2.Tier:
    return programs_pb2.Tier(
        name=definition.name,
        threshold=definition.threshold,
        earn_multiplier_bps=definition.multiplier_bps,
        qualification_days=definition.qualification_days,
    )


def campaign(report: CampaignReport) -> programs_pb2.Campaign:
    rule = report.record.rule
    c = rule.conditions
    return programs_pb2.Campaign(
        campaign_id=rule.campaign_id,
        name=rule.name,
        start_time=timestamp(rule.start),
        end_time=timestamp(rule.end),
        time_zone=report.record.time_zone,
        # The oneof `effect`: a stored campaign has exactly one of them (validated on the way in).
        **({"multiplier_bps": rule.multiplier_bps} if rule.multiplier_bps else {"bonus_points": rule.bonus_points}),
        conditions=programs_pb2.CampaignConditions(
            channels=[enums.number(enums.CHANNELS, ch) for ch in c.channels],
            tiers=list(c.tiers),
            skus=list(c.skus),
            categories=list(c.categories),
            min_order_amount=c.min_order_amount,
            activity_type=c.activity_type,
            segments=list(c.segments),
        ),
        stacking_mode=enums.number(enums.STACKING_MODES, rule.stacking),
        priority=rule.priority,
        per_member_cap=rule.per_member_cap,
        budget=rule.budget,
        state=enums.number(enums.CAMPAIGN_STATUSES, rule.status_at(clock.now())),
        points_awarded=report.points_awarded,
        budget_remaining=report.budget_remaining,
        create_time=timestamp(report.record.created_at),
        update_time=timestamp(report.record.updated_at),
        members_awarded=report.members_awarded,
    )


def reward(record: RewardRecord) -> programs_pb2.Reward:
    message = programs_pb2.Reward(
        reward_id=record.reward_id,
        name=record.name,
        points_price=record.points_price,
        stock=record.stock or 0,
        unlimited_stock=record.stock is None,
        redeemed=record.redeemed,
    )
    if record.start:
        message.start_time.CopyFrom(timestamp(record.start))
    if record.end:
        message.end_time.CopyFrom(timestamp(record.end))
    return message


HOLD_STATES = {
    HoldState.OPEN: ledger_pb2.Hold.STATE_OPEN,
    HoldState.CAPTURED: ledger_pb2.Hold.STATE_CAPTURED,
    HoldState.VOIDED: ledger_pb2.Hold.STATE_VOIDED,
    HoldState.LAPSED: ledger_pb2.Hold.STATE_LAPSED,
}


def hold(facts: HoldFacts) -> ledger_pb2.Hold:
    return ledger_pb2.Hold(
        hold_id=facts.hold_id,
        member_id=facts.member_id,
        points=facts.points,
        expire_time=timestamp(facts.expires_at),
        state=HOLD_STATES[facts.state],
        order_id=facts.order_id,
        captured_points=facts.captured_points,
        create_time=timestamp(facts.created_at),
    )


REFERRAL_STATES = {
    ReferralState.ATTRIBUTED: ledger_pb2.Referral.STATE_ATTRIBUTED,
    ReferralState.QUALIFIED: ledger_pb2.Referral.STATE_QUALIFIED,
    ReferralState.REWARDED: ledger_pb2.Referral.STATE_REWARDED,
    ReferralState.REVERSED: ledger_pb2.Referral.STATE_REVERSED,
    ReferralState.NOT_REWARDED: ledger_pb2.Referral.STATE_NOT_REWARDED,
}


def referral(view: ReferralView) -> ledger_pb2.Referral:
    r = view.record
    message = ledger_pb2.Referral(
        referee_member_id=r.referee_id,
        state=REFERRAL_STATES[view.state],
        attribute_time=timestamp(r.attributed_at),
        qualifying_order_id=r.qualifying_order_id,
        referrer_points=r.referrer_points,
        referee_points=r.referee_points,
        decision=r.decision,
        reward_transaction_id=r.reward_transaction_id,
    )
    if r.matures_at:
        message.mature_time.CopyFrom(timestamp(r.matures_at))
    return message


def _int_range(r) -> programs_pb2.IntRange:
    message = programs_pb2.IntRange()
    if r.low is not None:
        message.min = r.low
    if r.high is not None:
        message.max = r.high
    return message


def segment(report: SegmentReport) -> programs_pb2.Segment:
    record = report.record
    conditions = record.segment.conditions
    message = programs_pb2.Segment(
        segment_id=record.segment.segment_id,
        name=record.segment.name,
        description=record.segment.description,
        conditions=programs_pb2.SegmentConditions(
            tiers=list(conditions.tiers),
            **{name: _int_range(getattr(conditions, name)) for name in RANGE_FIELDS},
        ),
        preset=record.segment.preset,
        size=report.size,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
    )
    if record.computed_at is not None:
        message.compute_time.CopyFrom(timestamp(record.computed_at))
    return message

def liability(report: LiabilityReport) -> programs_pb2.LiabilityReport:
    money = report.money
    return programs_pb2.LiabilityReport(
        as_of_time=timestamp(report.as_of),
        currency=report.currency,
        point_value=programs_pb2.PointValue(minor_units=report.point_value.minor_units, scale=report.point_value.scale),
        posted_points=report.posted,
        negative_points=report.negative,
        outstanding_points=report.outstanding,
        outstanding_value=money(report.outstanding),
        available_points=report.available,
        available_value=money(report.available),
        pending_points=report.pending,
        pending_value=money(report.pending),
        held_points=report.held,
        held_value=money(report.held),
        expired_unwritten_points=report.expired_unwritten,
        expiring=[programs_pb2.ExpiringWithin(days=d, points=p, value=money(p)) for d, p in report.expiring],
        months=[
            programs_pb2.LiabilityMonth(
                month=m.month,
                issued_base=m.issued["BASE"],
                issued_tier_bonus=m.issued["TIER_BONUS"],
                issued_campaign=m.issued["CAMPAIGN"],
                issued_activity=m.issued["ACTIVITY"],
                issued_referral=m.issued["REFERRAL"],
                issued_adjustment=m.issued["ADJUSTMENT"],
                issued_total=m.issued_total,
                redeemed=m.redeemed,
                expired=m.expired,
                forfeited=m.forfeited,
                reversed=m.reversed,
                transferred=m.transferred,
            )
            for m in report.months
        ],
        cohorts=[programs_pb2.BreakageCohort(**vars(c)) for c in report.cohorts],
    )

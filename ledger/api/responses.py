"""Domain results -> proto messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.api import enums
from ledger.domain.balance import Balance
from ledger.domain.holds import HoldFacts, HoldState
from ledger.domain.records import TransactionView
from ledger.service.members import MemberSummary
from ledger.gen.loyalty.v1 import common_pb2, ledger_pb2, programs_pb2
from ledger.service.programs import ProgramSettings


def timestamp(instant: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(instant)
    return message


def balance(value: Balance) -> common_pb2.Balance:
    return common_pb2.Balance(posted=value.posted, pending=value.pending, held=value.held, available=value.available)


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
        occurred_at=timestamp(view.occurred_at),
        created_at=timestamp(view.created_at),
        balance_after=view.balance_after,
        api_key_id=view.api_key_id,
        order_amount=view.order_amount,
        currency=view.currency,
        sequence=view.sequence,
    )


def member(summary: MemberSummary) -> ledger_pb2.Member:
    state = summary.state
    return ledger_pb2.Member(
        member_id=state.member_id,
        balance=balance(summary.balance),
        referral_code=state.referral_code,
        status=enums.number(enums.MEMBER_STATUSES, state.status),
        enrolled_at=timestamp(state.enrolled_at),
        expiring_points=[
            ledger_pb2.ExpiringPoints(points=points, expires_at=timestamp(at)) for at, points in summary.expiring
        ],
    )


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
        created_at=timestamp(settings.created_at),
        updated_at=timestamp(settings.updated_at),
    )


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
        expires_at=timestamp(facts.expires_at),
        state=HOLD_STATES[facts.state],
        order_id=facts.order_id,
        captured_points=facts.captured_points,
        created_at=timestamp(facts.created_at),
    )

"""Use case: a member did something the program rewards (a review, an app install, ...).

Only keys of a role the activity's rule lists may record it (domain/program.py
check_activity_role): a storefront key, by default, may not mint points this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.store.database import Database, Transaction

from ledger.domain import credentials
from ledger.domain.earning import check_order_time, decide_activity
from ledger.domain.kinds import Channel, TransactionKind
from ledger.domain.lots import lot_dates
from ledger.domain.program import check_activity_role
from ledger.domain.records import MemberState, NewTransaction, TransactionResult
from ledger.service import clock, earn_context, expiry, idempotent, lookups, lot_postings
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.service.posting import post
from ledger.store import transactions


@dataclass(frozen=True)
class ActivityCommand:
    member_id: str
    activity_type: str
    occurred_at: datetime
    channel: Channel


def record_activity(db: Database, caller: Caller, mutation: Mutation, command: ActivityCommand) -> TransactionResult:
    def apply(conn: Transaction, member: MemberState) -> TransactionResult:
        lookups.require_active(member)
        context = earn_context.load(conn, caller.program_id, member.member_id, command.occurred_at, lock_budgets=True)
        check_order_time(command.occurred_at, clock.now(), context.rules, "occur_time")
        rule = context.rules.activity_rule(command.activity_type)
        if rule is not None:  # an unknown activity type is decide_activity's NOT_FOUND
            # Refused before anything is counted or written; PERMISSION_DENIED is not recorded.
            check_activity_role(
                command.activity_type, caller.role, rule, context.current.activity_rule(command.activity_type)
            )
        done = 0
        if rule is not None and rule.max_per_period:
            since = command.occurred_at - timedelta(days=rule.period_days)
            done = transactions.activity_count(conn, caller.program_id, member.member_id, command.activity_type, since)
        decision = decide_activity(
            command.activity_type, rule, done, command.occurred_at, context.tier, context.campaigns, context.counters
        )
        available_at, expires_at = lot_dates(command.occurred_at, context.rules, pending=False)
        now = clock.now()
        # The activity makes the member active again: what expired for inactivity goes first.
        member = expiry.write_off_if_inactive(conn, caller.program_id, member, context.rules, now)
        tx = NewTransaction(
            transaction_id=credentials.new_id("tx"),
            member_id=member.member_id,
            kind=TransactionKind.ACTIVITY,
            points=decision.points,
            breakdown=decision.breakdown,
            channel=command.channel,
            idempotency_key=mutation.idempotency_key,
            api_key_id=caller.key_id,
            occurred_at=command.occurred_at,
            created_at=now,
            activity_type=command.activity_type,
            reason=f"activity {command.activity_type}",
            postings=(
                lot_postings.credit(member.member_id, decision.points, member.balance.posted, available_at, expires_at),
            ),
        )
        result = post(conn, caller.program_id, member, tx)
        earn_context.record_awards(conn, caller.program_id, member.member_id, context, decision.awards)
        return result

    return idempotent.execute(
        db,
        caller,
        mutation,
        lock=lambda conn: lookups.member(conn, caller.program_id, command.member_id, lock=True),
        apply=apply,
        decode=TransactionResult.from_json,
    )

"""Use cases around tiers: configure them, read a member's tier and progress, move members
up after a qualifying order, and review tiers at the end of their period.

Tier changes are written as TIER_CHANGE transactions (0 points), so a member's
statement shows when and why their tier changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from ledger.store.database import Database, Transaction

from ledger.domain import credentials
from ledger.domain.earning import BreakdownLine
from ledger.domain.kinds import Channel, PointsSource, TransactionKind
from ledger.domain.program import ProgramRules
from ledger.domain.records import MemberState, NewTransaction, Posting
from ledger.domain.tiers import (
    QualifyingTotals,
    TierChange,
    TierDefinition,
    TierProgress,
    TierState,
    carried_over,
    change_after_order,
    highest_reached,
    period_end_review,
    progress,
    qualified_tier,
    rank,
    validate_tiers,
    window_start,
)
from ledger.service import clock, idempotent, lookups
from ledger.store import unit_of_work
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.store import idempotency, ledger_writes, members, programs
from ledger.store import tiers as tier_store

BEGINNING = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class MemberTierView:
    state: TierState | None
    progress: TierProgress | None


@dataclass(frozen=True)
class SavedTiers:
    """What SetTiers answers: the tier list as saved, lowest first."""

    tiers: list[TierDefinition]

    def to_json(self) -> dict:
        return {"tiers": [asdict(tier) for tier in self.tiers]}

    @classmethod
    def from_json(cls, data: dict) -> SavedTiers:
        return cls([TierDefinition(**tier) for tier in data["tiers"]])


def set_tiers(
    db: Database, caller: Caller, definitions: list[TierDefinition], mutation: Mutation | None = None
) -> list[TierDefinition]:
    """Replaces the tier list. Members keep the tier they hold until its period ends.
    mutation: the request under its request_id (AIP-155): a retry answers the first response
    and replaces nothing; None replaces the list on every call."""
    ordered = validate_tiers(definitions)

    def apply(conn: Transaction, _rules: object) -> SavedTiers:
        tier_store.replace_definitions(conn, caller.program_id, ordered)
        return SavedTiers(ordered)

    saved = idempotent.execute(
        db,
        caller,
        mutation,
        lock=lambda conn: lookups.program_rules(conn, caller.program_id),
        apply=apply,
        decode=SavedTiers.from_json,
    )
    return saved.tiers


def list_tiers(db: Database, caller: Caller) -> list[TierDefinition]:
    return unit_of_work.run(db, lambda conn: tier_store.definitions(conn, caller.program_id), read_only=True)


def qualifying_value(
    conn: Transaction, program_id: str, member_id: str, rules: ProgramRules, tier: TierDefinition | None, at: datetime
) -> int:
    totals = tier_store.qualifying_totals(conn, program_id, member_id, window_start(rules, tier, at), at)
    return QualifyingTotals(*totals).value(rules)


def current_tier(conn: Transaction, program_id: str, member_id: str, definitions: list[TierDefinition]) -> TierState | None:
    """The member's held tier, or the entry tier (threshold 0) before they ever qualified."""
    held = tier_store.state(conn, program_id, member_id)
    if held is not None:
        return held if held.name else None
    entry = qualified_tier(definitions, 0)
    if entry is None:
        return None
    return TierState(entry.name, entry.multiplier_bps, BEGINNING, datetime.max.replace(tzinfo=timezone.utc))


def qualifying_windows(
    conn: Transaction, program_id: str, member_id: str, rules: ProgramRules, definitions: list[TierDefinition],
    instants: tuple[datetime, ...],
) -> dict[datetime, list[QualifyingTotals]]:
    """The member's qualifying totals over each tier's window, ending at each instant."""
    return {
        until: [
            QualifyingTotals(
                *tier_store.qualifying_totals(conn, program_id, member_id, window_start(rules, tier, until), until)
            )
            for tier in definitions
        ]
        for until in dict.fromkeys(instants)  # once each, in order
    }


def write_change(conn: Transaction, caller_key_id: str, program_id: str, member: MemberState, change: TierChange, at: datetime) -> None:
    """Writes a tier change, reached at `at`: its TIER_CHANGE transaction and the member's new tier."""
    old, new, why = change.old, change.new, change.why
    now = clock.now()
    transaction_id = credentials.new_id("tx")
    tx = NewTransaction(
        transaction_id=transaction_id,
        member_id=member.member_id,
        kind=TransactionKind.TIER_CHANGE,
        points=0,
        breakdown=(BreakdownLine(PointsSource.LEDGER_OPERATION, 0, why),),
        channel=Channel.OTHER,
        idempotency_key=credentials.system_key("tier", transaction_id),
        api_key_id=caller_key_id,
        occurred_at=at,
        created_at=now,
        reason=f"tier {old or '(none)'} -> {new.name or '(none)'}: {why}",
        tier_from=old,
        tier_to=new.name,
        postings=(Posting(member.member_id, 0),),
    )
    ledger_writes.append(conn, program_id, tx)
    idempotency.claim_many(conn, [(program_id, tx.idempotency_key, "TierChange", transaction_id, {"tier": new.name})], now)
    tier_store.save_state(conn, program_id, member.member_id, new)


def upgrade_after_order(
    conn: Transaction, caller: Caller, member: MemberState, rules: ProgramRules, at: datetime,
    measured_at: datetime | None = None, definitions: list[TierDefinition] | None = None,
) -> None:
    """After qualifying activity already recorded (a referral reward's): load the member's
    tier and qualifying totals, let the domain decide the upgrade, write it.

    at: the activity's time (the tier is reached then); measured_at: the end of the window the
    qualifying value is also summed over (now, so a backdated order synced late counts with newer ones).
    """
    if definitions is None:
        definitions = tier_store.definitions(conn, caller.program_id)
    if not definitions:
        return
    state = current_tier(conn, caller.program_id, member.member_id, definitions)
    instants = (at,) if measured_at is None else (at, measured_at)
    windows = qualifying_windows(conn, caller.program_id, member.member_id, rules, definitions, instants)
    change = change_after_order(definitions, rules, state, windows, at)
    if change is not None:
        write_change(conn, caller.key_id, caller.program_id, member, change, at)


@dataclass(frozen=True)
class CarriedTier:
    """What carrying a tier over answers: the tier the member holds afterwards."""

    tier: str

    def to_json(self) -> dict:
        return {"tier": self.tier}

    @classmethod
    def from_json(cls, data: dict) -> CarriedTier:
        return cls(data["tier"])


def carry_over(db: Database, caller: Caller, mutation: Mutation, member_id: str, name: str) -> CarriedTier:
    """A tier brought from another loyalty system (`loyalty-ledger import members`), written as a
    TIER_CHANGE transaction; exactly once under the mutation's key (a resumed import does not
    undo an upgrade earned since). Refuses a name that is not one of the program's tiers."""

    def apply(conn: Transaction, member: MemberState) -> CarriedTier:
        lookups.require_active(member)
        definitions = tier_store.definitions(conn, caller.program_id)
        rules = lookups.program_rules(conn, caller.program_id)
        state = current_tier(conn, caller.program_id, member_id, definitions)
        now = clock.now()
        change = carried_over(definitions, rules, state, name, now)
        if change is None:
            return CarriedTier(state.name if state else "")
        write_change(conn, caller.key_id, caller.program_id, member, change, now)
        return CarriedTier(change.new.name)

    return idempotent.execute(
        db, caller, mutation,
        lock=lambda conn: lookups.member(conn, caller.program_id, member_id, lock=True),
        apply=apply, decode=CarriedTier.from_json, member_id=member_id,
    )


def member_tier(
    conn: Transaction, program_id: str, member_id: str, now: datetime, rules: ProgramRules | None = None
) -> MemberTierView:
    """The member's tier and progress; `rules`, the program's, when the caller read them already."""
    definitions = tier_store.definitions(conn, program_id)
    if not definitions:
        return MemberTierView(None, None)
    rules = rules or lookups.program_rules(conn, program_id)
    state = current_tier(conn, program_id, member_id, definitions)
    next_index = rank(definitions, state.name if state else None) + 1
    next_tier = definitions[next_index] if next_index < len(definitions) else None
    value = qualifying_value(conn, program_id, member_id, rules, next_tier, now)
    return MemberTierView(state, progress(definitions, state, value))


def review_due_tiers(db: Database, now: datetime | None = None, batch: int = 500) -> int:
    """End-of-period reviews (the daily job): keep, or move down to what the period's activity earns."""
    now = now or clock.now()
    changed = 0
    after: tuple[str, str] | None = None
    while True:
        due = unit_of_work.run(db, lambda conn: tier_store.due_reviews(conn, now, after, batch), read_only=True)
        if not due:
            return changed
        for program_id, member_id in due:

            def work(conn: Transaction) -> int:
                member = members.get(conn, program_id, member_id, lock=True)
                rules = programs.get(conn, program_id)
                definitions = tier_store.definitions(conn, program_id)
                state = tier_store.state(conn, program_id, member_id)
                if member is None or rules is None or state is None:
                    return 0
                # Activity during the grace days counts: the review happens at its end.
                reviewed_at = state.held_until + timedelta(days=rules.tier_grace_days)
                windows = qualifying_windows(conn, program_id, member_id, rules, definitions, (reviewed_at,))
                target, value = highest_reached(definitions, rules, windows[reviewed_at])
                reached = target.threshold if target is not None else min(value, -1)
                new = period_end_review(state, definitions, reached, now, rules)
                if new is None:
                    return 0
                if new.name == state.name:
                    tier_store.save_state(conn, program_id, member_id, new)
                    return 0
                write_change(
                    conn, "system:tiers", program_id, member,
                    TierChange(state.name, new, f"end of tier period: qualifying value {value}"), now,
                )
                return 1

            changed += unit_of_work.run(db, work)
        after = due[-1]
        if len(due) < batch:
            return changed


"""Use cases: enroll a member, look a member up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.store.database import Database

from ledger.domain import credentials, errors
from ledger.domain.balance import Balance
from ledger.domain.profiles import Profile
from ledger.domain.program import ProgramRules
from ledger.domain.records import MemberState
from ledger.domain.segments import RfmView
from ledger.service import clock, keys, lookups, referrals, segments
from ledger.store import unit_of_work
from ledger.service.balances import live
from ledger.service.caller import Caller
from ledger.service.tiers import MemberTierView, member_tier
from ledger.store import lots, members, programs
from ledger.store import profiles as profile_store
from ledger.store import tiers as tier_store
from ledger.store import segments as segment_store
from ledger.store.instants import to_micros


@dataclass(frozen=True)
class Enrollment:
    member: "MemberSummary"
    created: bool


def enroll_member(
    db: Database,
    caller: Caller,
    member_id: str,
    referral_code: str = "",
    profile: Profile | None = None,
    enrolled_at: datetime | None = None,
) -> Enrollment:
    """Idempotent on member_id. With a referral code, the member is attributed to the code's
    owner (refused for self-referral, an unknown code, a member with orders, or a second referrer).
    profile: the new member's personal fields (kept only when the member is created now)."""

    def work(conn) -> Enrollment:
        lookups.program_rules(conn, caller.program_id)
        for _ in range(5):
            code = credentials.new_referral_code()
            if members.member_by_code(conn, caller.program_id, code) is None:
                break
        else:
            raise errors.conflict_retry("could not draw an unused referral code; retry")
        created = members.insert_if_absent(conn, caller.program_id, member_id, code, enrolled_at or clock.now())
        if created and profile is not None and profile != Profile():
            profile_store.save(conn, caller.program_id, member_id, profile, clock.now())
        state = lookups.member(conn, caller.program_id, member_id, lock=bool(referral_code))
        if referral_code:
            referrals.attribute(conn, caller.program_id, state, referral_code, clock.now())
        return Enrollment(summarize(conn, caller.program_id, state, clock.now()), created)

    return unit_of_work.run(db, work)


@dataclass(frozen=True)
class MemberSummary:
    """What a storefront shows: the member, the live balance and the points expiring soon."""

    state: MemberState
    balance: Balance
    expiring: list[tuple[datetime, int]]
    tier: MemberTierView
    profile: Profile = Profile()
    pending: list[tuple[datetime, int]] = field(default_factory=list)
    rules: ProgramRules | None = None  # its currency and tier basis, for showing tier progress
    rfm: RfmView | None = None


EXPIRING_SOON = timedelta(days=30)


def summarize(conn, program_id: str, state: MemberState, now: datetime) -> MemberSummary:
    balance, inactive = live(conn, program_id, state, now)
    expiring = lots.expiring_between(conn, program_id, state.member_id, now, now + EXPIRING_SOON)
    if inactive:  # every point has expired already (Balance.expired), none is still to expire
        expiring = []
    profile = profile_store.get(conn, program_id, state.member_id)
    pending = [] if inactive else lots.pending_at(conn, program_id, state.member_id, now)
    rules = lookups.program_rules(conn, program_id)
    tier = member_tier(conn, program_id, state.member_id, now, rules)
    tier_name = tier.state.name if tier.state else ""
    rfm = segments.view(conn, program_id, state, now, tier=tier_name, available=balance.available)
    return MemberSummary(state, balance, expiring, tier, profile, pending, rules, rfm)


# What summarize reads, fetched in one round trip on PostgreSQL (with the key's revocation);
# a program with tiers adds one more, its members' qualifying totals over the tier's window.
_SUMMARY_READS = (
    members.BY_ID,
    lots.BALANCE_FACTS,
    lots.EXPIRING,
    lots.PENDING,
    tier_store.DEFINITIONS,
    tier_store.STATE,
    programs.BY_ID,
    profile_store.BY_MEMBER,
    segment_store.FIGURES,
    segment_store.MEMBERSHIP,
)


def get_member(db: Database, caller: Caller, member_id: str) -> MemberSummary:
    def work(conn) -> MemberSummary:
        now = clock.now()
        soon = {"start": to_micros(now), "end": to_micros(now + EXPIRING_SOON)}
        keys.read_ahead_live(conn, caller, member_id, _SUMMARY_READS, now=now, **soon)
        return summarize(conn, caller.program_id, lookups.member(conn, caller.program_id, member_id), now)

    return unit_of_work.run(db, work, read_only=True)

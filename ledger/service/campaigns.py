"""Use cases for marketing campaigns: create, change, pause, read with their report.

A campaign that could never award anything (end not after start, no effect, both
effects) is refused. Changing a campaign changes future earns only: written
transactions keep their breakdown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.store.database import Database, Transaction

from ledger.domain import credentials, errors
from ledger.domain.campaigns import BASE_BPS, CampaignRule, CampaignState, CampaignStatus
from ledger.domain.errors import FieldViolation
from ledger.service import clock, idempotent, lookups, page_tokens, segments
from ledger.store import unit_of_work
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.store import campaigns as store
from ledger.store.campaigns import CampaignRecord

MAX_MULTIPLIER_BPS = 100 * BASE_BPS
MAX_BONUS = 10**9


@dataclass(frozen=True)
class CampaignReport:
    record: CampaignRecord
    points_awarded: int
    members_awarded: int

    @property
    def budget_remaining(self) -> int:
        budget = self.record.rule.budget
        return max(budget - self.points_awarded, 0) if budget else 0

    def to_json(self) -> dict:
        return {
            "campaign": store.record_to_json(self.record),
            "points_awarded": self.points_awarded,
            "members_awarded": self.members_awarded,
        }

    @classmethod
    def from_json(cls, data: dict) -> CampaignReport:
        return cls(store.record_from_json(data["campaign"]), data["points_awarded"], data["members_awarded"])


def validate(rule: CampaignRule, time_zone: str) -> None:
    problems = []
    if not rule.name.strip() or len(rule.name) > 128:
        problems.append(FieldViolation("campaign.name", "is required (at most 128 characters)"))
    if rule.end <= rule.start:
        problems.append(FieldViolation("campaign.end_time", "must be after start_time"))
    has_multiplier, has_bonus = rule.multiplier_bps != 0, rule.bonus_points != 0
    if has_multiplier == has_bonus:
        problems.append(FieldViolation("campaign", "give exactly one effect: multiplier_bps or bonus_points"))
    if has_multiplier and not BASE_BPS < rule.multiplier_bps <= MAX_MULTIPLIER_BPS:
        problems.append(FieldViolation("campaign.multiplier_bps", "must be above 10000 (1x) and at most 1000000 (100x)"))
    if has_bonus and not 0 < rule.bonus_points <= MAX_BONUS:
        problems.append(FieldViolation("campaign.bonus_points", f"must be between 1 and {MAX_BONUS}"))
    if not 0 <= rule.per_member_cap <= 10**12:
        problems.append(FieldViolation("campaign.per_member_cap", "must be between 0 (no cap) and 10^12"))
    if not 0 <= rule.budget <= 10**15:
        problems.append(FieldViolation("campaign.budget", "must be between 0 (no budget) and 10^15"))
    if not -1000 <= rule.priority <= 1000:
        problems.append(FieldViolation("campaign.priority", "must be between -1000 and 1000"))
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(FieldViolation("campaign.time_zone", f"{time_zone[:64]!r} is not an IANA time zone"))
    if problems:
        raise errors.invalid(problems)


def _resolved(conn: Transaction, program_id: str, rule: CampaignRule) -> CampaignRule:
    """The rule with its segment conditions as segment ids (given by id or name)."""
    if not rule.conditions.segments:
        return rule
    ids = tuple(dict.fromkeys(segments.find(conn, program_id, s).segment.segment_id for s in rule.conditions.segments))
    return replace(rule, conditions=replace(rule.conditions, segments=ids))


def _report(conn: Transaction, program_id: str, record: CampaignRecord) -> CampaignReport:
    awarded, members = store.report(conn, program_id, record.rule.campaign_id)
    return CampaignReport(record, awarded, members)


def _existing(conn: Transaction, program_id: str, campaign_id: str, *, lock: bool = False) -> CampaignRecord:
    record = store.get(conn, program_id, campaign_id, lock=lock)
    if record is None:
        raise errors.not_found("CAMPAIGN_NOT_FOUND", f"campaign {campaign_id!r} does not exist in this program")
    return record


def create_campaign(
    db: Database, caller: Caller, rule: CampaignRule, time_zone: str, mutation: Mutation | None = None
) -> CampaignReport:
    """mutation: the request under its request_id (AIP-155): a retry answers the first response
    and creates nothing; None creates a campaign on every call."""
    rule = replace(rule, campaign_id=credentials.new_id("cmp"), state=CampaignState.ACTIVE)
    validate(rule, time_zone)

    def apply(conn: Transaction, _rules: object) -> CampaignReport:
        store.insert_campaign(conn, caller.program_id, _resolved(conn, caller.program_id, rule), time_zone, clock.now())
        return _report(conn, caller.program_id, _existing(conn, caller.program_id, rule.campaign_id))

    return idempotent.execute(
        db,
        caller,
        mutation,
        lock=lambda conn: lookups.program_rules(conn, caller.program_id),
        apply=apply,
        decode=CampaignReport.from_json,
    )


def update_campaign(db: Database, caller: Caller, campaign_id: str, changes: dict) -> CampaignReport:
    """changes maps CampaignRule field names (and "time_zone") to validated values."""

    def work(conn: Transaction) -> CampaignReport:
        current = _existing(conn, caller.program_id, campaign_id, lock=True)
        time_zone = changes.pop("time_zone", current.time_zone)
        updated = _resolved(conn, caller.program_id, replace(current.rule, **changes))
        validate(updated, time_zone)
        store.save(conn, caller.program_id, updated, time_zone, clock.now())
        return _report(conn, caller.program_id, _existing(conn, caller.program_id, campaign_id))

    return unit_of_work.run(db, work)


def pause_campaign(db: Database, caller: Caller, campaign_id: str) -> CampaignReport:
    return update_campaign(db, caller, campaign_id, {"state": CampaignState.PAUSED})


def get_campaign(db: Database, caller: Caller, campaign_id: str) -> CampaignReport:
    return unit_of_work.run(
        db,
        lambda conn: _report(conn, caller.program_id, _existing(conn, caller.program_id, campaign_id)),
        read_only=True,
    )


def list_campaigns(
    db: Database, caller: Caller, page_token: str, page_size: int, state: CampaignStatus | None
) -> tuple[list[CampaignReport], str]:
    """A page of the program's campaigns in id order and the next page's token (signed, bound to
    the program and the state filter; it holds the last campaign id served)."""
    pages = page_tokens.pages(db, "ListCampaigns", caller.program_id, state.value if state else "")
    after = pages.position(page_token)

    def work(conn: Transaction) -> tuple[list[CampaignReport], str]:
        found = store.page(conn, caller.program_id, after, page_size + 1, state, clock.now())
        page = [_report(conn, caller.program_id, r) for r in found[:page_size]]
        token = pages.token_after(page[-1].record.rule.campaign_id) if len(found) > page_size else ""
        return page, token

    return unit_of_work.run(db, work, read_only=True)

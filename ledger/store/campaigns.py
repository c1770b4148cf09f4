"""Campaign rows, their award counters (slotted) and per-member award totals."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger.domain.campaigns import (
    CampaignCounters,
    CampaignRule,
    CampaignState,
    CampaignStatus,
    Conditions,
    StackingMode,
)
from ledger.domain.kinds import Channel
from ledger.store import transaction_scoped
from ledger.store.postgres import write_behind
from ledger.store.instants import from_micros, to_micros
from ledger.store.programs import bump_config_version
from ledger.store.tables import campaign_counters, campaign_member_awards, campaigns

SLOTS = 16


@dataclass(frozen=True)
class CampaignRecord:
    rule: CampaignRule
    time_zone: str
    created_at: datetime
    updated_at: datetime


def _conditions_json(c: Conditions) -> str:
    return json.dumps(
        {
            "channels": [ch.value for ch in c.channels],
            "tiers": list(c.tiers),
            "skus": list(c.skus),
            "categories": list(c.categories),
            "min_order_amount": c.min_order_amount,
            "activity_type": c.activity_type,
            "segments": list(c.segments),
        },
        separators=(",", ":"),
    )


def _conditions(text: str) -> Conditions:
    d = json.loads(text)
    return Conditions(
        tuple(Channel(ch) for ch in d["channels"]),
        tuple(d["tiers"]),
        tuple(d["skus"]),
        tuple(d["categories"]),
        d["min_order_amount"],
        d["activity_type"],
        tuple(d.get("segments", ())),  # campaigns written before segments have none
    )


def _record(row) -> CampaignRecord:
    rule = CampaignRule(
        campaign_id=row.campaign_id,
        name=row.name,
        start=from_micros(row.start_at),
        end=from_micros(row.end_at),
        multiplier_bps=row.multiplier_bps,
        bonus_points=row.bonus_points,
        conditions=_conditions(row.conditions),
        stacking=StackingMode(row.stacking),
        priority=row.priority,
        per_member_cap=row.per_member_cap,
        budget=row.budget,
        state=CampaignState(row.state),
    )
    return CampaignRecord(rule, row.time_zone, from_micros(row.created_at), from_micros(row.updated_at))


def _columns(rule: CampaignRule, time_zone: str) -> dict:
    return dict(
        name=rule.name,
        start_at=to_micros(rule.start),
        end_at=to_micros(rule.end),
        time_zone=time_zone,
        multiplier_bps=rule.multiplier_bps,
        bonus_points=rule.bonus_points,
        conditions=_conditions_json(rule.conditions),
        stacking=rule.stacking.value,
        priority=rule.priority,
        per_member_cap=rule.per_member_cap,
        budget=rule.budget,
        state=rule.state.value,
    )


def record_to_json(record: CampaignRecord) -> dict:
    """A campaign as its row's columns, for a stored response (idempotency records)."""
    return dict(
        campaign_id=record.rule.campaign_id,
        created_at=to_micros(record.created_at),
        updated_at=to_micros(record.updated_at),
        **_columns(record.rule, record.time_zone),
    )


def record_from_json(data: dict) -> CampaignRecord:
    return _record(SimpleNamespace(**data))


def insert_campaign(conn: Connection, program_id: str, rule: CampaignRule, time_zone: str, now: datetime) -> None:
    conn.execute(
        insert(campaigns).values(
            program_id=program_id,
            campaign_id=rule.campaign_id,
            created_at=to_micros(now),
            updated_at=to_micros(now),
            **_columns(rule, time_zone),
        )
    )
    conn.execute(
        insert(campaign_counters),
        [dict(program_id=program_id, campaign_id=rule.campaign_id, slot=s, awarded=0) for s in range(SLOTS)],
    )
    bump_config_version(conn, program_id)


def save(conn: Connection, program_id: str, rule: CampaignRule, time_zone: str, now: datetime) -> None:
    conn.execute(
        update(campaigns)
        .where(campaigns.c.program_id == program_id, campaigns.c.campaign_id == rule.campaign_id)
        .values(updated_at=to_micros(now), **_columns(rule, time_zone))
    )
    bump_config_version(conn, program_id)


def get(conn: Connection, program_id: str, campaign_id: str, *, lock: bool = False) -> CampaignRecord | None:
    query = select(campaigns).where(campaigns.c.program_id == program_id, campaigns.c.campaign_id == campaign_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _record(row) if row else None


def page(
    conn: Connection, program_id: str, after: str | None, limit: int, status: CampaignStatus | None, now: datetime
):
    """A page of the program's campaigns in id order; status: only those in it at `now`
    (CampaignRule.status_at, as a condition on the stored state and the window)."""
    query = select(campaigns).where(campaigns.c.program_id == program_id)
    if after:
        query = query.where(campaigns.c.campaign_id > after)
    at = to_micros(now)
    if status is CampaignStatus.ENDED:
        query = query.where(campaigns.c.end_at <= at)
    elif status is CampaignStatus.PAUSED:
        query = query.where(campaigns.c.end_at > at, campaigns.c.state == CampaignState.PAUSED.value)
    elif status is CampaignStatus.SCHEDULED:
        query = query.where(campaigns.c.start_at > at, campaigns.c.state == CampaignState.ACTIVE.value)
    elif status is CampaignStatus.ACTIVE:
        query = query.where(
            campaigns.c.start_at <= at, campaigns.c.end_at > at, campaigns.c.state == CampaignState.ACTIVE.value
        )
    return [_record(r) for r in conn.execute(query.order_by(campaigns.c.campaign_id).limit(limit))]


def rules_ending_after(conn: Connection, program_id: str, cutoff: datetime) -> list[CampaignRule]:
    """Campaigns (any state) whose window ends after cutoff: all that can still apply to an order."""
    rows = conn.execute(
        select(campaigns).where(campaigns.c.program_id == program_id, campaigns.c.end_at > to_micros(cutoff))
    )
    return [_record(r).rule for r in rows]


def slot_for(rule: CampaignRule, member_id: str) -> int:
    return 0 if rule.budget > 0 else zlib.crc32(member_id.encode()) % SLOTS


def lock_budgets(conn: Connection, program_id: str, campaign_ids: list[str]) -> None:
    """Locks the budget counters (slot 0) of campaign_ids in campaign_id order, as counters_for
    takes them, in one statement: a batch of earns takes every lock its orders will want
    before any of them, so that two batches never take them in opposite orders."""
    if not campaign_ids:
        return
    key = campaign_counters.c.campaign_id
    conn.execute(
        select(key)
        .where(campaign_counters.c.program_id == program_id, key.in_(campaign_ids), campaign_counters.c.slot == 0)
        .order_by(key.collate("C") if conn.dialect.name == "postgresql" else key)  # Python's order, bytewise
        .with_for_update()
    ).all()


def counters_for(
    conn: Connection, program_id: str, member_id: str, rules: list[CampaignRule], *, lock: bool
) -> dict[str, CampaignCounters]:
    """Counters for deciding awards. With lock, a budgeted campaign's counter row is locked
    (campaign_id order) so concurrent earns can never overspend it; others need no lock."""
    counters: dict[str, CampaignCounters] = {}
    for rule in sorted(rules, key=lambda r: r.campaign_id):
        total = 0
        if rule.budget > 0:
            if lock:
                # Slot 0 is the budget's mutex; other slots hold what was awarded before a budget was set.
                conn.execute(
                    select(campaign_counters.c.awarded)
                    .where(
                        campaign_counters.c.program_id == program_id,
                        campaign_counters.c.campaign_id == rule.campaign_id,
                        campaign_counters.c.slot == 0,
                    )
                    .with_for_update()
                ).scalar_one()
            total = report(conn, program_id, rule.campaign_id)[0]
        member_awarded = 0
        if rule.per_member_cap > 0:
            member_awarded = conn.execute(
                select(campaign_member_awards.c.awarded).where(
                    campaign_member_awards.c.program_id == program_id,
                    campaign_member_awards.c.campaign_id == rule.campaign_id,
                    campaign_member_awards.c.member_id == member_id,
                )
            ).scalar() or 0
        counters[rule.campaign_id] = CampaignCounters(total, member_awarded)
    return counters


_add_to_counter = (
    update(campaign_counters)
    .where(
        campaign_counters.c.program_id == bindparam("p_program"),
        campaign_counters.c.campaign_id == bindparam("p_campaign"),
        campaign_counters.c.slot == bindparam("p_slot"),
    )
    .values(awarded=campaign_counters.c.awarded + bindparam("p_points"))
)


def _add_to_member_total(dialect):
    upsert = dialect.insert(campaign_member_awards)
    return upsert.on_conflict_do_update(
        index_elements=["program_id", "campaign_id", "member_id"],
        set_={"awarded": campaign_member_awards.c.awarded + upsert.excluded.awarded},
    )


_add_to_member_totals = {"postgresql": _add_to_member_total(postgresql), "sqlite": _add_to_member_total(sqlite)}


# A batch of earns in one transaction (imported orders) adds to each slot once, at its end.
_SUMMED = "campaign_counters.summed"


def sum_counters_until_flush(conn: Connection) -> None:
    """From now until flush_counters, awards of campaigns without a budget add to the slotted
    counters in memory. A batch of many members' earns would otherwise update the slots in its
    members' order, and two batches committing at once could each hold a slot the other waits
    for; summed, each batch updates each slot once, in key order, as its last writes. (A
    budget's single counter is locked by the earn's read, before any slot is written.)"""
    conn.info[_SUMMED] = {}


def flush_counters(conn: Connection) -> None:
    summed: dict[tuple[str, str, int], int] = conn.info.pop(_SUMMED, {})
    write_behind.execute(
        conn,
        _add_to_counter,
        [
            {"p_program": program_id, "p_campaign": campaign_id, "p_slot": slot, "p_points": points}
            for (program_id, campaign_id, slot), points in sorted(summed.items())
            if points
        ],
    )


def install(engine: Engine) -> None:
    """Nothing summed outlives its transaction (a batch rolled back and run again starts afresh)."""
    transaction_scoped.forget_at_transaction_end(engine, _SUMMED)


def add_awards(conn: Connection, program_id: str, member_id: str, awards: dict[str, tuple[CampaignRule, int]]) -> None:
    """Adds (or with negative points, gives back) awarded points to the counters."""
    summed = conn.info.get(_SUMMED)
    for campaign_id, (rule, points) in sorted(awards.items()):
        if points == 0:
            continue
        slot = slot_for(rule, member_id)
        # A budget's counter is read (locked) by every earn that may spend it: it is never summed.
        if summed is not None and rule.budget <= 0:
            summed[(program_id, campaign_id, slot)] = summed.get((program_id, campaign_id, slot), 0) + points
        else:
            write_behind.execute(
                conn, _add_to_counter, {"p_program": program_id, "p_campaign": campaign_id, "p_slot": slot, "p_points": points}
            )
        write_behind.execute(
            conn,
            _add_to_member_totals[conn.dialect.name],
            {"program_id": program_id, "campaign_id": campaign_id, "member_id": member_id, "awarded": points},
        )


def report(conn: Connection, program_id: str, campaign_id: str) -> tuple[int, int]:
    """(points awarded, members awarded)."""
    awarded = conn.execute(
        select(func.coalesce(func.sum(campaign_counters.c.awarded), 0)).where(
            campaign_counters.c.program_id == program_id, campaign_counters.c.campaign_id == campaign_id
        )
    ).scalar_one()
    members = conn.execute(
        select(func.count()).where(
            campaign_member_awards.c.program_id == program_id,
            campaign_member_awards.c.campaign_id == campaign_id,
            campaign_member_awards.c.awarded > 0,
        )
    ).scalar_one()
    return int(awarded), int(members)

"""Tier configuration, member tier snapshots and qualifying events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, insert, select, tuple_, update

from ledger.domain.tiers import TierDefinition, TierState
from ledger.store.postgres import prefetch, write_behind
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import member_tiers, qualifying_events, tiers


# Hot-path reads are built once: SQLAlchemy then finds them compiled without rebuilding them.
_definitions = select(tiers).where(tiers.c.program_id == bindparam("program_id")).order_by(tiers.c.position)


DEFINITIONS = prefetch.Read("tier_definitions", _definitions, ("program_id",), many=True)


def definitions(conn: Connection, program_id: str) -> list[TierDefinition]:
    """The program's tiers, lowest first."""
    rows = sorted(prefetch.read(conn, DEFINITIONS, {"program_id": program_id}), key=lambda row: row.position)
    return [TierDefinition(r.name, r.threshold, r.multiplier_bps, r.qualification_days) for r in rows]


def replace_definitions(conn: Connection, program_id: str, ordered: list[TierDefinition]) -> None:
    from ledger.store.programs import bump_config_version

    bump_config_version(conn, program_id)
    conn.execute(delete(tiers).where(tiers.c.program_id == program_id))
    if ordered:
        conn.execute(
            insert(tiers),
            [
                dict(
                    program_id=program_id,
                    position=i,
                    name=t.name,
                    threshold=t.threshold,
                    multiplier_bps=t.multiplier_bps,
                    qualification_days=t.qualification_days,
                )
                for i, t in enumerate(ordered)
            ],
        )


_state_of = select(member_tiers).where(
    member_tiers.c.program_id == bindparam("program_id"), member_tiers.c.member_id == bindparam("member_id")
)


STATE = prefetch.Read("tier_state", _state_of, ("program_id", "member_id"))


def state(conn: Connection, program_id: str, member_id: str) -> TierState | None:
    row = prefetch.read(conn, STATE, {"program_id": program_id, "member_id": member_id})
    if row is None:
        return None
    return TierState(row.tier_name, row.multiplier_bps, from_micros(row.reached_at), from_micros(row.held_until))


def save_state(conn: Connection, program_id: str, member_id: str, new: TierState) -> None:
    values = dict(
        tier_name=new.name,
        multiplier_bps=new.multiplier_bps,
        reached_at=to_micros(new.reached_at),
        held_until=to_micros(new.held_until),
    )
    updated = conn.execute(
        update(member_tiers)
        .where(member_tiers.c.program_id == program_id, member_tiers.c.member_id == member_id)
        .values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(insert(member_tiers).values(program_id=program_id, member_id=member_id, **values))


def due_reviews(conn: Connection, now: datetime, after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
    query = (
        select(member_tiers.c.program_id, member_tiers.c.member_id)
        .where(member_tiers.c.held_until <= to_micros(now))
        .order_by(member_tiers.c.program_id, member_tiers.c.member_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(member_tiers.c.program_id, member_tiers.c.member_id) > after)
    rows = conn.execute(query)
    return [(r.program_id, r.member_id) for r in rows]


_insert_qualifying = insert(qualifying_events)


def record_qualifying(
    conn: Connection, program_id: str, member_id: str, transaction_id: str, occurred_at: datetime, spend: int, points: int
) -> None:
    write_behind.execute(
        conn,
        _insert_qualifying,
        dict(
            program_id=program_id,
            member_id=member_id,
            transaction_id=transaction_id,
            occurred_at=to_micros(occurred_at),
            spend=spend,
            base_points=points,
        ),
    )


def qualifying_totals(
    conn: Connection, program_id: str, member_id: str, since: datetime, until: datetime
) -> tuple[int, int]:
    """(spend, base points) of events with since < occurred_at <= until."""
    q = qualifying_events
    row = conn.execute(
        select(func.coalesce(func.sum(q.c.spend), 0), func.coalesce(func.sum(q.c.base_points), 0)).where(
            q.c.program_id == program_id,
            q.c.member_id == member_id,
            q.c.occurred_at > to_micros(since),
            q.c.occurred_at <= to_micros(until),
        )
    ).one()
    return int(row[0]), int(row[1])


def qualifying_of_transaction(conn: Connection, program_id: str, member_id: str, transaction_id: str):
    q = qualifying_events
    return conn.execute(
        select(q.c.occurred_at, q.c.spend, q.c.base_points).where(
            q.c.program_id == program_id, q.c.member_id == member_id, q.c.transaction_id == transaction_id
        )
    ).first()

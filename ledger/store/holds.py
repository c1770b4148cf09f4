"""Hold rows and the member's cached count of held points that moves with them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from ledger.domain.holds import HoldFacts, HoldState
from ledger.domain.kinds import Channel
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import holds, members


def _facts(row) -> HoldFacts:
    return HoldFacts(
        hold_id=row.hold_id,
        member_id=row.member_id,
        points=row.points,
        state=HoldState(row.state),
        expires_at=from_micros(row.expires_at),
        order_id=row.order_id or "",
        captured_points=row.captured_points,
        created_at=from_micros(row.created_at),
    )


def get(conn: Connection, program_id: str, hold_id: str, *, lock: bool = False) -> HoldFacts | None:
    query = select(holds).where(holds.c.program_id == program_id, holds.c.hold_id == hold_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _facts(row) if row else None


def open_hold(
    conn: Connection,
    program_id: str,
    hold: HoldFacts,
    channel: Channel,
    store_id: str,
) -> None:
    conn.execute(
        insert(holds).values(
            program_id=program_id,
            hold_id=hold.hold_id,
            member_id=hold.member_id,
            points=hold.points,
            captured_points=0,
            state=HoldState.OPEN.value,
            expires_at=to_micros(hold.expires_at),
            order_id=hold.order_id or None,
            channel=channel.value,
            store_id=store_id,
            created_at=to_micros(hold.created_at),
        )
    )
    _move_held(conn, program_id, hold.member_id, hold.points)


def close(conn: Connection, program_id: str, hold: HoldFacts, state: HoldState, captured: int, now: datetime) -> None:
    """Closes an open hold (the caller holds the member and hold locks)."""
    conn.execute(
        update(holds)
        .where(holds.c.program_id == program_id, holds.c.hold_id == hold.hold_id, holds.c.state == HoldState.OPEN.value)
        .values(state=state.value, captured_points=captured, closed_at=to_micros(now))
    )
    _move_held(conn, program_id, hold.member_id, -hold.points)


def _move_held(conn: Connection, program_id: str, member_id: str, delta: int) -> None:
    conn.execute(
        update(members)
        .where(members.c.program_id == program_id, members.c.member_id == member_id)
        .values(held=members.c.held + delta)
    )


def due(conn: Connection, now: datetime, limit: int) -> list[tuple[str, str, str]]:
    """(program_id, member_id, hold_id) of open holds past expires_at, oldest first."""
    rows = conn.execute(
        select(holds.c.program_id, holds.c.member_id, holds.c.hold_id)
        .where(holds.c.state == HoldState.OPEN.value, holds.c.expires_at <= to_micros(now))
        .order_by(holds.c.expires_at)
        .limit(limit)
    ).all()
    return [(row.program_id, row.member_id, row.hold_id) for row in rows]

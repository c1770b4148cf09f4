"""Hold rows and the member's cached count of held points that moves with them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from ledger.domain.holds import HoldFacts, HoldState
from ledger.domain.kinds import Channel
from ledger.store.postgres import prefetch, write_behind
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


# The till's statements are built once, so SQLAlchemy finds them compiled; writes go
# through write_behind (nothing here reads them back).
_by_id = select(holds).where(holds.c.program_id == bindparam("program_id"), holds.c.hold_id == bindparam("hold_id"))
_by_id_locked = _by_id.with_for_update()
_insert_hold = insert(holds)
_close = (
    update(holds)
    .where(
        holds.c.program_id == bindparam("p_program"),
        holds.c.hold_id == bindparam("p_hold"),
        holds.c.state == HoldState.OPEN.value,
    )
    .values(state=bindparam("p_state"), captured_points=bindparam("p_captured"), closed_at=bindparam("p_now"))
)
_move_held_by = (
    update(members)
    .where(members.c.program_id == bindparam("p_program"), members.c.member_id == bindparam("p_member"))
    .values(held=members.c.held + bindparam("p_delta"))
)


# The locked hold as a read after its member's lock fetches it (members.lock_ahead). Every
# writer of a hold (capture, void, the lapsing job) locks the hold's member first, so with the
# member's lock held this lock is never waited for, and the prefetch's snapshot (taken once
# the member's lock is held) is the hold's latest state. Read alone, it waits as usual.
LOCKED = prefetch.Read("hold_locked", _by_id_locked, ("program_id", "hold_id"))


def get(conn: Connection, program_id: str, hold_id: str, *, lock: bool = False) -> HoldFacts | None:
    params = {"program_id": program_id, "hold_id": hold_id}
    row = prefetch.read(conn, LOCKED, params) if lock else conn.execute(_by_id, params).first()
    return _facts(row) if row else None


def open_hold(
    conn: Connection,
    program_id: str,
    hold: HoldFacts,
    channel: Channel,
    store_id: str,
) -> None:
    write_behind.execute(
        conn,
        _insert_hold,
        dict(
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
        ),
    )
    _move_held(conn, program_id, hold.member_id, hold.points)


def close(conn: Connection, program_id: str, hold: HoldFacts, state: HoldState, captured: int, now: datetime) -> None:
    """Closes an open hold (the caller holds the member and hold locks)."""
    write_behind.execute(
        conn,
        _close,
        {
            "p_program": program_id,
            "p_hold": hold.hold_id,
            "p_state": state.value,
            "p_captured": captured,
            "p_now": to_micros(now),
        },
    )
    _move_held(conn, program_id, hold.member_id, -hold.points)


def _move_held(conn: Connection, program_id: str, member_id: str, delta: int) -> None:
    write_behind.execute(conn, _move_held_by, {"p_program": program_id, "p_member": member_id, "p_delta": delta})


def due(conn: Connection, now: datetime, limit: int) -> list[tuple[str, str, str]]:
    """(program_id, member_id, hold_id) of open holds past expires_at, oldest first."""
    rows = conn.execute(
        select(holds.c.program_id, holds.c.member_id, holds.c.hold_id)
        .where(holds.c.state == HoldState.OPEN.value, holds.c.expires_at <= to_micros(now))
        .order_by(holds.c.expires_at)
        .limit(limit)
    ).all()
    return [(row.program_id, row.member_id, row.hold_id) for row in rows]

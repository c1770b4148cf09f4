"""Member rows: enrollment, reads and the row lock that serialises a member's writes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from ledger.domain.balance import Balance
from ledger.domain.records import MemberState, MemberStatus
from ledger.domain import events
from ledger.store import locked_heads, outbox
from ledger.store.postgres import prefetch, write_behind
from ledger.store.instants import from_micros, to_micros
from ledger.store.locked_heads import Head
from ledger.store.tables import members


def _state(row) -> MemberState:
    return MemberState(
        member_id=row.member_id,
        referral_code=row.referral_code,
        status=MemberStatus(row.status),
        enrolled_at=from_micros(row.enrolled_at),
        balance=Balance(posted=row.posted, held=row.held),
        last_seq=row.last_seq,
        last_activity_at=from_micros(row.last_activity_at),
        closed_at=from_micros(row.closed_at) if row.closed_at is not None else None,
        erased_at=from_micros(row.erased_at) if row.erased_at is not None else None,
    )


# Hot-path reads are built once: SQLAlchemy then finds them compiled without rebuilding them.
_by_id = select(members).where(
    members.c.program_id == bindparam("program_id"), members.c.member_id == bindparam("member_id")
)
_by_id_locked = _by_id.with_for_update()
BY_ID = prefetch.Read("member", _by_id, ("program_id", "member_id"))
# The locked row as the read after the lock fetches it (already locked by then: FOR UPDATE
# there takes nothing new); read alone, it takes the lock itself.
LOCKED = prefetch.Read("member_locked", _by_id_locked, ("program_id", "member_id"))
_lock = _by_id.with_only_columns(members.c.last_seq).with_for_update()


def lock_ahead(conn: Connection, program_id: str, member_id: str) -> None:
    """On PostgreSQL, queues the member's row lock to go out in the same round trip as the
    statement that reads ahead after it (prefetch.load, with LOCKED among its reads): a
    statement of its own in that round trip, so the reads after it take their snapshot once
    the lock is held, as they would a round trip later. Elsewhere get(lock=True) locks."""
    if conn.dialect.name == "postgresql":
        write_behind.execute(conn, _lock, {"program_id": program_id, "member_id": member_id})


def lock_in_key_order(
    conn: Connection, program_id: str, member_ids: list[str], *, skip_locked: bool = False
) -> set[str]:
    """Row-locks the members in member_id order, in one statement: whoever locks several
    members at once (a batch of imported orders) takes them in the order every writer does
    (Python's, bytewise: on PostgreSQL the ids are compared in the "C" collation). Returns
    the ids locked: the enrolled ones, and with skip_locked (PostgreSQL) only those no other
    transaction holds now, without waiting for the others."""
    key = members.c.member_id
    skip = skip_locked and conn.dialect.name == "postgresql"
    rows = conn.execute(
        select(key)
        .where(members.c.program_id == program_id, key.in_(sorted(member_ids)))
        .order_by(key.collate("C") if conn.dialect.name == "postgresql" else key)
        .with_for_update(skip_locked=skip)
    ).all()
    return {row.member_id for row in rows}


def get(conn: Connection, program_id: str, member_id: str, *, lock: bool = False) -> MemberState | None:
    params = {"program_id": program_id, "member_id": member_id}
    row = prefetch.read(conn, LOCKED if lock else BY_ID, params)
    if row is None:
        return None
    if lock:
        locked_heads.remember(conn, program_id, member_id, Head(row.posted, row.last_seq, row.last_entry_hash))
    return _state(row)


def insert_if_absent(conn: Connection, program_id: str, member_id: str, referral_code: str, now: datetime) -> bool:
    """Inserts a new member; False when the member already exists (enrollment is idempotent)."""
    values = dict(
        program_id=program_id,
        member_id=member_id,
        referral_code=referral_code,
        status=MemberStatus.ACTIVE.value,
        enrolled_at=to_micros(now),
        posted=0,
        held=0,
        last_seq=0,
        updated_at=to_micros(now),
    )
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(members)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["program_id", "member_id"])
        .returning(members.c.member_id)
    )
    created = conn.execute(statement).first() is not None
    if created:
        outbox.add(conn, program_id, events.member_enrolled(member_id, referral_code, now))
    return created


# By the code alone: the referral-code index leads with the code, so it is the only index
# that can find it, whatever the planner's statistics say. With program_id in the WHERE
# clause the primary key (led by program_id) would compete, and on statistics that know
# no rows of this program it costs as little as the code's index: a walk of the whole
# program. A code is unique per program, so it names at most one member of each program;
# the program is checked on those rows.
_by_code = select(members.c.program_id, members.c.member_id).where(members.c.referral_code == bindparam("code"))


def member_by_code(conn: Connection, program_id: str, code: str) -> str | None:
    """The member whose referral code this is, if any."""
    for row in conn.execute(_by_code, {"code": code}):
        if row.program_id == program_id:
            return row.member_id
    return None




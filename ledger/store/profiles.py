"""Member profiles (personal data) and the member directory's reads and writes.

Nothing here logs a profile's content: personal fields never reach logs (ledger.domain.profiles).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger.domain.profiles import Profile
from ledger.domain.records import MemberState, MemberStatus
from ledger.store.instants import from_micros, to_micros
from ledger.store.postgres import prefetch
from ledger.store.tables import holds, member_profiles, member_tiers, members, segment_members

_by_member = select(member_profiles).where(
    member_profiles.c.program_id == bindparam("program_id"), member_profiles.c.member_id == bindparam("member_id")
)
BY_MEMBER = prefetch.Read("member_profile", _by_member, ("program_id", "member_id"))


def _profile(row) -> Profile:
    return Profile(
        email=row.email or "",
        name=row.name or "",
        birth_date=row.birth_date or "",
        locale=row.locale or "",
        marketing_consent=bool(row.marketing_consent),
        marketing_consent_at=from_micros(row.marketing_consent_at) if row.marketing_consent_at is not None else None,
    )


def get(conn: Connection, program_id: str, member_id: str) -> Profile:
    row = prefetch.read(conn, BY_MEMBER, {"program_id": program_id, "member_id": member_id})
    return _profile(row) if row is not None else Profile()


def save(conn: Connection, program_id: str, member_id: str, profile: Profile, now: datetime) -> None:
    """Writes the whole profile (an empty field is stored as NULL: nothing kept)."""
    values = dict(
        email=profile.email or None,
        name=profile.name or None,
        birth_date=profile.birth_date or None,
        locale=profile.locale or None,
        marketing_consent=profile.marketing_consent,
        marketing_consent_at=to_micros(profile.marketing_consent_at) if profile.marketing_consent_at else None,
        updated_at=to_micros(now),
    )
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(member_profiles).values(program_id=program_id, member_id=member_id, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["program_id", "member_id"], set_=values))


def set_closed(conn: Connection, program_id: str, member_id: str, now: datetime) -> None:
    conn.execute(
        update(members)
        .where(members.c.program_id == program_id, members.c.member_id == member_id)
        .values(status=MemberStatus.CLOSED.value, closed_at=to_micros(now), updated_at=to_micros(now))
    )


def set_erased(conn: Connection, program_id: str, member_id: str, now: datetime) -> None:
    conn.execute(
        update(members)
        .where(members.c.program_id == program_id, members.c.member_id == member_id)
        .values(erased_at=to_micros(now), updated_at=to_micros(now))
    )


def open_hold_ids(conn: Connection, program_id: str, member_id: str) -> list[str]:
    return list(
        conn.execute(
            select(holds.c.hold_id).where(
                holds.c.member_id == member_id, holds.c.program_id == program_id, holds.c.state == "OPEN"
            )
        ).scalars()
    )


def page(
    conn: Connection,
    program_id: str,
    *,
    after: str | None,
    limit: int,
    tier: str,
    status: MemberStatus | None,
    enrolled_from: datetime | None,
    enrolled_before: datetime | None,
    segment_id: str = "",
) -> list[MemberState]:
    """Members in member_id order after `after`, filtered; walks the members' primary key."""
    from ledger.store.members import _state

    query = select(members).where(members.c.program_id == program_id)
    if after is not None:
        query = query.where(members.c.member_id > after)
    if tier:
        query = query.join(
            member_tiers,
            (member_tiers.c.program_id == members.c.program_id) & (member_tiers.c.member_id == members.c.member_id),
        ).where(member_tiers.c.tier_name == tier)
    if segment_id:
        query = query.join(
            segment_members,
            (segment_members.c.program_id == members.c.program_id)
            & (segment_members.c.member_id == members.c.member_id)
            & (segment_members.c.segment_id == segment_id),
        )
    if status is not None:
        query = query.where(members.c.status == status.value)
    if enrolled_from is not None:
        query = query.where(members.c.enrolled_at >= to_micros(enrolled_from))
    if enrolled_before is not None:
        query = query.where(members.c.enrolled_at < to_micros(enrolled_before))
    # The database's own collation for both the order and the page bound: one index walk.
    rows = conn.execute(query.order_by(members.c.member_id).limit(limit)).all()
    return [_state(row) for row in rows]

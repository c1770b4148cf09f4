"""Reads that several use cases start with: the program's rules, a member (locked or not),
and what an operation reads right after its lock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from ledger.domain import errors
from ledger.domain.program import ProgramRules
from ledger.domain.records import MemberState, MemberStatus
from ledger.service import clock
from ledger.store import members, prefetch, programs
from ledger.store.instants import to_micros


def program_rules(conn: Connection, program_id: str) -> ProgramRules:
    rules = programs.get(conn, program_id)
    if rules is None:
        raise errors.not_found("PROGRAM_NOT_FOUND", f"program {program_id} does not exist")
    return rules


def member(conn: Connection, program_id: str, member_id: str, *, lock: bool = False) -> MemberState:
    state = members.get(conn, program_id, member_id, lock=lock)
    if state is None:
        raise errors.not_found("MEMBER_NOT_FOUND", f"member {member_id!r} is not enrolled in this program")
    return state


def require_active(state: MemberState) -> None:
    """A closed member may not earn or spend (checked after the idempotency lookup, so a
    retry of a call made before the member was closed still gets its original answer)."""
    if state.status is not MemberStatus.ACTIVE:
        raise errors.refused("MEMBER_CLOSED", f"member {state.member_id!r} is closed")


def read_ahead(
    conn: Connection, program_id: str, member_id: str, key: str, reads: tuple[prefetch.Read, ...], **more
) -> datetime:
    """Called right after the member's lock: the operation's instant, and the reads it makes
    next fetched in one round trip as of that instant (under the lock: as fresh as reading
    them then). `more`: the reads' other parameters."""
    now = clock.now()
    params = {"program_id": program_id, "member_id": member_id, "key": key, "at": to_micros(now), **more}
    prefetch.load(conn, reads, params)
    return now

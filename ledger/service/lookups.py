"""Reads that several use cases start with: the program's rules and a member (locked or not)."""

from __future__ import annotations

from sqlalchemy import Connection

from ledger.domain import errors
from ledger.domain.program import ProgramRules
from ledger.domain.records import MemberState, MemberStatus
from ledger.store import members, programs


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

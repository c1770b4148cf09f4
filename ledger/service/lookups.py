"""Reads that several use cases start with: the program's rules, a member (locked or not),
and what an operation reads right after its lock."""

from __future__ import annotations

from datetime import datetime

from ledger.store.database import Transaction

from ledger.domain import errors
from ledger.domain.program import ProgramRules
from ledger.domain.records import MemberState, MemberStatus
from ledger.service import clock
from ledger.service.caller import Caller
from ledger.store import api_keys, members, programs
from ledger.store.postgres import prefetch
from ledger.store.instants import to_micros


def program_rules(conn: Transaction, program_id: str) -> ProgramRules:
    rules = programs.get(conn, program_id)
    if rules is None:
        raise errors.not_found("PROGRAM_NOT_FOUND", f"program {program_id} does not exist")
    return rules


def member(conn: Transaction, program_id: str, member_id: str, *, lock: bool = False) -> MemberState:
    state = members.get(conn, program_id, member_id, lock=lock)
    if state is None:
        raise errors.not_found("MEMBER_NOT_FOUND", f"member {member_id!r} is not enrolled in this program")
    return state


def require_active(state: MemberState) -> None:
    """A closed member may not earn or spend (checked after the idempotency lookup, so a
    retry of a call made before the member was closed still gets its original answer)."""
    if state.status is not MemberStatus.ACTIVE:
        raise errors.refused("MEMBER_CLOSED", f"member {state.member_id!r} is closed")


def locked_member(
    conn: Transaction, caller: Caller, member_id: str, key: str, reads: tuple[prefetch.Read, ...], **more
) -> tuple[MemberState, datetime]:
    """The member, row-locked, and read_ahead's instant: how a member's operation starts. On
    PostgreSQL the lock, the member's row and the reads ahead share one round trip."""
    members.lock_ahead(conn, caller.program_id, member_id)
    now = read_ahead(conn, caller, member_id, key, (members.LOCKED, *reads), **more)
    return member(conn, caller.program_id, member_id, lock=True), now


def read_ahead(
    conn: Transaction,
    caller: Caller,
    member_id: str,
    key: str,
    reads: tuple[prefetch.Read, ...],
    *,
    now: datetime | None = None,
    **more,
) -> datetime:
    """The operation's instant, and the reads it makes next fetched in one round trip as of
    that instant, with the caller's key revocation when that is still to be checked
    (keys.require_live). A write calls it right after queueing its member's lock
    (members.lock_ahead), which goes out first in that round trip: the reads are then as
    fresh as reading them later under the lock. A member read calls it through
    keys.read_ahead_live. now: the instant, when the caller needs it first (clock.now()
    by default). `more`: the reads' other parameters."""
    now = now or clock.now()
    params = {"program_id": caller.program_id, "member_id": member_id, "key": key, "at": to_micros(now), **more}
    if not caller.revocation_checked:
        reads += (api_keys.REVOCATION,)
        params["key_id"] = caller.key_id
    prefetch.load(conn, reads, params)
    return now

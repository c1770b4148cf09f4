"""Use cases: enroll a member, look a member up."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from ledger.domain import credentials, errors
from ledger.domain.records import MemberState
from ledger.service import clock, lookups, unit_of_work
from ledger.service.caller import Caller
from ledger.store import members


@dataclass(frozen=True)
class Enrollment:
    member: MemberState
    created: bool


def enroll_member(engine: Engine, caller: Caller, member_id: str, referral_code: str = "") -> Enrollment:
    if referral_code:
        raise errors.unimplemented("referral attribution at enrollment", "the referral program issue")

    def work(conn) -> Enrollment:
        lookups.program_rules(conn, caller.program_id)
        for _ in range(5):
            code = credentials.new_referral_code()
            if not members.referral_code_taken(conn, caller.program_id, code):
                break
        created = members.insert_if_absent(conn, caller.program_id, member_id, code, clock.now())
        return Enrollment(lookups.member(conn, caller.program_id, member_id), created)

    return unit_of_work.run(engine, work)


def get_member(engine: Engine, caller: Caller, member_id: str) -> MemberState:
    return unit_of_work.run(
        engine, lambda conn: lookups.member(conn, caller.program_id, member_id), read_only=True
    )

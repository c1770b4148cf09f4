"""Use cases for operators and marketing: create programs, read and change their settings."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ledger.store.database import Database

from ledger.domain import credentials, errors
from ledger.domain.kinds import Role
from ledger.domain.program import ExpiryMode, ProgramRules
from ledger.domain.referrals import ReferralRules
from ledger.service import clock, lookups
from ledger.store import unit_of_work
from ledger.store import segments as segment_store
from ledger.service.caller import Caller
from ledger.store import api_keys, programs


@dataclass(frozen=True)
class NewProgram:
    program_id: str
    admin_key: str


@dataclass(frozen=True)
class ProgramSettings:
    rules: ProgramRules
    created_at: datetime
    updated_at: datetime


# The demo program rewards referrals out of the box, so a newcomer's first referred order
# shows what the program does (a program created by an operator starts at 0 and 0).
DEMO_REFERRAL = ReferralRules(referrer_points=500, referee_points=250)


def _insert_with_admin_key(conn, rules: ProgramRules) -> NewProgram:
    now = clock.now()
    programs.insert_program(conn, rules, now)
    segment_store.insert_presets(conn, rules.program_id, now)  # every program has the preset segments
    key = credentials.issue_key()
    api_keys.insert_key(conn, key.key_id, rules.program_id, Role.ADMIN, key.secret_hash, now)
    return NewProgram(rules.program_id, key.plaintext)


def create_program(db: Database, name: str, currency: str = "USD") -> NewProgram:
    def work(conn) -> NewProgram:
        if programs.find_by_name(conn, name) is not None:
            raise errors.already_exists("PROGRAM_NAME_TAKEN", f"a program named {name!r} already exists")
        return _insert_with_admin_key(conn, ProgramRules(program_id=credentials.new_id("prg"), name=name, currency=currency))

    return unit_of_work.run(db, work)


def create_demo_program_if_empty(db: Database) -> NewProgram | None:
    """On a new, empty database: a `demo` program whose admin key is shown once."""

    def work(conn) -> NewProgram | None:
        if programs.count(conn) > 0:
            return None
        rules = ProgramRules(program_id=credentials.new_id("prg"), name="demo", referral=DEMO_REFERRAL)
        return _insert_with_admin_key(conn, rules)

    return unit_of_work.run(db, work)


@dataclass(frozen=True)
class ProgramSummary:
    program_id: str
    name: str
    currency: str
    created_at: datetime


def list_programs(db: Database) -> list[ProgramSummary]:
    """Every program, oldest first (for operators: `loyalty-ledger program list`)."""
    rows = unit_of_work.run(db, programs.list_all, read_only=True)
    return [ProgramSummary(rules.program_id, rules.name, rules.currency, created) for rules, created in rows]


def get_program(db: Database, caller: Caller) -> ProgramSettings:
    def work(conn) -> ProgramSettings:
        found = programs.get_with_times(conn, caller.program_id)
        if found is None:
            raise errors.not_found("PROGRAM_NOT_FOUND", "the key's program does not exist")
        return ProgramSettings(*found)

    return unit_of_work.run(db, work, read_only=True)


def update_program(db: Database, caller: Caller, changes: dict) -> ProgramSettings:
    """changes maps ProgramRules field names to validated new values ("moments.<field>": one
    field of the post-purchase moments' settings)."""
    whole = {name: value for name, value in changes.items() if not name.startswith("moments.")}
    moment_fields = {name.split(".", 1)[1]: value for name, value in changes.items() if name.startswith("moments.")}

    def work(conn) -> ProgramSettings:
        current = lookups.program_rules(conn, caller.program_id)
        updated = replace(current, **whole)
        if moment_fields:
            updated = replace(updated, moments=replace(updated.moments, **moment_fields))
        if updated.expiry_mode is not ExpiryMode.NONE and updated.expiry_days <= 0:
            raise errors.invalid_field("program.expiry_days", "must be positive when points expire")
        if updated.name != current.name:
            other = programs.find_by_name(conn, updated.name)
            if other is not None and other.program_id != current.program_id:
                raise errors.already_exists("PROGRAM_NAME_TAKEN", f"a program named {updated.name!r} already exists")
        programs.save(conn, updated, clock.now())
        found = programs.get_with_times(conn, caller.program_id)
        assert found is not None
        return ProgramSettings(*found)

    return unit_of_work.run(db, work)

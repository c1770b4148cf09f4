"""Use cases for operators and marketing: create programs, read and change their settings."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine

from ledger.domain import credentials, errors
from ledger.domain.kinds import Role
from ledger.domain.program import ExpiryMode, ProgramRules
from ledger.service import clock, lookups, unit_of_work
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


def create_program(engine: Engine, name: str, currency: str = "USD") -> NewProgram:
    def work(conn) -> NewProgram:
        if programs.find_by_name(conn, name) is not None:
            raise errors.already_exists("PROGRAM_NAME_TAKEN", f"a program named {name!r} already exists")
        rules = ProgramRules(program_id=credentials.new_id("prg"), name=name, currency=currency)
        now = clock.now()
        programs.insert_program(conn, rules, now)
        key = credentials.issue_key()
        api_keys.insert_key(conn, key.key_id, rules.program_id, Role.ADMIN, key.secret_hash, now)
        return NewProgram(rules.program_id, key.plaintext)

    return unit_of_work.run(engine, work)


def create_demo_program_if_empty(engine: Engine) -> NewProgram | None:
    """On a new, empty database: a `demo` program whose admin key is shown once."""

    def work(conn) -> NewProgram | None:
        if programs.count(conn) > 0:
            return None
        rules = ProgramRules(program_id=credentials.new_id("prg"), name="demo")
        now = clock.now()
        programs.insert_program(conn, rules, now)
        key = credentials.issue_key()
        api_keys.insert_key(conn, key.key_id, rules.program_id, Role.ADMIN, key.secret_hash, now)
        return NewProgram(rules.program_id, key.plaintext)

    return unit_of_work.run(engine, work)


def get_program(engine: Engine, caller: Caller) -> ProgramSettings:
    def work(conn) -> ProgramSettings:
        found = programs.get_with_times(conn, caller.program_id)
        if found is None:
            raise errors.not_found("PROGRAM_NOT_FOUND", "the key's program does not exist")
        return ProgramSettings(*found)

    return unit_of_work.run(engine, work, read_only=True)


def update_program(engine: Engine, caller: Caller, changes: dict) -> ProgramSettings:
    """changes maps ProgramRules field names to validated new values."""

    def work(conn) -> ProgramSettings:
        current = lookups.program_rules(conn, caller.program_id)
        updated = replace(current, **changes)
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

    return unit_of_work.run(engine, work)

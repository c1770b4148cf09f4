"""Program rows: the settings every rule reads."""

from __future__ import annotations

import json
from typing import Any
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from ledger.domain.program import (
    EarnRate,
    ExpiryMode,
    NegativeBalancePolicy,
    ProgramRules,
    Rounding,
    earning_fields,
    rules_from_json,
    rules_to_json,
)
from ledger.store import transaction_scoped
from ledger.store.postgres import prefetch
from ledger.store.instants import from_micros, to_micros
from ledger.store.tables import program_settings_history, programs


def _rules(row) -> ProgramRules:
    return ProgramRules(
        program_id=row.program_id,
        name=row.name,
        currency=row.currency,
        earn_rate=EarnRate(row.earn_points, row.earn_per_amount),
        rounding=Rounding(row.rounding),
        pending_days=row.pending_days,
        expiry_mode=ExpiryMode(row.expiry_mode),
        expiry_days=row.expiry_days,
        negative_balance_policy=NegativeBalancePolicy(row.negative_balance_policy),
        hold_ttl_seconds=row.hold_ttl_seconds,
        max_backdate_days=row.max_backdate_days,
        event_retention_days=row.event_retention_days,
        rfm_window_days=row.rfm_window_days,
        **earning_fields(json.loads(row.earning_settings or "{}")),
    )


def _columns(rules: ProgramRules) -> dict:
    return dict(
        name=rules.name,
        currency=rules.currency,
        earn_points=rules.earn_rate.points,
        earn_per_amount=rules.earn_rate.per_amount,
        rounding=rules.rounding.value,
        pending_days=rules.pending_days,
        expiry_mode=rules.expiry_mode.value,
        expiry_days=rules.expiry_days,
        negative_balance_policy=rules.negative_balance_policy.value,
        hold_ttl_seconds=rules.hold_ttl_seconds,
        max_backdate_days=rules.max_backdate_days,
        event_retention_days=rules.event_retention_days,
        rfm_window_days=rules.rfm_window_days,
        earning_settings=json.dumps(rules.earning_json(), separators=(",", ":")),
    )


def _record_version(conn: Connection, rules: ProgramRules, now: datetime) -> None:
    conn.execute(
        insert(program_settings_history).values(
            program_id=rules.program_id,
            effective_at=to_micros(now),
            settings=json.dumps(rules_to_json(rules), separators=(",", ":")),
        )
    )


def settings_history(conn: Connection, program_id: str) -> list[tuple[datetime, ProgramRules]]:
    """Every version of the program's settings, oldest first."""
    history = program_settings_history
    rows = conn.execute(
        select(history.c.effective_at, history.c.settings)
        .where(history.c.program_id == program_id)
        .order_by(history.c.effective_at)
    )
    return [(from_micros(r.effective_at), rules_from_json(json.loads(r.settings))) for r in rows]


# Built once: SQLAlchemy then finds it compiled without rebuilding it.
_by_id = select(programs).where(programs.c.program_id == bindparam("program_id"))


BY_ID = prefetch.Read("program", _by_id, ("program_id",))


# A use case asks for its program's rules in several places (GetMember: the balance, the
# tier and the RFM view); the row is read and parsed once per transaction, and forgotten as
# soon as this transaction writes it.
_READ_IN_TRANSACTION = "program_rows"


def _row_and_rules(conn: Connection, program_id: str) -> tuple[Any, ProgramRules] | None:
    known = conn.info.setdefault(_READ_IN_TRANSACTION, {})
    if program_id not in known:
        row = prefetch.read(conn, BY_ID, {"program_id": program_id})
        known[program_id] = (row, _rules(row)) if row else None
    return known[program_id]


def forget(conn: Connection) -> None:
    """Drops the program rows read in this transaction (it wrote one, or rolled back to a savepoint)."""
    conn.info.pop(_READ_IN_TRANSACTION, None)


def install(engine: Engine) -> None:
    """Nothing read here outlives its transaction."""
    transaction_scoped.forget_at_transaction_end(engine, _READ_IN_TRANSACTION)


def get_with_version(conn: Connection, program_id: str) -> tuple[ProgramRules, int] | None:
    found = _row_and_rules(conn, program_id)
    return (found[1], found[0].config_version) if found else None


def bump_config_version(conn: Connection, program_id: str) -> None:
    forget(conn)
    conn.execute(
        update(programs)
        .where(programs.c.program_id == program_id)
        .values(config_version=programs.c.config_version + 1)
    )


def get(conn: Connection, program_id: str) -> ProgramRules | None:
    found = _row_and_rules(conn, program_id)
    return found[1] if found else None


def get_with_times(conn: Connection, program_id: str) -> tuple[ProgramRules, datetime, datetime] | None:
    row = conn.execute(select(programs).where(programs.c.program_id == program_id)).first()
    if row is None:
        return None
    return _rules(row), from_micros(row.created_at), from_micros(row.updated_at)


def find_by_name(conn: Connection, name: str) -> ProgramRules | None:
    row = conn.execute(select(programs).where(programs.c.name == name)).first()
    return _rules(row) if row else None


def list_all(conn: Connection) -> list[tuple[ProgramRules, datetime]]:
    """Every program with its creation time, oldest first."""
    rows = conn.execute(select(programs).order_by(programs.c.created_at, programs.c.program_id)).all()
    return [(_rules(row), from_micros(row.created_at)) for row in rows]


def ids(conn: Connection) -> list[str]:
    """Every program's id, in id order."""
    return list(conn.execute(select(programs.c.program_id).order_by(programs.c.program_id)).scalars())


def count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(programs)).scalar_one()


def insert_program(conn: Connection, rules: ProgramRules, now: datetime) -> None:
    forget(conn)
    conn.execute(
        insert(programs).values(
            program_id=rules.program_id, created_at=to_micros(now), updated_at=to_micros(now), **_columns(rules)
        )
    )
    _record_version(conn, rules, now)


def save(conn: Connection, rules: ProgramRules, now: datetime) -> None:
    forget(conn)
    conn.execute(
        update(programs)
        .where(programs.c.program_id == rules.program_id)
        .values(updated_at=to_micros(now), config_version=programs.c.config_version + 1, **_columns(rules))
    )
    _record_version(conn, rules, now)

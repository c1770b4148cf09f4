"""The database itself refuses to change or remove ledger rows (DESIGN.md section 3).

On PostgreSQL and SQLite, after real transactions were written through the
service layer, a direct UPDATE, DELETE or upsert on every ledger table
(tables.LEDGER_TABLES: transactions, entries, idempotency_records, and any
ledger table added later) fails and leaves every row as it was. On PostgreSQL
TRUNCATE fails too, and the guards hold in a superuser session, even one in
replica mode; on SQLite INSERT OR REPLACE cannot rewrite a row either.
Projections (members) stay writable: they are rebuilt from the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, Integer, String, Text, insert, text
from sqlalchemy.exc import DBAPIError

from ledger.domain import credentials
from ledger.domain.kinds import Role
from ledger.service import members, programs, support
from ledger.service.caller import Caller
from ledger.service.idempotent import Mutation
from ledger.store import migrate
from ledger.store.tables import LEDGER_TABLES, metadata
from tests.store.fresh import fresh_engine

REFUSED = "append-only"


def tampered_column(table: str) -> str:
    """The first non-key column: points for transactions and entries, method for idempotency_records."""
    return next(c.name for c in metadata.tables[table].columns if not c.primary_key)


def changed_value(table: str) -> str:
    """A SQL expression (valid on both backends) that changes the tampered column of every row."""
    column = metadata.tables[table].columns[tampered_column(table)]
    return f"{column.name} + 1" if isinstance(column.type, Integer) else f"{column.name} || 'x'"


@dataclass
class Ledger:
    engine: Engine
    program_id: str
    member_id: str


def write_real_transactions(engine: Engine) -> Ledger:
    migrate.upgrade(engine)
    created = programs.create_program(engine, "append-only")
    caller = Caller(created.program_id, credentials.key_id_of(created.admin_key), Role.ADMIN)
    members.enroll_member(engine, caller, "m-1")
    for number, points in enumerate((500, -120), start=1):
        mutation = Mutation(f"adjust-{number}", "AdjustPoints", f"request-{number}")
        support.adjust_points(engine, caller, mutation, "m-1", points, "goodwill")
    _fill_empty_ledger_tables(engine, created.program_id)
    return Ledger(engine, created.program_id, "m-1")


def _fill_empty_ledger_tables(engine: Engine, program_id: str) -> None:
    """A ledger table the adjustments do not write (e.g. lot consumptions) gets one row inserted
    directly (INSERT is what append-only allows), so that refusing its UPDATE/DELETE is not vacuous:
    row triggers never fire on an empty table."""
    with engine.begin() as conn:
        for name in LEDGER_TABLES:
            table = metadata.tables[name]
            if conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one():
                continue
            row = {}
            for column in table.columns:
                if column.name == "program_id":
                    row[column.name] = program_id
                elif isinstance(column.type, Integer):
                    row[column.name] = 1
                elif isinstance(column.type, (String, Text)):
                    row[column.name] = f"filler-{column.name}"
                else:
                    raise AssertionError(f"teach _fill_empty_ledger_tables about {name}.{column.name}: {column.type}")
            conn.execute(insert(table).values(**row))


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {table: sorted(tuple(row) for row in conn.execute(text(f"SELECT * FROM {table}"))) for table in LEDGER_TABLES}


@pytest.fixture
def ledger(empty_engine) -> Ledger:
    written = write_real_transactions(empty_engine)
    rows = snapshot(empty_engine)
    assert all(rows.values()), f"every ledger table must hold rows for the refusals to mean anything: {rows}"
    return written


@pytest.fixture
def pg_ledger(tmp_path):
    with fresh_engine("postgresql", tmp_path) as engine:
        yield write_real_transactions(engine)


@pytest.fixture
def sqlite_ledger(tmp_path):
    with fresh_engine("sqlite", tmp_path) as engine:
        yield write_real_transactions(engine)


def assert_refused(engine: Engine, statement: str) -> None:
    before = snapshot(engine)
    with pytest.raises(DBAPIError, match=REFUSED):
        with engine.begin() as conn:
            conn.execute(text(statement))
    assert snapshot(engine) == before


def upsert(table: str) -> str:
    """Re-insert every row onto itself with ON CONFLICT DO UPDATE (the UPDATE hidden in an INSERT)."""
    columns = [c.name for c in metadata.tables[table].columns]
    keys = [c.name for c in metadata.tables[table].primary_key]
    changed = tampered_column(table)
    listed = ", ".join(columns)
    # `WHERE true` lets SQLite tell the upsert clause from a join constraint.
    return (
        f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {table} WHERE true "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {changed} = excluded.{changed}"
    )


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_update_is_refused(ledger, table):
    assert_refused(ledger.engine, f"UPDATE {table} SET {tampered_column(table)} = {changed_value(table)}")


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_delete_is_refused(ledger, table):
    # Without WHERE: on SQLite this would be the "truncate optimisation", which triggers must disable.
    assert_refused(ledger.engine, f"DELETE FROM {table}")
    assert_refused(ledger.engine, f"DELETE FROM {table} WHERE program_id = '{ledger.program_id}'")


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_upsert_is_refused(ledger, table):
    assert_refused(ledger.engine, upsert(table))


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_truncate_is_refused_on_postgresql(pg_ledger, table):
    # TRUNCATE fires no row trigger; the BEFORE TRUNCATE statement trigger must catch it.
    assert_refused(pg_ledger.engine, f"TRUNCATE {table}")
    assert_refused(pg_ledger.engine, f"TRUNCATE {table} CASCADE")


def test_truncating_all_ledger_tables_at_once_is_refused_on_postgresql(pg_ledger):
    assert_refused(pg_ledger.engine, f"TRUNCATE {', '.join(LEDGER_TABLES)}")


def _is_superuser(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar_one()


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_update_is_refused_even_for_a_superuser(pg_ledger, table):
    assert _is_superuser(pg_ledger.engine), "the test database user must be a superuser for this test to prove anything"
    # Even an UPDATE that changes nothing: a row trigger fires for every row the statement touches.
    column = tampered_column(table)
    assert_refused(pg_ledger.engine, f"UPDATE {table} SET {column} = {column}")
    assert_refused(pg_ledger.engine, f"UPDATE {table} SET {column} = {changed_value(table)}")


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_update_is_refused_for_a_superuser_in_replica_mode(pg_ledger, table):
    """session_replication_role=replica skips ordinary triggers; the guards are ENABLE ALWAYS."""
    assert _is_superuser(pg_ledger.engine)
    before = snapshot(pg_ledger.engine)
    try:
        with pytest.raises(DBAPIError, match=REFUSED):
            with pg_ledger.engine.begin() as conn:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                conn.execute(text(f"UPDATE {table} SET {tampered_column(table)} = {changed_value(table)}"))
    finally:
        assert snapshot(pg_ledger.engine) == before


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_insert_or_replace_is_refused_on_sqlite(sqlite_ledger, table):
    """INSERT OR REPLACE deletes the old row without firing DELETE triggers (unless
    recursive_triggers is on), so it would rewrite a ledger row past the UPDATE/DELETE guards."""
    columns = [c.name for c in metadata.tables[table].columns]
    changed = tampered_column(table)
    values = ", ".join(changed_value(table) if c == changed else c for c in columns)
    before = snapshot(sqlite_ledger.engine)
    try:
        with pytest.raises(DBAPIError, match=REFUSED):
            with sqlite_ledger.engine.begin() as conn:
                conn.execute(text(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) SELECT {values} FROM {table}"))
    finally:
        assert snapshot(sqlite_ledger.engine) == before


def test_projections_stay_writable(ledger):
    """members is a projection (rebuilt from the ledger), not guarded: the triggers must not catch it."""
    with ledger.engine.begin() as conn:
        changed = conn.execute(text("UPDATE members SET updated_at = updated_at + 1")).rowcount
    assert changed == 1

"""The Alembic migrations are the schema: they build it, tear it down, and match tables.py.

Proves on PostgreSQL and SQLite, each test on its own empty database, that
- upgrade from empty to head works, downgrade to base removes every table (and
  the PostgreSQL trigger function), and a second upgrade works again;
- after upgrade, the live schema equals `ledger.store.tables.metadata`
  (alembic's compare_metadata finds nothing), so tables.py and migrations/
  cannot drift apart silently;
- on PostgreSQL, migrating a seeded ledger is not cut short by the per-statement limit;
- 0009 writes the default roles (pos, support, admin) into every stored activity rule that
  names none, current settings and their history alike, bumps those programs' config_version,
  keeps roles a rule already names, and its downgrade leaves the JSON as 0008 wrote it;
- 0010 writes one random page-token secret (32 bytes), a different one per database, which
  every engine on that database reads alike; its downgrade removes it;
- each lookup has one index to enter by its leading column (0011), and on PostgreSQL 0011
  finishes what an interrupted run left and waits its turn for a primary key's lock;
- 0012 (the events outbox) leaves the history before it without events (verify asks for
  none), gives what is written after it its events, refuses UPDATE of an event and DELETE of
  one within its program's retention, and its downgrade removes it;
- 0014 (the member directory) brings existing members through active without a profile, and
  its downgrade removes the profiles table and the close and erase times.
"""

from __future__ import annotations

import json
from datetime import timedelta
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.exc import OperationalError

from ledger.store import engine as engines
from ledger.store import migrate
from ledger.store.tables import LEDGER_TABLES, metadata
from tests.store.fresh import fresh_engine

# Alembic's own bookkeeping table; a downgrade to base leaves it behind, empty.
VERSION_TABLE = "alembic_version"


def head_revision(engine: Engine) -> str:
    return ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()


def user_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {VERSION_TABLE}


def triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        return set(conn.execute(text(sql)).scalars())


def append_only_function_exists(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM pg_proc WHERE proname = 'ledger_append_only'")).scalar_one() > 0


def test_upgrade_downgrade_upgrade(empty_engine):
    engine = empty_engine
    assert user_tables(engine) == set()

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == head_revision(engine)
    assert user_tables(engine) == set(metadata.tables)
    guarded = triggers(engine)
    assert all(any(name.startswith(table) for name in guarded) for table in LEDGER_TABLES), guarded

    migrate.downgrade(engine)
    assert migrate.current_revision(engine) is None
    assert user_tables(engine) == set()
    assert triggers(engine) == set()
    if engine.dialect.name == "postgresql":
        assert not append_only_function_exists(engine)

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == head_revision(engine)
    assert user_tables(engine) == set(metadata.tables)
    assert triggers(engine) == guarded
    if engine.dialect.name == "postgresql":
        assert append_only_function_exists(engine)


def test_migrated_schema_matches_tables_py(empty_engine):
    """compare_metadata sees tables, columns, types, nullability, primary keys, unique
    constraints, indexes and server defaults. It does not see (so they are covered elsewhere):
    - triggers and the PL/pgSQL function: not part of SQLAlchemy metadata at all;
      test_append_only.py proves they work;
    - the WHERE predicate of a partial index: alembic compares an index's name, columns and
      uniqueness only; test_partial_index_predicates_match_tables_py below compares those.
    """
    engine = empty_engine
    migrate.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def _partial_index_predicates(engine: Engine) -> dict[tuple[str, str], str]:
    """{(table, index): predicate as the database itself prints it} for every partial index."""
    found = {}
    inspector = inspect(engine)
    option = f"{engine.dialect.name}_where"
    for table in inspector.get_table_names():
        for index in inspector.get_indexes(table):
            where = index.get("dialect_options", {}).get(option)
            if where is not None:
                found[(table, index["name"])] = str(where)
    return found


def test_partial_index_predicates_match_tables_py(empty_engine, tmp_path):
    """The predicate alembic cannot compare: build the schema a second time straight from
    tables.py (metadata.create_all) on a second database of the same backend, and compare
    the predicates both databases report, so both sides go through the same normalisation."""
    engine = empty_engine
    migrate.upgrade(engine)
    with fresh_engine(engine.dialect.name, tmp_path) as reference:
        metadata.create_all(reference)
        expected = _partial_index_predicates(reference)
    declared = {
        (table.name, index.name)
        for table in metadata.tables.values()
        for index in table.indexes
        if index.dialect_options[engine.dialect.name].get("where") is not None
    }
    assert set(expected) == declared
    assert _partial_index_predicates(engine) == expected



def _ten_millisecond_limit(dialect, connection_record, cargs, cparams) -> None:
    cparams["options"] = cparams["options"].replace(
        f"statement_timeout={engines.STATEMENT_TIMEOUT_MS}", "statement_timeout=10"
    )


def test_migrations_are_not_cut_short_by_the_statement_limit():
    """Every session starts with a per-statement limit meant for the till (15 s); an index
    built over a big ledger takes longer than that, and cut short, the server would not start.
    Here every session starts with a 10 ms limit, and 0008's indexes are built again over a
    seeded ledger of 100,000 transactions (each build scans them all: well over 10 ms); the
    session that migrated is not pooled afterwards. (With 1 ms, the migration's own first
    statement, the one that lifts the limit, was once cut short on a slow, loaded machine.)"""
    from bench.seed import seed
    from tests.databases import postgres_database

    with postgres_database() as url:
        seed(url, members=50_000, entries_per_member=2, name="migrate-long")
        engine = engines.create_engine_for(url, pool_size=1)
        try:
            migrate.downgrade(engine, "0007")
            event.listen(engine, "do_connect", _ten_millisecond_limit)  # the dialect already knows the server
            engine.dispose()
            migrate.upgrade(engine)
            with engine.connect() as conn:  # the session that migrated is closed: a new one has the limit
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == "10ms"
                with pytest.raises(OperationalError, match="statement timeout"):
                    conn.exec_driver_sql("SELECT pg_sleep(0.05)")
        finally:
            engine.dispose()
        engine = engines.create_engine_for(url, pool_size=1)  # sessions with the usual limit
        try:
            assert migrate.current_revision(engine) == head_revision(engine)
            with engine.connect() as conn:
                valid = conn.execute(
                    text(
                        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                        " WHERE c.relname LIKE :names"
                    ),
                    {"names": "ix_transactions_order_%"},
                ).all()
            assert sorted(valid) == [("ix_transactions_order_refunds", True), ("ix_transactions_order_reversals", True)]
            assert _index_definitions(engine) == _EXPECTED_0011
        finally:
            engine.dispose()


# ---------------------------------------------------------------- 0009: roles of activity rules


def _settings_0008(*rules: dict) -> str:
    """earning_settings as the code of 0008 wrote them (ProgramRules.earning_json then)."""
    return json.dumps({
        "min_order_amount": 0, "channel_rates": [], "rate_rules": [], "activity_rules": list(rules),
        "tier_basis": "QUALIFYING_SPEND", "tier_window": "ROLLING", "tier_period_days": 365, "tier_grace_days": 0,
        "referral": {},
    }, separators=(",", ":"))


_REVIEW = {"activity_type": "review_submitted", "points": 10, "max_per_period": 0, "period_days": 30}
_INSTALL = {"activity_type": "app_installed", "points": 200, "max_per_period": 1, "period_days": 365}


def _insert_program(conn, program_id: str, settings: str, history: list[str]) -> None:
    conn.execute(
        text(
            "INSERT INTO programs (program_id, name, currency, earn_points, earn_per_amount, rounding, pending_days,"
            " expiry_mode, expiry_days, negative_balance_policy, hold_ttl_seconds, max_backdate_days, created_at,"
            " updated_at, earning_settings, config_version)"
            " VALUES (:id, :id, 'USD', 1, 100, 'DOWN', 0, 'NONE', 0, 'ALLOW', 900, 90, 1, 1, :settings, 3)"
        ),
        {"id": program_id, "settings": settings},
    )
    for i, version in enumerate(history):
        whole = {"program_id": program_id, "name": program_id, "currency": "USD", "earn_rate": [1, 100],
                 "rounding": "DOWN", "pending_days": 0, "expiry_mode": "NONE", "expiry_days": 0,
                 "negative_balance_policy": "ALLOW", "hold_ttl_seconds": 900, "max_backdate_days": 90,
                 **json.loads(version)}
        conn.execute(
            text("INSERT INTO program_settings_history (program_id, effective_at, settings) VALUES (:id, :at, :s)"),
            {"id": program_id, "at": i + 1, "s": json.dumps(whole, separators=(",", ":"))},
        )


def _stored(engine: Engine) -> dict:
    """{program_id: (config_version, [activity rules now], [[activity rules] per history version])}."""
    with engine.connect() as conn:
        programs = conn.execute(text("SELECT program_id, earning_settings, config_version FROM programs")).all()
        history = conn.execute(
            text("SELECT program_id, settings FROM program_settings_history ORDER BY program_id, effective_at")
        ).all()
    return {
        p.program_id: (
            p.config_version,
            json.loads(p.earning_settings)["activity_rules"],
            [json.loads(h.settings)["activity_rules"] for h in history if h.program_id == p.program_id],
        )
        for p in programs
    }


def test_0009_gives_stored_activity_rules_the_default_roles_and_its_downgrade_takes_them_away(empty_engine):
    from ledger.domain.kinds import Role
    from ledger.store import programs as program_store

    engine = empty_engine
    migrate.upgrade(engine, "0008")
    storefront_too = {**_REVIEW, "roles": ["pos", "storefront"]}  # as if written after 0009 and downgraded without it
    with engine.begin() as conn:
        _insert_program(conn, "prg_rules", _settings_0008(_REVIEW, _INSTALL), [_settings_0008(), _settings_0008(_REVIEW)])
        _insert_program(conn, "prg_history_only", _settings_0008(), [_settings_0008(_INSTALL), _settings_0008()])
        _insert_program(conn, "prg_none", _settings_0008(), [_settings_0008()])
        _insert_program(conn, "prg_named", _settings_0008(storefront_too), [_settings_0008(storefront_too)])
    before = _stored(engine)

    migrate.upgrade(engine)
    default = ["pos", "support", "admin"]
    assert _stored(engine) == {
        "prg_rules": (4, [{**_REVIEW, "roles": default}, {**_INSTALL, "roles": default}],
                      [[], [{**_REVIEW, "roles": default}]]),
        "prg_history_only": (4, [], [[{**_INSTALL, "roles": default}], []]),
        "prg_none": (3, [], [[]]),  # nothing to change: its cached configuration stays valid
        "prg_named": (3, [storefront_too], [[storefront_too]]),
    }
    with engine.connect() as conn:  # what the code reads
        rules = program_store.get(conn, "prg_rules")
        assert [r.roles for r in rules.activity_rules] == [(Role.POS, Role.SUPPORT, Role.ADMIN)] * 2
        history = program_store.settings_history(conn, "prg_named")
        assert history[0][1].activity_rules[0].roles == (Role.POS, Role.STOREFRONT)

    migrate.downgrade(engine, "0008")
    after = _stored(engine)
    assert {p: (rules, versions) for p, (_v, rules, versions) in after.items() if p != "prg_named"} == {
        p: (rules, versions) for p, (_v, rules, versions) in before.items() if p != "prg_named"
    }
    assert after["prg_named"][1:] == ([_REVIEW], [[_REVIEW]])


# ---------------------------------------------------------------- 0010: the page-token secret


def test_0010_writes_one_page_token_secret_per_database(empty_engine, tmp_path):
    from ledger.service import page_tokens
    from ledger.store import service_secrets

    engine = empty_engine
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, secret FROM service_secrets")).all()
        secret = service_secrets.read(conn, service_secrets.PAGE_TOKEN)
    assert [name for name, _ in rows] == ["page_token"]
    assert len(secret) == 32 and secret != bytes(32)
    # another engine on this database (another server) signs with the same secret
    second = engines.create_engine_for(engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        assert page_tokens.secret(second) == page_tokens.secret(engine) == secret
    finally:
        second.dispose()
    # another database has its own
    (tmp_path / "other").mkdir()
    with fresh_engine(engine.dialect.name, tmp_path / "other") as other:
        migrate.upgrade(other)
        assert page_tokens.secret(other) != secret
    migrate.downgrade(engine, "0009")
    assert "service_secrets" not in user_tables(engine)


def test_a_migration_waits_for_the_migration_lock_of_another_process():
    """While another session holds the migration lock, `loyalty-ledger migrate` waits (and
    says so in its log) without touching the schema; once it is released it migrates."""
    import subprocess
    import time

    from ledger.store import locks
    from tests.cli.processes import CLI, environment, json_lines
    from tests.databases import connect, postgres_database

    with postgres_database() as url:
        holder = connect(url, application_name="test-migration-holder")
        try:
            with holder.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (locks.MIGRATIONS,))
            waiting = subprocess.Popen(
                [str(CLI), "migrate"], env=environment(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            try:
                # Until the migrating session asks for the lock (a loaded machine can take
                # seconds to start the command), then a moment longer.
                ends = time.monotonic() + 60
                with holder.cursor() as cur:
                    while time.monotonic() < ends and waiting.poll() is None:
                        cur.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND application_name LIKE 'loyalty-ledger migrations%%'"
                        )
                        if cur.fetchone()[0]:
                            break
                        time.sleep(0.1)
                time.sleep(2)  # its first try for the lock, refused, and the log line it writes
                assert waiting.poll() is None, waiting.communicate()
                with holder.cursor() as cur:
                    cur.execute("SELECT to_regclass('alembic_version') IS NULL")
                    assert cur.fetchone() == (True,), "it migrated without the lock"
                    cur.execute("SELECT pg_advisory_unlock(%s)", (locks.MIGRATIONS,))
                stdout, stderr = waiting.communicate(timeout=60)
            finally:
                waiting.kill()
        finally:
            holder.close()
    assert waiting.returncode == 0, stderr
    assert "database at revision" in stdout
    told = [line for line in json_lines(stderr) if line.get("msg") == "waiting for another process's migrations"]
    assert told and "test-migration-holder" in told[0]["holder"], stderr


# ---------------------------------------------------------------- 0011: one index per lookup


# Tables looked up by more than their primary key: no index of theirs leads with program_id.
_LOOKED_UP_BY_OTHER_KEYS = ("transactions", "holds", "referrals")


def _leading_columns(engine: Engine) -> dict[str, list[tuple[str, str | None]]]:
    """{table: (leading column, partial index predicate) of its primary key, then of each other index}."""
    inspector = inspect(engine)
    option = f"{engine.dialect.name}_where"
    found = {}
    for table in inspector.get_table_names():
        if table == VERSION_TABLE:
            continue
        primary_key = inspector.get_pk_constraint(table)["constrained_columns"]
        found[table] = [(primary_key[0], None)] + [
            (index["column_names"][0], index.get("dialect_options", {}).get(option)) for index in inspector.get_indexes(table)
        ]
    return found


def test_each_lookup_has_one_index_to_enter_by_its_leading_column(empty_engine):
    """Every lookup names its program. On statistics that know no rows of the program, an
    index it can enter by program_id alone costs the planner no more than the right one,
    so no two indexes of a table lead with the same column (but partial ones on different
    rows: an order's earn, refunds, reversals), and program_id leads none of the tables
    looked up by other keys than their primary key (migration 0011)."""
    engine = empty_engine
    migrate.upgrade(engine)
    leading = _leading_columns(engine)
    shared = {table: columns for table, columns in leading.items() if len(set(columns)) < len(columns)}
    assert shared == {}
    assert [table for table in _LOOKED_UP_BY_OTHER_KEYS if ("program_id", None) in leading[table]] == []
    assert leading["members"] == [("program_id", None), ("referral_code", None)]


# 0011's indexes, each with its columns in order, as PostgreSQL defines them once migrated.
_EXPECTED_0011 = {
    "transactions_pkey": ("transactions", "transaction_id, program_id"),
    "holds_pkey": ("holds", "hold_id, program_id"),
    "referrals_pkey": ("referrals", "referee_id, program_id"),
    "uq_members_referral_code": ("members", "referral_code, program_id"),
    "ix_transactions_member_kind": ("transactions", "member_id, program_id, kind, occurred_at"),
    "uq_transactions_earned_order": ("transactions", "order_id, program_id"),
    "ix_transactions_order_refunds": ("transactions", "order_id, program_id"),
    "ix_transactions_order_reversals": ("transactions", "order_id, program_id"),
    "uq_transactions_reverses": ("transactions", "reverses_transaction_id, program_id"),
    "ix_entries_transaction": ("entries", "transaction_id, program_id"),
    "ix_holds_member": ("holds", "member_id, program_id, state"),
    "ix_qualifying_events_window": ("qualifying_events", "member_id, program_id, occurred_at"),
    "ix_referrals_referrer": ("referrals", "referrer_id, program_id, attributed_at"),
    "ix_referrals_order": ("referrals", "qualifying_order_id, program_id"),
}


def _index_definitions(engine: Engine) -> dict[str, tuple[str, str]]:
    """{index: (table, its columns)} of 0011's indexes and of any index a run of it left
    behind (named *_0011), each valid; an invalid one is reported as such."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, t.relname, i.indisvalid,"
                "       (SELECT string_agg(a.attname, ', ' ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)"
                "          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)"
                " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
                " WHERE c.relname = ANY (:names) OR c.relname LIKE '%\\_0011'"
            ),
            {"names": list(_EXPECTED_0011)},
        ).all()
    return {name: (table, columns if valid else "INVALID") for name, table, valid, columns in rows}


def test_0011_finishes_what_an_interrupted_run_left():
    """Each index of 0011 in a state a run cut short can leave it in, then 0011 again:
    the old index dropped and the new one not yet renamed; a new one whose build failed
    (left INVALID); a new primary-key index built but not yet swapped in; a primary key
    already swapped."""
    from tests.databases import postgres_database

    with postgres_database() as url:
        engine = engines.create_engine_for(url, pool_size=1)
        try:
            migrate.upgrade(engine, "0010")
            with engine.connect() as conn:
                for statement in (
                    "CREATE UNIQUE INDEX uq_members_referral_code_0011 ON members (referral_code, program_id)",
                    "DROP INDEX uq_members_referral_code",
                    "CREATE INDEX ix_entries_transaction_0011 ON entries (transaction_id, program_id)",
                    "UPDATE pg_index SET indisvalid = false"
                    " WHERE indexrelid = 'ix_entries_transaction_0011'::regclass",
                    "CREATE UNIQUE INDEX transactions_pkey_0011 ON transactions (transaction_id, program_id)",
                    "CREATE UNIQUE INDEX holds_pkey_0011 ON holds (hold_id, program_id)",
                    "ALTER TABLE holds DROP CONSTRAINT holds_pkey,"
                    " ADD CONSTRAINT holds_pkey PRIMARY KEY USING INDEX holds_pkey_0011",
                ):
                    conn.exec_driver_sql(statement)
            migrate.upgrade(engine)
            assert _index_definitions(engine) == _EXPECTED_0011
        finally:
            engine.dispose()


def test_0011_waits_its_turn_for_a_primary_key_lock():
    """A transaction holding a lock on referrals (a reader: any statement of a running
    server, or a `verify`) keeps 0011 from swapping the table's primary key. 0011 waits a
    moment at a time, so that writers queued behind its request are not held up long, and
    asks again once the reader is done, instead of failing the migration."""
    from tests.databases import connect, postgres_database

    with postgres_database() as url:
        engine = engines.create_engine_for(url, pool_size=1)
        reader = connect(url)
        reader.autocommit = False
        seen_waiting = threading.Event()

        def read_until_the_swap_waited() -> None:
            watcher = connect(url)
            try:
                with reader.cursor() as cur:
                    cur.execute("LOCK TABLE referrals IN ACCESS SHARE MODE")
                with watcher.cursor() as cur:
                    for _ in range(600):  # the swap's request for the lock, queued behind the reader
                        cur.execute(
                            "SELECT count(*) FROM pg_locks WHERE relation = 'referrals'::regclass"
                            " AND mode = 'AccessExclusiveLock' AND NOT granted"
                        )
                        if cur.fetchone()[0]:
                            seen_waiting.set()
                            break
                        threading.Event().wait(0.05)
                threading.Event().wait(0.5)  # several of its waits time out meanwhile
            finally:
                reader.commit()
                watcher.close()

        try:
            migrate.upgrade(engine, "0010")
            holder = threading.Thread(target=read_until_the_swap_waited)
            holder.start()
            try:
                migrate.upgrade(engine)
            finally:
                holder.join()
            assert seen_waiting.is_set()
            assert _index_definitions(engine) == _EXPECTED_0011
        finally:
            reader.close()
            engine.dispose()


# ---------------------------------------------------------------- 0012: the events outbox


def test_0012_starts_events_after_the_existing_history_and_guards_them(empty_engine):
    """A ledger migrated to 0012 keeps its history without events (verify asks for none before
    event_heads.events_since); what is written afterwards has its event; events are refused
    UPDATE, and DELETE until they are past their program's retention; downgrade removes them."""
    from ledger.domain import credentials
    from ledger.domain.kinds import Role
    from ledger.service import members, programs, support
    from ledger.service.caller import Caller
    from ledger.service.idempotent import Mutation
    from ledger.service.verify import verify

    engine = empty_engine
    migrate.upgrade(engine)
    created = programs.create_program(engine, "before-events")
    caller = Caller(created.program_id, credentials.key_id_of(created.admin_key), Role.ADMIN)
    members.enroll_member(engine, caller, "old")
    support.adjust_points(engine, caller, Mutation("k-0", "AdjustPoints", "r-0"), "old", 7, "goodwill")
    migrate.downgrade(engine, "0011")  # a ledger of 0011's time: its history has no events
    migrate.upgrade(engine, "0012")
    with engine.connect() as conn:
        heads = conn.execute(text("SELECT program_id, last_position, events_since FROM event_heads")).all()
    assert [(p, last) for p, last, _ in heads] == [(created.program_id, 0)] and heads[0][2] > 1
    migrate.upgrade(engine)  # today's code writes what follows, on today's schema
    members.enroll_member(engine, caller, "new")
    support.adjust_points(engine, caller, Mutation("k-1", "AdjustPoints", "r-1"), "new", 10, "goodwill")
    support.adjust_points(engine, caller, Mutation("k-2", "AdjustPoints", "r-2"), "old", 5, "goodwill")
    with engine.connect() as conn:
        types = conn.execute(text("SELECT position, type, member_id FROM events ORDER BY position")).all()
    assert [tuple(row) for row in types] == [
        (1, "member.enrolled", "new"),
        (2, "points.adjusted", "new"),
        (3, "points.adjusted", "old"),
    ]
    report = verify(engine)
    assert report.clean, report.breaches
    for statement in ("UPDATE events SET payload = '{}'", "DELETE FROM events"):
        with pytest.raises(Exception, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    # Event 1 made 2001's (past the 1 day of retention here), behind the guard's back.
    with engine.begin() as conn:
        conn.execute(text("UPDATE programs SET event_retention_days = 1"))
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
            conn.execute(text("UPDATE events SET created_at = 10E14 WHERE position = 1"))
            conn.execute(text("ALTER TABLE events ENABLE ALWAYS TRIGGER events_append_only"))
        else:
            guard = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'events_no_update'")).scalar_one()
            conn.execute(text("DROP TRIGGER events_no_update"))
            conn.execute(text("UPDATE events SET created_at = 1000000000000000 WHERE position = 1"))
            conn.execute(text(guard))
    with engine.begin() as conn:
        assert conn.execute(text("DELETE FROM events WHERE position = 1")).rowcount == 1
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM events WHERE position = 2"))
    migrate.downgrade(engine, "0011")
    assert {"events", "event_heads"}.isdisjoint(user_tables(engine))
    assert "event_retention_days" not in {c["name"] for c in inspect(engine).get_columns("programs")}


# ---------------------------------------------------------------- 0014: the member directory


def test_0014_adds_profiles_and_close_times_and_its_downgrade_removes_them(empty_engine):
    """Members of before 0014 come through active with no profile; downgrade removes the table
    and the two columns."""
    from ledger.domain import credentials
    from ledger.domain.kinds import Role
    from ledger.service import members, programs
    from ledger.service.caller import Caller

    engine = empty_engine
    migrate.upgrade(engine)
    created = programs.create_program(engine, "before-directory")
    caller = Caller(created.program_id, credentials.key_id_of(created.admin_key), Role.ADMIN)
    members.enroll_member(engine, caller, "old")
    migrate.downgrade(engine, "0013")
    assert "member_profiles" not in user_tables(engine)
    assert {"closed_at", "erased_at"}.isdisjoint(c["name"] for c in inspect(engine).get_columns("members"))
    migrate.upgrade(engine)  # and on: today's code reads today's schema
    summary = members.get_member(engine, caller, "old")
    assert summary.state.closed_at is None and summary.state.erased_at is None
    assert summary.profile.email == "" and not summary.profile.marketing_consent


# ---------------------------------------------------------------- 0015: segments


def test_0015_gives_every_program_the_presets_and_the_refresh_fills_the_rest(empty_engine):
    """A program of 0014's time gets the five preset segments and an RFM window of 365 days;
    its members' figures and memberships wait for the first refresh, which the due-work leader
    runs at once (no cut points yet); downgrade removes it all."""
    from ledger.domain import credentials
    from ledger.domain.kinds import Role
    from ledger.service import earning, members, programs, segments
    from ledger.service.caller import Caller
    from ledger.service.earning import EarnCommand
    from ledger.service.idempotent import Mutation
    from ledger.domain.earning import OrderFacts
    from ledger.domain.kinds import Channel
    from ledger.service import clock
    from ledger.service.verify import verify

    from ledger.store.database import Database

    engine = empty_engine
    migrate.upgrade(engine)
    db = Database(engine)
    created = programs.create_program(db, "before-segments")
    caller = Caller(created.program_id, credentials.key_id_of(created.admin_key), Role.ADMIN)
    members.enroll_member(db, caller, "old")
    order = OrderFacts("o-1", 2500, "USD", clock.now())
    earning.earn(db, caller, Mutation("k-1", "Earn", "r-1"), EarnCommand("old", order, Channel.POS, ""))
    migrate.downgrade(engine, "0014")
    assert {"segments", "member_rfm", "segment_members", "rfm_cuts"}.isdisjoint(user_tables(engine))
    migrate.upgrade(engine, "0015")
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM segments ORDER BY name")).scalars().all()
        window = conn.execute(text("SELECT rfm_window_days FROM programs")).scalar_one()
        assert conn.execute(text("SELECT COUNT(*) FROM member_rfm")).scalar_one() == 0
    assert names == ["at_risk", "champions", "lapsed", "loyal", "new"] and window == 365
    due = segments.refresh_due(db, timedelta(days=1))
    assert [r.members for r in due] == [1]
    view = members.get_member(db, caller, "old").rfm
    assert view is not None and (view.figures.orders, view.figures.spend) == (1, 2500)
    assert view.profile.scores.frequency == 1  # one member: every cut point is its own value
    assert segments.refresh_due(db, timedelta(days=1)) == []  # refreshed: not due again today
    assert verify(db).clean
    migrate.downgrade(engine, "0014")
    assert {"segments", "member_rfm", "segment_members", "rfm_cuts"}.isdisjoint(user_tables(engine))
    assert "rfm_window_days" not in {c["name"] for c in inspect(engine).get_columns("programs")}


# ---------------------------------------------------------------- 0016: event delivery


def test_0016_adds_the_delivery_tables_and_its_downgrade_removes_them(empty_engine):
    """Webhooks, their retry queue and attempts, and the relay's positions: created empty
    on a ledger that has events, and gone again on downgrade (the events stay)."""
    from ledger.domain import credentials
    from ledger.domain.kinds import Role
    from ledger.service import members, programs
    from ledger.service.caller import Caller

    engine = empty_engine
    migrate.upgrade(engine, "0015")
    created = programs.create_program(engine, "before-delivery")
    members.enroll_member(engine, Caller(created.program_id, credentials.key_id_of(created.admin_key), Role.ADMIN), "m")
    delivery = {"webhooks", "webhook_deliveries", "webhook_attempts", "relay_positions"}
    assert delivery.isdisjoint(user_tables(engine))
    migrate.upgrade(engine, "0016")
    assert delivery <= user_tables(engine)
    with engine.connect() as conn:
        assert [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in sorted(delivery)] == [0, 0, 0, 0]
    migrate.downgrade(engine, "0015")
    assert delivery.isdisjoint(user_tables(engine))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 1


def test_0017_adds_the_liability_rollups_empty_and_its_downgrade_removes_them(empty_engine):
    """The rollup tables start empty on a ledger that has history (the first report rolls
    it up) and are gone again on downgrade, the ledger untouched."""
    from ledger.service import programs

    engine = empty_engine
    migrate.upgrade(engine, "0016")
    programs.create_program(engine, "before-rollups")
    rollups = {"liability_day_sources", "liability_rollups"}
    assert rollups.isdisjoint(user_tables(engine))
    migrate.upgrade(engine, "0017")
    assert rollups <= user_tables(engine)
    with engine.connect() as conn:
        assert [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in sorted(rollups)] == [0, 0]
    migrate.downgrade(engine, "0016")
    assert rollups.isdisjoint(user_tables(engine))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM programs")).scalar_one() == 1


# ---------------------------------------------------------------- 0018: room on members' pages


def _members_storage(engine: Engine) -> list[str] | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'members'")).scalar_one()


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)
def test_0018_leaves_members_pages_room_as_tables_py_says_and_its_downgrade_resets_it(empty_engine, tmp_path):
    """On PostgreSQL, 0018 gives members the fillfactor tables.py declares (compare_metadata
    cannot see storage parameters, so the table built straight from tables.py is the
    reference); rows written afterwards fill pages to about that share, so an expiry batch's
    updates of a page's members stay on the page (HOT); the downgrade resets it."""
    engine = empty_engine
    migrate.upgrade(engine, "0017")
    assert _members_storage(engine) is None
    migrate.upgrade(engine, "0018")
    with fresh_engine("postgresql", tmp_path) as reference:
        metadata.create_all(reference)
        declared = _members_storage(reference)
    assert declared == ["fillfactor=45"]
    assert _members_storage(engine) == declared
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO members (program_id, member_id, referral_code, status, enrolled_at, posted, held,"
                " last_seq, updated_at) SELECT 'p', 'm' || n, 'r' || n, 'ACTIVE', 0, 0, 0, 0, 0"
                " FROM generate_series(1, 2000) AS n"
            )
        )
    with engine.begin() as conn:
        # Every member rewritten in one transaction, as an expiry batch does: all on their pages.
        conn.execute(text("UPDATE members SET posted = 1, last_seq = 1, updated_at = 1"))
        hot, updated = conn.execute(
            text(
                "SELECT pg_stat_get_xact_tuples_hot_updated(oid), pg_stat_get_xact_tuples_updated(oid)"
                " FROM pg_class WHERE relname = 'members'"
            )
        ).one()
    assert (hot, updated) == (2000, 2000)
    migrate.downgrade(engine, "0017")
    assert _members_storage(engine) is None


# ---------------------------------------------------------------- 0019: no index of events by transaction


def test_0019_drops_the_events_index_by_transaction_and_its_downgrade_builds_it_again(empty_engine):
    """The index goes on both databases, the events stay, and verify still pairs every
    transaction with its event; the downgrade builds the index again, valid."""
    from ledger.domain import credentials
    from ledger.domain.kinds import Role
    from ledger.service import members, programs, support
    from ledger.service.caller import Caller
    from ledger.service.idempotent import Mutation
    from ledger.service.verify import verify

    def event_indexes() -> set[str]:
        return {index["name"] for index in inspect(engine).get_indexes("events")}

    engine = empty_engine
    migrate.upgrade(engine, "0018")
    created = programs.create_program(engine, "before-0019")
    caller = Caller(created.program_id, credentials.key_id_of(created.admin_key), Role.ADMIN)
    members.enroll_member(engine, caller, "m")
    support.adjust_points(engine, caller, Mutation("k-1", "AdjustPoints", "request-1"), "m", 50, "welcome")
    assert event_indexes() == {"ix_events_transaction"}
    migrate.upgrade(engine, "0019")
    assert event_indexes() == set()
    report = verify(engine)
    assert report.clean, report.breaches
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events WHERE transaction_id IS NOT NULL")).scalar_one() == 1
    migrate.downgrade(engine, "0018")
    assert event_indexes() == {"ix_events_transaction"}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            valid = conn.execute(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_events_transaction'::regclass")
            ).scalar_one()
        assert valid


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)
def test_0019_waits_for_a_long_reader_of_events_instead_of_failing_the_server(empty_engine):
    """DROP INDEX CONCURRENTLY waits for every transaction that has read events (a `verify`
    takes minutes) and nothing queues behind it, so the migration session's lock timeout is
    lifted for it: a server starting meanwhile waits, it does not fail."""
    engine = empty_engine
    migrate.upgrade(engine, "0018")
    reader = engine.connect()
    reader.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
    reader.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
    upgraded: list[BaseException | None] = []

    def upgrade() -> None:
        try:
            migrate.upgrade(engine, "0019")
            upgraded.append(None)
        except BaseException as error:  # handed to the test's thread
            upgraded.append(error)

    migrating = threading.Thread(target=upgrade)
    migrating.start()
    migrating.join(timeout=migrate.MIGRATION_LOCK_TIMEOUT_MS / 1000 + 1.5)
    assert migrating.is_alive() and upgraded == []  # still waiting for the reader, past the timeout
    reader.exec_driver_sql("COMMIT")
    reader.close()
    migrating.join(timeout=30)
    assert upgraded == [None]
    assert migrate.current_revision(engine) == "0019"
    assert "ix_events_transaction" not in {index["name"] for index in inspect(engine).get_indexes("events")}

"""Every statement the till's calls prepare runs on a generic plan, not planned afresh each time.

PostgreSQL plans a prepared statement for its actual values five times, then switches to
one generic plan (made without the values) unless that plan is dearer. A statement whose
only fitting index is partial on a literal (`WHERE kind = 'EARN'`) but which compares that
column with a parameter has no usable index in its generic plan: the generic plan scans
the table, so PostgreSQL keeps planning the statement for its values on every execution,
and the statement pays for planning as if it had never been prepared. The Earn prefetch
did exactly that (1.1 ms a run instead of 0.4 ms on the bench database) until the order's
earn was looked up with the literal kind; a refund looked its order's refunds up the same
way, with no index for them at all (migration 0008).

This drives each hot RPC through gRPC against a server with one database connection, on
a ledger big enough that a table scan costs more than an index lookup, and then reads
that session's pg_prepared_statements: every statement run more than five times must have
had a generic plan, and no generic plan may read one of the big tables whole.
"""

from __future__ import annotations

import re

import pytest

from bench.seed import seed
from ledger.api import server as grpc_server
from ledger.store.database import Database
from ledger.store.engine import create_engine_for
from tests.conftest import Api
from tests.databases import postgres_database
from tests.store.hot_calls import BIG_TABLES, CUSTOM_PLANS_FIRST, drive_the_hot_calls

# How ledger.store.postgres.prepared sent it: alone, or under a savepoint inside a transaction.
_PREPARED_BODY = re.compile(r"PREPARE ledger_\d+ AS (.*?)(?:; RELEASE SAVEPOINT ledger_prepare)?$", re.DOTALL)


def _body(row) -> str:
    return _PREPARED_BODY.search(row.statement).group(1)


def _ledger_scans(conn, row) -> list[str]:
    """The big tables the statement's generic plan reads whole."""
    arguments = f"({', '.join(['NULL'] * row.parameters)})" if row.parameters else ""
    plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN EXECUTE {row.name}{arguments}").scalars())
    return [table for table in re.findall(r"Seq Scan on (\w+)", plan) if table in BIG_TABLES]


@pytest.mark.timeout(300)
def test_hot_statements_run_on_generic_plans():
    with postgres_database() as url:
        # 4,000 transactions: enough that scanning a table costs more than an index lookup.
        setup = seed(url, members=2000, entries_per_member=2, name="generic-plans")
        engine = create_engine_for(url, pool_size=1)
        running = grpc_server.start(Database(engine), "127.0.0.1:0", max_workers=1)
        api = Api(f"127.0.0.1:{running.port}", setup["key"])
        try:
            drive_the_hot_calls(api, setup["members"])
            with engine.connect() as conn:  # the pool's one connection: the session that served the calls
                sessions = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = 'loyalty-ledger'"
                ).scalar_one()
                plans = conn.exec_driver_sql(
                    "SELECT name, statement, generic_plans, cardinality(parameter_types) AS parameters"
                    f" FROM pg_prepared_statements WHERE generic_plans + custom_plans > {CUSTOM_PLANS_FIRST}"
                ).all()
                scans = {_body(row): _ledger_scans(conn, row) for row in plans if row.generic_plans}
        finally:
            api.close()
            running.stop(1)
            engine.dispose()

    assert sessions == 1, "one session served every call, so its statements are all listed here"
    assert len(plans) >= 15, "the hot calls should have prepared and run their statements"
    replanned = [_body(row) for row in plans if row.generic_plans == 0]
    assert replanned == [], "planned afresh on every execution:\n\n" + "\n\n".join(replanned)
    scanning = {body: tables for body, tables in scans.items() if tables}
    assert scanning == {}, "generic plans scanning a big table:\n\n" + "\n\n".join(
        f"{tables}: {body}" for body, tables in scanning.items()
    )

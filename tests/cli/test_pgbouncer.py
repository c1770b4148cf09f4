"""The ledger through PgBouncer in transaction pooling mode (tests/pgbouncer.py).

- A representative subset of the integration suite's ledger scenarios (earn, redeem,
  hold and capture, refund, reverse, statement pages, concurrency on one member, replays of
  idempotency keys) runs in a pytest of its own with LOYALTY_TEST_THROUGH_PGBOUNCER=1, which
  puts the conftest's PostgreSQL backend behind a PgBouncer it starts (LOYALTY_PG_PREPARE=off).
  The whole suite runs that way too: README "Running in production".
- A `loyalty-ledger serve` whose LOYALTY_DATABASE_URL goes through PgBouncer and whose
  LOYALTY_SESSION_DATABASE_URL goes to PostgreSQL directly migrates, serves, leads the due
  work (its advisory lock held by a session of its own, named after it) and lapses holds;
  PgBouncer counts the transactions it carried.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests import databases
from tests.cli.processes import ServerProcess, free_port, run_ok, wait_until
from tests.cli.test_due_work_leader import INTERVAL_S, holds_lapse, postgres_lock_holders
from tests.databases import postgres_database
from tests.pgbouncer import PgBouncer, ensure_installed, prepare_database

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = [
    "tests/integration/test_ledger_rpcs.py::test_same_key_same_request_replays_the_identical_response[postgresql]",
    "tests/integration/test_ledger_rpcs.py::test_business_refusal_is_recorded_under_its_key[postgresql]",
    "tests/integration/test_ledger_rpcs.py::test_redeem_debits_and_never_overdraws[postgresql]",
    "tests/integration/test_ledger_rpcs.py::test_reverse_earn_and_redeem_are_exact_negations_once[postgresql]",
    "tests/integration/test_ledger_rpcs.py::test_statement_is_newest_first_and_pages_cover_everything_once[postgresql]",
    "tests/integration/test_lifecycle_holds.py::test_capture_whole_hold[postgresql]",
    "tests/integration/test_lifecycle_holds.py::test_retries_with_the_same_key_apply_once[postgresql]",
    "tests/integration/test_lifecycle_refunds.py::test_partial_refunds_claw_back_in_proportion[postgresql]",
    "tests/integration/test_concurrency.py::test_concurrent_redeems_spend_exactly_the_available_points[postgresql]",
    "tests/integration/test_concurrency.py::test_one_key_raced_by_different_requests_applies_exactly_one[postgresql]",
    "tests/integration/test_concurrency.py::test_redeem_retry_storm_applies_once[postgresql]",
]


@pytest.fixture(scope="module")
def pgbouncer_installed():
    found, reason = ensure_installed()
    if found is None:
        pytest.skip(reason)
    return found


def test_ledger_scenarios_pass_through_pgbouncer_in_transaction_pooling(pgbouncer_installed):
    env = {**os.environ, "LOYALTY_TEST_THROUGH_PGBOUNCER": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("LOYALTY_PG_PREPARE", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SCENARIOS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert re.search(rf"\b{len(SCENARIOS)} passed\b", done.stdout), done.stdout[-2000:]


def test_a_server_through_pgbouncer_leads_the_due_work_on_a_direct_session(pgbouncer_installed):
    with postgres_database("loyalty_bouncer") as direct_url:
        database = make_url(direct_url).database
        admin = databases.admin_connection()
        try:
            prepare_database(admin, database)
        finally:
            admin.close()
        with PgBouncer(upstream_port=make_url(direct_url).port or 5432) as bouncer:
            pooled_url = bouncer.url(database)
            os.environ["LOYALTY_SESSION_DATABASE_URL"] = direct_url
            os.environ["LOYALTY_PG_PREPARE"] = "off"
            try:
                _, key = run_ok(pooled_url, "program", "create", "bouncer")
                extra = ("--workers", "4", "--due-work-interval", str(INTERVAL_S))
                with ServerProcess.serve(pooled_url, f"127.0.0.1:{free_port()}", extra=extra) as server:
                    server.wait_serving()
                    server.wait_logged("this process now leads the due work", timeout=10)
                    holders = postgres_lock_holders(direct_url)
                    assert holders == [f"loyalty-ledger leader {_host()}:{server.process.pid}"], holders

                    class One:  # holds_lapse's view of a fleet: its url and lapsing log lines
                        url = direct_url
                        servers = [server]

                    holds_lapse(One, server.target, key, "bouncer")  # type: ignore[arg-type]
                    wait_until(lambda: server.logged("due work"), 5, "no due work logged")
                    assert sum(line["holds_lapsed"] for line in server.logged("due work")) == 3
                    assert not server.logged("this process lost the due-work leadership"), server.stderr[-3000:]
            finally:
                os.environ.pop("LOYALTY_SESSION_DATABASE_URL", None)
                os.environ.pop("LOYALTY_PG_PREPARE", None)
            stats = {row[0]: row for row in bouncer.show("STATS")}
            assert database in stats, stats
            assert stats[database][1] > 20, stats[database]  # total_xact_count: the till's calls went through it


def _host() -> str:
    import socket

    return socket.gethostname()

"""`python -m bench seed --due-lots` (PostgreSQL only, like the seeder): the ledger it makes is
verify-clean, every member holds one lot already past its expiry, and `loyalty-ledger expire`
expires each of them exactly once, leaving `verify` clean. `--no-analyze` after a first
program: a second program seeded on statistics that know only the first, verify-clean, its
tables left unanalysed with autovacuum off.
"""

from __future__ import annotations

import subprocess
import sys

from bench.seed import SEEDED_TABLES
from tests.cli.processes import environment, run_ok
from tests.databases import connect, postgres_database

MEMBERS = 120
POINTS_PER_MEMBER = 10  # bench.seed.POINTS_PER_ENTRY, one entry each


def _seed(url: str, tmp_path, *options: str) -> None:
    options = options or ("--members", str(MEMBERS), "--due-lots")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "seed", *options, "--out", str(tmp_path / "setup.json")],
        env=environment(url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_seeded_due_lots_expire_once_and_the_ledger_stays_clean(tmp_path):
    with postgres_database() as url:
        _seed(url, tmp_path)
        run_ok(url, "verify")
        first = run_ok(url, "expire")[-1]
        assert f"members with expired points: {MEMBERS};" in first
        assert f"points expired: {MEMBERS * POINTS_PER_MEMBER};" in first
        run_ok(url, "verify")
        again = run_ok(url, "expire")[-1]
        assert "members with expired points: 0; points expired: 0;" in again


def test_a_program_seeded_without_analyze_is_unknown_to_the_statistics(tmp_path):
    with postgres_database() as url:
        _seed(url, tmp_path, "--members", "50", "--name", "first")  # ends with VACUUM (ANALYZE)
        _seed(url, tmp_path, "--members", "400", "--entries", "3", "--name", "second", "--no-analyze")
        run_ok(url, "verify")
        conn = connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT c.relname, s.n_mod_since_analyze, c.reloptions FROM pg_stat_user_tables s"
                    " JOIN pg_class c ON c.oid = s.relid WHERE c.relname = ANY (%s)",
                    (list(SEEDED_TABLES),),
                )
                found = {name: (modified, options) for name, modified, options in cur.fetchall()}
        finally:
            conn.close()
    assert set(found) == set(SEEDED_TABLES)
    for table, (modified, options) in found.items():
        assert modified >= 400, table  # the second program's rows arrived after the last analyze
        assert "autovacuum_enabled=false" in options, table

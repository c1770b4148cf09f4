"""`python -m bench seed --due-lots` (PostgreSQL only, like the seeder): the ledger it makes is
verify-clean, every member holds one lot already past its expiry, and `loyalty-ledger expire`
expires each of them exactly once, leaving `verify` clean.
"""

from __future__ import annotations

import subprocess
import sys

from tests.cli.processes import environment, run_ok
from tests.databases import postgres_database

MEMBERS = 120
POINTS_PER_MEMBER = 10  # bench.seed.POINTS_PER_ENTRY, one entry each


def _seed(url: str, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "seed", "--members", str(MEMBERS), "--due-lots", "--out", str(tmp_path / "setup.json")],
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

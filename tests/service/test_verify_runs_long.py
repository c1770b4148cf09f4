"""`verify` reads the whole ledger, so on a big ledger (or a slow machine) its statements run
past the per-statement limit every connection gets for the till's calls (15 s). It lifts that
limit for its own read-only transaction: here the limit is 20 ms, and verify still finishes
and finds the seeded ledger clean.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from bench.seed import seed
from ledger.service.verify import verify
from ledger.store import engine as engines
from ledger.store.engine import create_engine_for
from tests.databases import postgres_database


def test_verify_is_not_cut_short_by_the_statement_timeout(monkeypatch):
    with postgres_database() as url:
        seeded = seed(url, members=20_000, entries_per_member=3, name="verify-long")
        monkeypatch.setattr(engines, "STATEMENT_TIMEOUT_MS", 20)
        engine = create_engine_for(url, pool_size=1)
        try:
            with engine.connect() as conn:  # the limit is in force for other statements
                with pytest.raises(OperationalError, match="statement timeout"):
                    conn.exec_driver_sql("SELECT pg_sleep(0.2)")
            report = verify(engine)
        finally:
            engine.dispose()
    assert report.clean, report.breaches
    assert report.counts["members"] == seeded["members"] == 20_000
    assert report.counts["entries"] == seeded["entries"] + 1 == 60_001  # and the hot member's top-up

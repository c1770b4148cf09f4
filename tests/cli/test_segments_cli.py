"""`loyalty-ledger segments refresh` and `segments export NAME`, run as the installed console
script on an SQLite database (the SQL is the same on PostgreSQL: tests/store and tests/integration
run it there): the refresh fills the presets, the export writes the segment's members as CSV."""

from __future__ import annotations

import csv

from ledger.domain import credentials
from ledger.domain.earning import OrderFacts
from ledger.domain.kinds import Channel, Role
from ledger.service import clock, earning, members
from ledger.service.caller import Caller
from ledger.service.earning import EarnCommand
from ledger.service.idempotent import Mutation
from ledger.store.database import Database
from ledger.store.engine import create_engine_for
from tests.cli.processes import run_cli, run_ok
from tests.databases import sqlite_database


def test_refresh_then_export_a_segment_as_csv(tmp_path):
    with sqlite_database(tmp_path) as url:
        program_id, admin_key = run_ok(url, "program", "create", "shop")
        db = Database(create_engine_for(url, pool_size=1))
        try:
            caller = Caller(program_id, credentials.key_id_of(admin_key), Role.ADMIN)
            for member_id in ("a-1", "a-2", "b-1"):
                members.enroll_member(db, caller, member_id)
            order = OrderFacts("o-1", 2500, "USD", clock.now())
            earning.earn(db, caller, Mutation("k-1", "Earn", "r-1"), EarnCommand("b-1", order, Channel.POS, ""))
        finally:
            db.dispose()
        [line] = run_ok(url, "segments", "refresh")
        assert line.startswith(f"program {program_id}: members 3; entered ")
        out = tmp_path / "new.csv"
        run_ok(url, "segments", "export", "new", "-o", str(out))
        rows = list(csv.DictReader(out.open()))
        assert [r["member_id"] for r in rows] == ["a-1", "a-2"]  # b-1 has ordered: not `new`
        assert rows[0]["frequency"] == "0" and rows[0]["recency_days"] == "" and rows[0]["frequency_score"] == "1"
        missing = run_cli(url, "segments", "export", "nope")
        assert missing.returncode == 1 and "does not exist" in missing.stderr

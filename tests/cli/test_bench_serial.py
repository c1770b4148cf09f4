"""`python -m bench serial` on a seeded ledger: one use case in a loop in-process, its wall
time and CPU per call, and (for earn and redeem) the calls really written to the ledger."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from ledger.store.engine import create_engine_for
from tests.cli.processes import environment
from tests.databases import postgres_database

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(earn|redeem|get-member): (\d+) calls one after another, per call: wall ([\d.]+) ms, "
    r"Python CPU ([\d.]+) ms, PostgreSQL CPU ([\d.]+) ms$",
    re.M,
)


def _bench(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, env=environment(url), capture_output=True, text=True, timeout=180
    )


def _transactions(url: str, kind: str) -> int:
    engine = create_engine_for(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM transactions WHERE kind = :kind"), {"kind": kind}).scalar_one()
    finally:
        engine.dispose()


def test_serial_reports_cost_per_call_of_earn_redeem_and_get_member(tmp_path):
    setup = str(tmp_path / "setup.json")
    with postgres_database() as url:
        seeded = _bench(url, "seed", "--members", "200", "--out", setup)
        assert seeded.returncode == 0, seeded.stderr
        for operation in ("earn", "redeem", "get-member"):
            before = {kind: _transactions(url, kind) for kind in ("EARN", "REDEEM")}
            done = _bench(url, "serial", "--setup", setup, "--operation", operation, "--calls", "300", "--warmup", "10")
            assert done.returncode == 0, done.stdout + done.stderr
            found = LINE.search(done.stdout)
            assert found, done.stdout
            assert found.group(1) == operation and int(found.group(2)) == 300
            wall, python_cpu, database_cpu = (float(found.group(i)) for i in (3, 4, 5))
            assert wall > 0 and python_cpu > 0 and database_cpu > 0, found.group(0)
            # warm-up and measured calls each wrote one transaction of their kind; get-member none
            written = {kind: _transactions(url, kind) - before[kind] for kind in before}
            assert written == {"EARN": 310 if operation == "earn" else 0, "REDEEM": 310 if operation == "redeem" else 0}


def test_serial_needs_a_database(tmp_path):
    done = _bench(None, "serial", "--setup", str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert "LOYALTY_DATABASE_URL" in done.stderr


def test_serial_needs_at_least_one_call(tmp_path):
    unused_url = "postgresql://postgres@127.0.0.1:5432/postgres"  # refused before any connection
    done = _bench(unused_url, "serial", "--setup", str(tmp_path / "missing.json"), "--calls", "0")
    assert done.returncode == 2
    assert "--calls must be at least 1" in done.stderr

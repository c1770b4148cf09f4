"""SQLite runs with synchronous=FULL, and `python -m bench sqlite-sync` measures what that costs.

An acknowledged write must survive a power loss on the embedded default too: in WAL mode,
NORMAL syncs the WAL only at checkpoints. The bench tool serves a new file per setting from
a server process of its own and reports both settings, alternating.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ledger.store.engine import create_engine_for
from tests.cli.processes import environment

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\s+1\s+(FULL|NORMAL)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", re.M)


def test_sqlite_connections_sync_every_commit(tmp_path):
    engine = create_engine_for(f"sqlite:///{tmp_path / 'durable.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
    finally:
        engine.dispose()


def test_bench_sqlite_sync_measures_full_against_normal(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "sqlite-sync", "--calls", "20", "--rounds", "1", "--concurrency", "2", "--dir", str(tmp_path)],
        cwd=ROOT,
        env=environment(None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = ROW.findall(done.stdout)
    assert [row[0] for row in rows] == ["FULL", "NORMAL"], done.stdout
    assert all(float(row[1]) > 0 for row in rows)
    assert "median: FULL" in done.stdout
    assert list(tmp_path.iterdir()) == [], "the SQLite files are removed afterwards"

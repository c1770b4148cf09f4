"""`python -m bench soak`: the drift verdict, and a few seconds of real fixed-rate load
against a server subprocess (the long soak itself is run by hand, see bench/soak.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bench.soak import Interval, judge, read_rss_kb
from tests.faults.harness import Op, enroll, ledger_on_postgres, retry_until_final

ROOT = Path(__file__).resolve().parents[2]


def _interval(index, p99, rss, calls=100, rate=10.0, errors=None):
    return Interval(index, 10.0, calls, rate, p99 / 2, p99, errors or {}, rss)


def test_verdict_flat_and_each_kind_of_drift():
    assert judge([_interval(1, 10, 1000), _interval(2, 19, 1190)], rate=10).flat
    assert "p99" in judge([_interval(1, 10, 1000), _interval(2, 25, 1000)], rate=10).reasons[0]
    assert "RSS" in judge([_interval(1, 10, 1000), _interval(2, 10, 1300)], rate=10).reasons[0]
    assert "failed" in judge([_interval(1, 10, 1000), _interval(2, 10, 1000, errors={"UNAVAILABLE": 5})], rate=10).reasons[0]
    assert "rate" in judge([_interval(1, 10, 1000), _interval(2, 10, 1000, rate=5.0)], rate=10).reasons[0]
    assert not judge([_interval(1, 10, 1000)], rate=10).flat


def test_rss_is_read_from_proc():
    assert read_rss_kb(os.getpid()) > 0
    assert read_rss_kb(2**22 + 12345) is None


def test_soak_runs_a_fixed_rate_mix_and_prints_intervals_and_a_verdict(tmp_path):
    with ledger_on_postgres("soak-smoke") as ledger:
        server = ledger.start()
        members = [f"s{i}" for i in range(20)]
        enroll(ledger, *members)
        retry_until_final(ledger, [Op(f"setup-{m}", "earn", m, 20_000) for m in members])
        setup = tmp_path / "setup.json"
        setup.write_text(
            json.dumps(
                {"program_id": ledger.program_id, "key": ledger.admin_key, "members": len(members),
                 "member_prefix": "s", "hot_member": "s0"}
            )
        )
        command = [
            sys.executable, "-m", "bench", "soak", "--target", ledger.target, "--setup", str(setup),
            "--minutes", str(6 / 60), "--interval", "2", "--warmup", "1", "--rate", "40",
            "--server-pid", str(server.process.pid), "--json", str(tmp_path / "soak.json"),
        ]  # fmt: skip
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if re.match(r"^\s+\d+\s+\d+\s+\d+", line)]
    assert len(lines) == 3, done.stdout
    assert re.search(r"^verdict: (FLAT|DRIFT)", done.stdout, re.M), done.stdout
    result = json.loads((tmp_path / "soak.json").read_text())
    assert len(result["intervals"]) == 3
    for interval in result["intervals"]:
        assert interval["errors"] == {}, done.stdout
        assert 30 <= interval["rate"] <= 50, done.stdout  # the load is held at the fixed rate
        assert interval["rss_kb"] > 10_000
        assert 0 < interval["p50_ms"] <= interval["p99_ms"]

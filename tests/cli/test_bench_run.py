"""`python -m bench run` against a real server on a seeded ledger: the table it prints and
the report it writes, and with --server-pid the CPU per call of the server, of this
machine's PostgreSQL and of the load generator, read from /proc while each scenario runs,
and the ceiling: the ratio to health each scenario could reach at most if the server's
work beyond the transport were free.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.processes import ServerProcess, environment
from tests.databases import postgres_database

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"(\d+(?:\.\d+)?)"


def _row(scenario: str, text: str) -> list[str]:
    found = re.search(rf"^\| {scenario} \|(.*)\|$", text, re.M)
    assert found, text
    return [cell.strip() for cell in found.group(1).split("|")]


def test_bench_run_reports_throughput_latency_and_cpu_per_call(tmp_path):
    with postgres_database() as url:
        seeded = subprocess.run(
            [sys.executable, "-m", "bench", "seed", "--members", "200", "--out", str(tmp_path / "setup.json")],
            cwd=ROOT, env=environment(url), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr
        with ServerProcess.serve(url, extra=("--due-work-interval", "0")) as server:
            server.wait_serving()
            report = tmp_path / "report.md"
            done = subprocess.run(
                [sys.executable, "-m", "bench", "run", "--target", server.target, "--setup", str(tmp_path / "setup.json"),
                 "--scenario", "get-member", "--duration", "2", "--concurrency", "8", "--processes", "1",
                 "--server-pid", str(server.process.pid), "--report", str(report)],
                cwd=ROOT, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "server CPU ms/call | database CPU ms/call | load generator CPU ms/call | ceiling x health |" in done.stdout
    measured = {}
    for scenario in ("health", "get-member"):
        cells = _row(scenario, done.stdout)
        assert len(cells) == 11, cells  # after the name: 7 columns, then server, database, load, ceiling
        assert int(cells[0]) > 0 and cells[6] == "none", cells  # ok calls, no errors
        server_ms, database_ms, load_ms, ceiling = (float(cell) for cell in cells[7:])
        assert server_ms > 0 and load_ms > 0 and ceiling > 0, cells
        if scenario == "get-member":
            assert database_ms > 0, cells  # every call reads the ledger
        measured[scenario] = (float(cells[1]), server_ms, database_ms, load_ms, ceiling)
    # the ceiling keeps get-member's database and load-generator CPU, charges health's
    # server CPU for the transport, and fills this machine's cores (the cells are rounded,
    # hence the slack)
    health_throughput, health_server_ms = measured["health"][0], measured["health"][1]
    _, _, database_ms, load_ms, ceiling = measured["get-member"]
    expected = (os.cpu_count() or 1) * 1000 / (database_ms + load_ms + health_server_ms) / health_throughput
    assert ceiling == pytest.approx(expected, rel=0.1), (ceiling, expected)
    assert "ceiling x health: the most a scenario could reach" in report.read_text()
    assert _row("get-member", report.read_text()) == _row("get-member", done.stdout)

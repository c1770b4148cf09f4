"""`python -m bench run` against a real server on a seeded ledger: the table it prints and
the report it writes, and with --server-pid the CPU per call of the server, of this
machine's PostgreSQL and of the load generator, read from /proc while each scenario runs,
and the ratio to health each scenario could reach if the server's own work were free.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
    cpu = {}
    for scenario in ("health", "get-member"):
        cells = _row(scenario, done.stdout)
        assert len(cells) == 11, cells  # after the name: 7 columns, then server, database, load, ceiling
        assert int(cells[0]) > 0 and cells[6] == "none", cells  # ok calls, no errors
        server_ms, database_ms, load_ms, ceiling = (float(cell) for cell in cells[7:])
        assert server_ms > 0 and load_ms > 0, cells
        if scenario == "get-member":
            assert database_ms > 0, cells  # every call reads the ledger
        cpu[scenario] = (server_ms, database_ms, load_ms, ceiling)
    # health's own floor is all of its CPU; get-member's keeps its database and load-generator
    # CPU and pays health's server CPU for the transport (printed to two places, hence the slack)
    assert cpu["health"][3] == 1.0
    health_server, _, _, _ = cpu["health"]
    _, database_ms, load_ms, ceiling = cpu["get-member"]
    expected = sum(cpu["health"][:3]) / (database_ms + load_ms + health_server)
    assert abs(ceiling - expected) <= 0.02 * expected + 0.02, (ceiling, expected)
    assert _row("get-member", report.read_text()) == _row("get-member", done.stdout)

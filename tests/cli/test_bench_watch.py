"""`python -m bench watch` against a real server on a seeded ledger (with the events key `bench
seed` now writes): Earn ok/s alone and with the watchers, their ratio, CPU per Earn, and for
every watcher every event once, in commit order, against ListEvents, with the delay from
the Earn's return to the watcher's receipt. Not a timing test: only that the tool measures
and judges (its verdict on the delay depends on the machine)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.cli.processes import ServerProcess, environment
from tests.databases import postgres_database

ROOT = Path(__file__).resolve().parents[2]


def test_bench_watch_reports_exactly_once_delivery_delay_and_the_cost_of_the_watchers(tmp_path):
    setup = tmp_path / "setup.json"
    with postgres_database() as url:
        seeded = subprocess.run(
            [sys.executable, "-m", "bench", "seed", "--members", "200", "--out", str(setup)],
            cwd=ROOT, env=environment(url), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr
        assert json.loads(setup.read_text())["events_key"].startswith("lk_")
        with ServerProcess.serve(url, extra=("--due-work-interval", "0")) as server:
            server.wait_serving()
            done = subprocess.run(
                [sys.executable, "-m", "bench", "watch", "--target", server.target, "--setup", str(setup),
                 "--watchers", "4", "--concurrency", "8", "--processes", "1", "--duration", "1",
                 "--server-pid", str(server.process.pid)],
                cwd=ROOT, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # (errors are not judged here: on a machine shared with other suites a call may find
    # PostgreSQL's connections all taken)
    alone = re.search(r"^\| 1 \| 0 \| (\d+) \| (\d+) \| 1\.00 \|.*\| [^|]+ \| ([-\d.]+) \| ([-\d.]+) \| - \|$", out, re.M)
    watched = re.search(r"^\| 1 \| 4 \| (\d+) \| (\d+) \| ([\d.]+) \|.*\| [^|]+ \| ([-\d.]+) \| ([-\d.]+) \| ([\d.]+) \|$", out, re.M)  # fmt: skip
    assert alone and watched, out
    assert int(alone.group(1)) > 0 and int(watched.group(1)) > 0
    assert float(watched.group(4)) > 0 and float(watched.group(6)) > 0  # server and watcher CPU per Earn
    assert re.search(r"^Earn ok/s with 4 watchers / without: [\d.]+$", out, re.M), out
    # every watcher saw exactly the events ListEvents has (at least the watched load's Earns), once, in order
    exact = re.search(r"exactly once, in commit order: 4 of 4 watcher-rounds .* \((\d+) events; missing 0, out of order 0, not in ListEvents 0", out)  # fmt: skip
    assert exact and int(exact.group(1)) >= int(watched.group(1)), out
    pairs = re.search(r"delay, Earn returned -> watcher received \((\d+) watcher x Earn pairs\): p50 -?\d+ ms, p99 -?\d+ ms", out)  # fmt: skip
    assert pairs and int(pairs.group(1)) == 4 * int(watched.group(1)), out
    assert re.search(r"^target \(.*\): (MET|NOT MET)$", out, re.M), out

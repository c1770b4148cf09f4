"""`python -m bench scale`: the ratio arithmetic and verdict, and a short real run over two
tiny seeded ledgers, each served by its own server subprocess (the 10k / 10M comparison
itself is run by hand, see bench/scale.py and the README's Performance section)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.scale import Measurement, compare, failures, verdict
from tests.cli.processes import environment, free_port
from tests.databases import postgres_database

ROOT = Path(__file__).resolve().parents[2]


def _m(ledger, repetition, scenario, p99):
    return Measurement(ledger, repetition, scenario, 100, 10.0, p99 / 2, p99)


def test_ratios_are_of_median_p99s_to_the_first_ledger():
    measurements = [
        _m("small", 1, "get-member", 10), _m("big", 1, "get-member", 12),
        _m("small", 2, "get-member", 20), _m("big", 2, "get-member", 16),
        _m("small", 1, "statement", 10), _m("big", 1, "statement", 40),
        _m("small", 2, "statement", 10), _m("big", 2, "statement", 20),
        _m("small", 1, "health", 1), _m("big", 1, "health", 9),
    ]  # fmt: skip
    rows = {(row.scenario, row.ledger): row for row in compare(measurements, ["small", "big"])}
    assert set(rows) == {(s, size) for s in ("get-member", "statement") for size in ("small", "big")}
    assert rows["get-member", "small"].ratio == 1.0
    assert rows["get-member", "big"].p99s_ms == [12, 16]
    assert rows["get-member", "big"].ratio == 14 / 15
    assert rows["statement", "big"].ratio == 3.0
    flat, reasons = verdict(list(rows.values()), max_ratio=1.5)
    assert not flat and len(reasons) == 1 and reasons[0].startswith("statement p99 on big is 3.00 x")
    assert verdict([rows["get-member", "small"], rows["get-member", "big"]], max_ratio=1.5) == (True, [])
    assert failures(measurements) == []
    broken = Measurement("big", 2, "statement", 0, 0.0, 1.0, 2.0, {"UNAVAILABLE": 7})
    assert failures([*measurements, broken]) == ["statement on big (repetition 2) had errors {'UNAVAILABLE': 7}"]


def test_scale_serves_each_ledger_in_turn_and_prints_ratios(tmp_path):
    with postgres_database("loyalty_scale") as small, postgres_database("loyalty_scale") as big:
        args = []
        for label, url, entries in (("small", small, 1), ("big", big, 5)):
            setup = tmp_path / f"setup-{label}.json"
            seeded = subprocess.run(
                [sys.executable, "-m", "bench", "seed", "--members", "30", "--entries", str(entries), "--out", str(setup)],
                cwd=ROOT, env=environment(url), capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert seeded.returncode == 0, seeded.stdout + seeded.stderr
            args += ["--ledger", label, url, str(setup)]
        command = [
            sys.executable, "-m", "bench", "scale", *args, "--repeat", "2", "--duration", "0.5", "--warmup", "0.25",
            "--concurrency", "4", "--processes", "1", "--json", str(tmp_path / "scale.json"),
            "--listen", f"127.0.0.1:{free_port()}", "--logs", str(tmp_path / "logs"),
        ]  # fmt: skip
        done = subprocess.run(command, cwd=ROOT, env=environment(None), capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("## ")] == [
        "## small: 30 entries, 30 members, repetition 1",
        "## big: 150 entries, 30 members, repetition 1",
        "## small: 30 entries, 30 members, repetition 2",
        "## big: 150 entries, 30 members, repetition 2",
    ], done.stdout
    result = json.loads((tmp_path / "scale.json").read_text())
    assert result["verdict"] in ("FLAT", "GROWS") and f"verdict: {result['verdict']}" in done.stdout, done.stdout
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "server-big-1.log", "server-big-2.log", "server-small-1.log", "server-small-2.log"
    ]  # fmt: skip
    assert "serving on port" in (tmp_path / "logs" / "server-big-2.log").read_text()
    assert len(result["measurements"]) == 2 * 2 * 3  # repetitions x ledgers x (health + 2 scenarios)
    for measurement in result["measurements"]:
        assert measurement["errors"] == {}, done.stdout
        assert measurement["ok"] > 0 and 0 < measurement["p50_ms"] <= measurement["p99_ms"]
    big_rows = [row for row in result["comparison"] if row["ledger"] == "big"]
    assert {row["scenario"] for row in big_rows} == {"get-member", "statement"}
    assert all(len(row["p99s_ms"]) == 2 and row["ratio"] > 0 for row in big_rows)

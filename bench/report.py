"""Prints result rows and writes the Markdown report with a latency plot (matplotlib)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from bench.stats import Sample

HEADER = "| scenario | ok calls | throughput (ok/s) | x health | p50 ms | p95 ms | p99 ms | errors |"
CPU_COLUMNS = " server CPU ms/call | database CPU ms/call | load generator CPU ms/call | ceiling x health |"


def header(health: Sample) -> str:
    """The table's header, with the CPU columns when the server's CPU was measured
    (bench run --server-pid: every sample of the run has them, or none does)."""
    return HEADER + (CPU_COLUMNS if health.server_cpu_s is not None else "")


def row(name: str, sample: Sample, health: Sample) -> str:
    ratio = sample.throughput / health.throughput if health.throughput else 0.0
    errors = ", ".join(f"{code}: {n}" for code, n in sorted(sample.errors().items())) or "none"
    line = (
        f"| {name} | {sample.ok} | {sample.throughput:.0f} | {ratio:.2f} | {sample.percentile(50):.1f} | "
        f"{sample.percentile(95):.1f} | {sample.percentile(99):.1f} | {errors} |"
    )
    if health.server_cpu_s is None:
        return line
    # server, database and load generator all run on this machine (--server-pid reads its /proc)
    cpu, ceiling = sample.cpu_ms_per_call(), sample.ceiling(health, os.cpu_count() or 1)
    cells = ["-"] * 3 if cpu is None else [f"{ms:.2f}" for ms in cpu]
    cells.append("-" if ceiling is None else f"{ceiling:.2f}")
    return line + "".join(f" {cell} |" for cell in cells)


def print_row(name: str, sample: Sample, health: Sample) -> None:
    print(row(name, sample, health), flush=True)


def write(path: str, results: dict[str, Sample], args: dict, setup: dict) -> None:
    health = results["health"]
    lines = [
        f"# Benchmark {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"concurrency {args['concurrency']}, {args['duration']:.0f} s per scenario, {args['processes']} load processes, "
        f"{setup['members']} members, {setup.get('entries', 0)} seeded entries",
        "",
        header(health),
        "|---" * header(health).count(" |") + "|",
        *[row(name, sample, health) for name, sample in results.items()],
    ]
    if health.server_cpu_s is not None:
        lines += [
            "",
            f"ceiling x health: the most a scenario could reach with all {os.cpu_count()} cores busy if each call "
            "cost only its database and load-generator CPU and a health call's server CPU (bench/stats.py)",
        ]
    plot = Path(path).with_suffix(".png")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(8, 4.5))
        for name, sample in results.items():
            ordered = sorted(sample.latencies_ms)
            if ordered:
                axis.plot([100 * i / len(ordered) for i in range(len(ordered))], ordered, label=name)
        axis.set_xlabel("percentile")
        axis.set_ylabel("latency (ms)")
        axis.set_yscale("log")
        axis.set_title("Latency by scenario")
        axis.legend()
        figure.tight_layout()
        figure.savefig(plot, dpi=100)
        lines += ["", f"![latency]({plot.name})"]
    except ImportError:
        lines += ["", "(install matplotlib for the latency plot)"]
    Path(path).write_text("\n".join(lines) + "\n")

"""`python -m bench scale`: do the reads stay flat as the ledger grows? Serves each seeded
ledger in turn from a fresh server, measures `health`, `get-member` and `statement` (a page
of 50, random members) on it, and prints each scenario's p99 per ledger and its ratio to the
first (smallest) ledger's.

  python -m bench scale --duration 15 \
      --ledger 10k postgresql://postgres@127.0.0.1:5432/bench_10k bench/out/setup-10k.json \
      --ledger 10m postgresql://postgres@127.0.0.1:5432/bench_10m bench/out/setup-10m.json

Each ledger was seeded beforehand with `python -m bench seed` (LOYALTY_DATABASE_URL set to
its database). The ledgers are measured interleaved, --repeat times (10k, 10m, 10k, 10m, ...),
because a shared machine's noise comes and goes: a quiet minute should not favour one size.
The verdict compares the median p99 over the repetitions: FLAT when every scenario's ratio to
the first ledger is at most --max-ratio (1.5), else GROWS (exit code 1); INVALID (exit code 2)
when any call failed or a server died, since then the latencies are not of the reads. Each
server's output goes to --logs (one file per start), and the tail is printed if it dies.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import report, runner
from bench.scenarios import Context

SCENARIOS = ("get-member", "statement")
SERVING = re.compile(r"serving on port (\d+)")
START_TIMEOUT = 120
# Below the kernel's ephemeral range (32768-60999): no client socket of another process on this
# machine is handed this port, which port 0 (any free port) would not promise across a run.
DEFAULT_LISTEN = "127.0.0.1:29471"


@dataclass
class Ledger:
    label: str
    url: str
    setup: Path


@dataclass
class Measurement:
    ledger: str
    repetition: int
    scenario: str
    ok: int
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class Comparison:
    scenario: str
    ledger: str
    p99s_ms: list[float]
    median_p99_ms: float
    ratio: float  # median p99 over the first ledger's median p99


def compare(measurements: list[Measurement], ledgers: list[str]) -> list[Comparison]:
    """Per scenario and ledger: the p99 of each repetition, their median and its ratio to the first ledger's."""
    rows = []
    for scenario in SCENARIOS:
        base = None
        for label in ledgers:
            p99s = [m.p99_ms for m in measurements if m.scenario == scenario and m.ledger == label]
            if not p99s:
                continue
            median = statistics.median(p99s)
            base = median if base is None else base
            rows.append(Comparison(scenario, label, p99s, median, median / base if base else 0.0))
    return rows


def verdict(rows: list[Comparison], max_ratio: float) -> tuple[bool, list[str]]:
    reasons = [
        f"{row.scenario} p99 on {row.ledger} is {row.ratio:.2f} x the first ledger's (limit {max_ratio})"
        for row in rows
        if row.ratio > max_ratio
    ]
    return not reasons, reasons


class Server:
    """`loyalty-ledger serve` on one ledger's database, started and stopped around its measurement."""

    def __init__(self, url: str, listen: str, log: Path) -> None:
        cli = Path(sys.executable).parent / "loyalty-ledger"
        env = {**os.environ, "LOYALTY_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
        command = [str(cli), "serve", "--listen", listen, "--due-work-interval", "0"]
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self._log = log.open("w")
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output: list[str] = []
        self.port: int | None = None
        self._serving = threading.Event()
        self._reader = threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _drain(self, stream) -> None:
        for line in stream:
            self._log.write(line)
            self.output = self.output[-200:] + [line.rstrip("\n")]
            match = SERVING.search(line)
            if match:
                self.port = int(match.group(1))
                self._serving.set()

    def exited(self) -> int | None:
        return self.process.poll()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output[-lines:])

    def wait_serving(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._serving.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the server did not start:\n" + "\n".join(self.output[-30:]))
        target = f"127.0.0.1:{self.port}"
        with grpc.insecure_channel(target) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30, wait_for_ready=True)
        return target

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        self._log.close()


def measure(ledger: Ledger, repetition: int, args) -> list[Measurement]:
    setup = json.loads(ledger.setup.read_text())
    ctx = Context.from_setup(setup)
    print(f"\n## {ledger.label}: {setup.get('entries', '?')} entries, {setup['members']} members, repetition {repetition}")
    print(report.HEADER, flush=True)
    server = Server(ledger.url, args.listen, Path(args.logs) / f"server-{ledger.label}-{repetition}.log")
    try:
        target = server.wait_serving()
        if args.warmup > 0:  # opens the server's pooled connections; not counted
            for name in SCENARIOS:
                runner.run(target, name, ctx, args.concurrency, args.warmup, args.processes)
        measured = []
        health = runner.run(target, "health", ctx, args.concurrency, args.duration, args.processes)
        report.print_row("health", health, health)
        measured.append(_measurement(ledger.label, repetition, "health", health))
        for name in SCENARIOS:
            sample = runner.run(target, name, ctx, args.concurrency, args.duration, args.processes)
            report.print_row(name, sample, health)
            measured.append(_measurement(ledger.label, repetition, name, sample))
        if server.exited() is not None:
            print(f"the server exited ({server.exited()}) during the run; its log {server.log} ends:\n{server.tail()}")
            for measurement in measured:
                measurement.errors.setdefault("SERVER_EXITED", 1)
        return measured
    finally:
        server.stop()


def _measurement(label: str, repetition: int, scenario: str, sample) -> Measurement:
    return Measurement(
        label, repetition, scenario, sample.ok, sample.throughput, sample.percentile(50), sample.percentile(99),
        sample.errors(),
    )  # fmt: skip


def failures(measurements: list[Measurement]) -> list[str]:
    return [
        f"{m.scenario} on {m.ledger} (repetition {m.repetition}) had errors {m.errors}" for m in measurements if m.errors
    ]


def summary(measurements: list[Measurement], ledgers: list[str], max_ratio: float) -> tuple[str, list[str]]:
    rows = compare(measurements, ledgers)
    lines = ["", "| scenario | ledger | p99 ms by repetition | median p99 ms | x first ledger |", "|---|---|---|---|---|"]
    for row in rows:
        p99s = ", ".join(f"{p:.1f}" for p in row.p99s_ms)
        lines.append(f"| {row.scenario} | {row.ledger} | {p99s} | {row.median_p99_ms:.1f} | {row.ratio:.2f} |")
    flat, reasons = verdict(rows, max_ratio)
    failed = failures(measurements)
    outcome = "INVALID" if failed else "FLAT" if flat else "GROWS"
    for line in lines:
        print(line)
    print(f"verdict: {outcome}" + "".join(f"\n  {reason}" for reason in failed + reasons), flush=True)
    return outcome, failed + reasons


def cmd_scale(args) -> int:
    ledgers = [Ledger(label, url, Path(setup)) for label, url, setup in args.ledger]
    if len(ledgers) < 2:
        print("give at least two --ledger LABEL URL SETUP (the first is the baseline)", file=sys.stderr)
        return 2
    measurements: list[Measurement] = []
    for repetition in range(1, args.repeat + 1):
        for ledger in ledgers:
            measurements += measure(ledger, repetition, args)
    outcome, reasons = summary(measurements, [ledger.label for ledger in ledgers], args.max_ratio)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {
                    "measurements": [asdict(m) for m in measurements],
                    "comparison": [asdict(c) for c in compare(measurements, [ledger.label for ledger in ledgers])],
                    "verdict": outcome,
                    "reasons": reasons,
                },
                indent=2,
            )
        )
    return {"FLAT": 0, "GROWS": 1, "INVALID": 2}[outcome]


def add_parser(sub) -> None:
    s = sub.add_parser("scale", help="get-member / statement p99 on ledgers of different sizes, and their ratios")
    s.add_argument(
        "--ledger",
        nargs=3,
        action="append",
        required=True,
        metavar=("LABEL", "DATABASE_URL", "SETUP_JSON"),
        help="a seeded ledger (repeat; the first is the baseline the others are compared with)",
    )
    s.add_argument("--listen", default=DEFAULT_LISTEN, help=f"where each server listens (default {DEFAULT_LISTEN})")
    s.add_argument("--logs", default="bench/out/scale-logs", help="directory for the servers' output")
    s.add_argument("--repeat", type=int, default=2, help="interleaved repetitions over all ledgers (default 2)")
    s.add_argument("--duration", type=float, default=15.0, help="seconds per scenario (default 15)")
    s.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per scenario after each start")
    s.add_argument("--concurrency", type=int, default=64)
    s.add_argument("--processes", type=int, default=2, help="load generator processes")
    s.add_argument("--max-ratio", type=float, default=1.5, help="largest p99 ratio to the first ledger (default 1.5)")
    s.add_argument("--json", help="also write the measurements and ratios to this file")
    s.set_defaults(run=cmd_scale)

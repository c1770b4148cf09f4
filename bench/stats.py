"""Latency and error accounting shared by the worker processes and the report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Sample:
    latencies_ms: list[float] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)
    duration_s: float = 0.0
    load_cpu_s: float = 0.0  # CPU the load generator's processes spent making the calls
    # CPU the server's processes and the PostgreSQL processes spent meanwhile (bench run
    # --server-pid); None when not measured.
    server_cpu_s: float | None = None
    database_cpu_s: float | None = None

    def merge(self, other: "Sample") -> None:
        self.latencies_ms += other.latencies_ms
        self.codes.update(other.codes)
        self.duration_s = max(self.duration_s, other.duration_s)
        self.load_cpu_s += other.load_cpu_s

    def cpu_ms_per_call(self) -> tuple[float, float, float] | None:
        """(server, database, load generator) CPU per call, when the server's was measured."""
        if self.server_cpu_s is None or self.database_cpu_s is None or not self.calls:
            return None
        return tuple(1000 * s / self.calls for s in (self.server_cpu_s, self.database_cpu_s, self.load_cpu_s))

    def ceiling(self, health: "Sample", cores: int) -> float | None:
        """An upper bound on this scenario's throughput, as a ratio to health's measured one:
        every one of the machine's cores busy (server, database and load generator share
        them), and each call costing only its database and load-generator CPU as measured
        plus a health call's server CPU (what the transport costs the server). It holds
        whatever the server's own work is cut to, as long as the database's work per call
        stays as it is; a scenario making several RPCs per call (till) pays the transport
        more than once, so its bound is looser still."""
        mine, theirs = self.cpu_ms_per_call(), health.cpu_ms_per_call()
        if mine is None or theirs is None or health.throughput <= 0:
            return None
        floor_ms = mine[1] + mine[2] + theirs[0]
        if floor_ms <= 0:
            return None
        return cores * 1000 / floor_ms / health.throughput

    @property
    def calls(self) -> int:
        return sum(self.codes.values())

    @property
    def ok(self) -> int:
        return self.codes.get("OK", 0)

    @property
    def throughput(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def errors(self) -> dict[str, int]:
        return {code: n for code, n in self.codes.items() if code != "OK"}

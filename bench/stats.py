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

    def ceiling(self, health: "Sample") -> float | None:
        """The most this scenario's throughput could be, as a ratio to health's, if the server's
        own work beyond the transport cost nothing: server, database and load generator share
        the machine's cores, so throughput goes as the inverse of their CPU per call, and what
        would be left per call is this scenario's database and load-generator CPU plus a
        health call's server CPU (what gRPC costs the server for one RPC). An upper bound: a
        scenario making several RPCs per call (till) pays the transport more than once."""
        mine, theirs = self.cpu_ms_per_call(), health.cpu_ms_per_call()
        if mine is None or theirs is None:
            return None
        floor = mine[1] + mine[2] + theirs[0]
        return sum(theirs) / floor if floor else None

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

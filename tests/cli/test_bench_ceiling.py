"""The report's ceiling: an upper bound on a scenario's throughput as a ratio to health's,
with every core busy and each call costing only its database and load-generator CPU and
a health call's server CPU (bench.stats.Sample.ceiling)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.stats import Sample


def _sample(calls: int, seconds: float, server_s: float | None, database_s: float | None, load_s: float) -> Sample:
    return Sample(
        codes=Counter(OK=calls),
        duration_s=seconds,
        load_cpu_s=load_s,
        server_cpu_s=server_s,
        database_cpu_s=database_s,
    )


def test_the_server_work_beyond_the_transport_is_taken_away():
    # health: 4000 calls/s, 0.25 ms server + 0.15 ms load generator a call
    health = _sample(40_000, 10.0, 10.0, 0.0, 6.0)
    # earn: 5 ms server, 0.9 ms database, 0.4 ms load generator a call
    earn = _sample(1_000, 10.0, 5.0, 0.9, 0.4)
    # two cores / (0.9 + 0.4 + 0.25 ms) = 1290 calls/s, against health's 4000/s
    assert earn.ceiling(health, cores=2) == pytest.approx(2000 / 1.55 / 4000)
    assert earn.ceiling(health, cores=4) == pytest.approx(2 * earn.ceiling(health, cores=2))


def test_health_bound_is_its_headroom_on_the_cores():
    health = _sample(40_000, 10.0, 10.0, 0.0, 6.0)  # 0.4 ms a call in all, at 4000/s: 1.6 cores
    assert health.ceiling(health, cores=2) == pytest.approx(2000 / 0.4 / 4000)


def test_no_ceiling_without_what_it_needs():
    health = _sample(40_000, 10.0, 10.0, 0.0, 6.0)
    unmeasured = _sample(1_000, 10.0, None, None, 0.4)
    assert unmeasured.ceiling(health, cores=2) is None
    assert health.ceiling(unmeasured, cores=2) is None
    no_calls = _sample(0, 10.0, 1.0, 1.0, 0.4)
    assert no_calls.ceiling(health, cores=2) is None
    idle_health = _sample(0, 10.0, 0.0, 0.0, 0.0)
    assert health.ceiling(idle_health, cores=2) is None
    free = _sample(1_000, 10.0, 0.0, 0.0, 0.0)
    weightless_health = _sample(1_000, 10.0, 0.0, 0.0, 0.0)
    assert free.ceiling(weightless_health, cores=2) is None  # nothing measured per call: no bound

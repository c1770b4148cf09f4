"""The report's ceiling: the ratio to health a scenario could reach if the server's work
beyond one RPC's transport cost nothing (bench.stats.Sample.ceiling)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.stats import Sample


def _sample(calls: int, server_s: float | None, database_s: float | None, load_s: float) -> Sample:
    return Sample(codes=Counter(OK=calls), load_cpu_s=load_s, server_cpu_s=server_s, database_cpu_s=database_s)


def test_health_against_itself_is_one():
    health = _sample(1000, 0.2, 0.0, 0.2)
    assert health.ceiling(health) == pytest.approx(1.0)


def test_ceiling_keeps_the_database_and_load_generator_and_one_transport():
    health = _sample(1000, 0.25, 0.0, 0.15)  # 0.40 ms a call in all, 0.25 ms of it the server's
    earn = _sample(100, 0.5, 0.09, 0.04)  # server 5 ms, database 0.9 ms, load 0.4 ms a call
    # 0.40 / (0.9 + 0.4 + 0.25): the server's 5 ms shrink to health's 0.25 ms
    assert earn.ceiling(health) == pytest.approx(0.40 / 1.55)


def test_no_ceiling_without_the_server_measured():
    measured = _sample(1000, 0.2, 0.0, 0.2)
    unmeasured = _sample(1000, None, None, 0.2)
    assert unmeasured.ceiling(measured) is None
    assert measured.ceiling(unmeasured) is None

"""Prometheus metrics, served on their own HTTP port (prometheus-client).

- loyalty_rpc_total / loyalty_rpc_duration_seconds: every call by method and status code;
- loyalty_points_total: points moved by program and transaction kind (earned, redeemed, ...);
- loyalty_db_pool_connections_in_use: database connections checked out of the pool.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from sqlalchemy import Engine

RPCS = Counter("loyalty_rpc_total", "gRPC calls handled", ["method", "code"])
RPC_SECONDS = Histogram(
    "loyalty_rpc_duration_seconds",
    "gRPC call latency",
    ["method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
POINTS = Counter("loyalty_points_total", "Points moved by transactions, by kind", ["program", "kind"])
POOL_IN_USE = Gauge("loyalty_db_pool_connections_in_use", "Database connections checked out")


def observe_call(method: str, code: str, seconds: float) -> None:
    RPCS.labels(method, code).inc()
    RPC_SECONDS.labels(method, code).observe(seconds)


def observe_points(program: str, kind: str, points: int) -> None:
    if points:
        POINTS.labels(program, kind).inc(abs(points))


def serve(port: int, engine: Engine) -> None:
    """Starts the metrics endpoint (a daemon thread) and reports the pool of this engine."""
    pool = engine.pool
    POOL_IN_USE.set_function(lambda: pool.checkedout() if hasattr(pool, "checkedout") else 0)
    start_http_server(port, addr="127.0.0.1")

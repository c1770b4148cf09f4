"""Prometheus metrics, served on their own HTTP port (prometheus-client).

The call metrics carry the names and labels of go-grpc-prometheus / py-grpc-prometheus,
which the usual gRPC dashboards and alerts are written against:
- grpc_server_started_total / grpc_server_handled_total (with grpc_code) /
  grpc_server_handling_seconds, by grpc_type, grpc_service and grpc_method, for every
  loyalty.v1 call (health and reflection are served by the event loop and not counted);
and the ledger's own:
- loyalty_points_total: points moved by program and transaction kind (earned, redeemed, ...);
- loyalty_points_issued_total: points credited by program and source (base, tier bonus,
  campaign, activity, referral, adjustment);
- loyalty_points_expired_total: points expired by the due-work job, by program;
- loyalty_db_pool_connections_in_use: database connections checked out of the pool;
- loyalty_due_work_leader: 1 while this process leads the due work (ledger.store.leadership);
and event delivery's (ledger.delivery), on the process that sends:
- loyalty_webhook_lag_seconds: per webhook, the age of the oldest event it has not delivered
  yet (0 when it is caught up; failed-for-good deliveries do not count);
- loyalty_webhook_attempts_total / loyalty_webhook_failures_total: HTTP attempts and the
  failed ones, by webhook and status (the HTTP status, or timeout, error, refused);
- loyalty_webhook_deliveries_failed_total: deliveries that failed for good, by webhook;
- loyalty_nats_relay_lag_seconds: the age of the oldest event not yet acknowledged by
  JetStream (over every program); loyalty_nats_relay_published_total and
  loyalty_nats_relay_failures_total (by reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:  # the port's type only: the api layer imports nothing of the store
    from ledger.store.database import Database


CALL_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
STARTED = Counter("grpc_server_started_total", "Total number of RPCs started on the server.", CALL_LABELS)
HANDLED = Counter(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    [*CALL_LABELS, "grpc_code"],
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    CALL_LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POINTS = Counter("loyalty_points_total", "Points moved by transactions, by kind", ["program", "kind"])
ISSUED = Counter("loyalty_points_issued_total", "Points credited, by source", ["program", "source"])
EXPIRED = Counter("loyalty_points_expired_total", "Points expired by the due-work job", ["program"])
POOL_IN_USE = Gauge("loyalty_db_pool_connections_in_use", "Database connections checked out")
DUE_WORK_LEADER = Gauge(
    "loyalty_due_work_leader", "1 while this process leads the due work (lapsing, expiry, tier reviews), else 0"
)
WEBHOOK_LAG = Gauge(
    "loyalty_webhook_lag_seconds", "Age of the oldest event the webhook has not delivered yet", ["webhook"]
)
WEBHOOK_ATTEMPTS = Counter("loyalty_webhook_attempts_total", "Webhook HTTP attempts, by status", ["webhook", "status"])
WEBHOOK_FAILURES = Counter(
    "loyalty_webhook_failures_total", "Webhook HTTP attempts that did not deliver, by status", ["webhook", "status"]
)
WEBHOOK_FAILED = Counter(
    "loyalty_webhook_deliveries_failed_total", "Webhook deliveries that failed for good (retry window over)", ["webhook"]
)
RELAY_LAG = Gauge("loyalty_nats_relay_lag_seconds", "Age of the oldest event JetStream has not acknowledged yet")
RELAY_PUBLISHED = Counter("loyalty_nats_relay_published_total", "Events JetStream acknowledged to the relay")
RELAY_FAILURES = Counter("loyalty_nats_relay_failures_total", "Relay rounds that failed, by reason", ["reason"])
UNARY = "unary"
SERVER_STREAM = "server_stream"


class _CallMetrics:
    """One RPC's children of the call metrics, bound once: labels() takes a lock and a
    dict lookup that the call path would otherwise pay three times per call."""

    def __init__(self, rpc: str) -> None:
        service, _, method = rpc.partition(".")
        self._labels = (SERVER_STREAM if rpc in _streams else UNARY, f"loyalty.v1.{service}", method)
        self.started = STARTED.labels(*self._labels)
        self.seconds = HANDLING_SECONDS.labels(*self._labels)
        self._handled: dict[str, object] = {}

    def handled(self, code: str):
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = HANDLED.labels(*self._labels, code)
        return child


_by_rpc: dict[str, _CallMetrics] = {}
_streams: set[str] = set()


def server_streaming(rpc: str) -> None:
    """rpc ("Service.Method") streams its answer: its metrics carry grpc_type server_stream."""
    _streams.add(rpc)
    _by_rpc.pop(rpc, None)


def _call_metrics(rpc: str) -> _CallMetrics:
    found = _by_rpc.get(rpc)
    if found is None:
        found = _by_rpc[rpc] = _CallMetrics(rpc)
    return found


def observe_start(rpc: str) -> None:
    _call_metrics(rpc).started.inc()


def observe_call(rpc: str, code: str, seconds: float) -> None:
    """One call of rpc ("Service.Method") ended with code after seconds."""
    found = _call_metrics(rpc)
    found.handled(code).inc()
    found.seconds.observe(seconds)


def observe_points(program: str, kind: str, points: int, breakdown=()) -> None:
    """A transaction of `kind` moved `points`; breakdown: (source, points) pairs of a credit."""
    if points:
        POINTS.labels(program, kind).inc(abs(points))
    for source, credited in breakdown:
        if credited > 0:
            ISSUED.labels(program, source).inc(credited)


def observe_expired(points_by_program: dict[str, int]) -> None:
    """What one run of the due work expired, by program."""
    for program, points in points_by_program.items():
        if points:
            EXPIRED.labels(program).inc(points)


def observe_due_work_leader(leading: bool) -> None:
    DUE_WORK_LEADER.set(1 if leading else 0)


def observe_webhook_attempt(webhook: str, status: str, delivered: bool) -> None:
    WEBHOOK_ATTEMPTS.labels(webhook, status).inc()
    if not delivered:
        WEBHOOK_FAILURES.labels(webhook, status).inc()


def observe_webhook_failed(webhook: str, count: int) -> None:
    if count:
        WEBHOOK_FAILED.labels(webhook).inc(count)


def observe_webhook_lag(webhook: str, seconds: float | None) -> None:
    """seconds None: the webhook is gone (its series goes too)."""
    if seconds is None:
        try:
            WEBHOOK_LAG.remove(webhook)
        except KeyError:
            pass
        return
    WEBHOOK_LAG.labels(webhook).set(seconds)


def observe_relay(lag_seconds: float, published: int = 0, failure: str = "") -> None:
    RELAY_LAG.set(lag_seconds)
    if published:
        RELAY_PUBLISHED.inc(published)
    if failure:
        RELAY_FAILURES.labels(failure).inc()


def serve(address: str, port: int, db: Database) -> None:
    """Starts the metrics endpoint (a daemon thread) and reports the connections db has in use."""
    POOL_IN_USE.set_function(db.connections_in_use)
    start_http_server(port, addr=address)

"""Prometheus metrics count calls by method and code, and points moved by kind."""

from prometheus_client import REGISTRY

from ledger.gen.loyalty.v1 import ledger_pb2
from tests.grpc_helpers import earn, enroll


def _value(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_calls_and_points_are_counted(program, api):
    calls = {"method": "Ledger.Earn", "code": "OK"}
    refused = {"method": "Ledger.Redeem", "code": "FAILED_PRECONDITION"}
    earned = {"program": program.program_id, "kind": "EARN"}
    before = (_value("loyalty_rpc_total", calls), _value("loyalty_rpc_total", refused))
    enroll(api, "m-metrics")
    earn(api, "m-metrics", 2599)
    try:
        api.ledger.Redeem(
            ledger_pb2.RedeemRequest(member_id="m-metrics", idempotency_key="too-much", points=10**6),
            metadata=api.metadata,
        )
    except Exception:
        pass
    assert _value("loyalty_rpc_total", calls) == before[0] + 1
    assert _value("loyalty_rpc_total", refused) == before[1] + 1
    assert _value("loyalty_points_total", earned) == 25
    assert _value("loyalty_rpc_duration_seconds_count", calls) >= 1

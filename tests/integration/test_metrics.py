"""Prometheus metrics: the standard gRPC server metrics by service, method and code, and the
ledger's points by kind and by source; scraped over HTTP from a real `serve` process."""

import re
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from loyalty.v1 import ledger_pb2, ledger_pb2_grpc, programs_pb2, programs_pb2_grpc
from tests.cli.processes import ServerProcess, free_port, run_ok
from tests.grpc_helpers import earn, enroll


def _value(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


EARN = {"grpc_type": "unary", "grpc_service": "loyalty.v1.Ledger", "grpc_method": "Earn"}
REDEEM = {"grpc_type": "unary", "grpc_service": "loyalty.v1.Ledger", "grpc_method": "Redeem"}


def test_calls_and_points_are_counted(program, api):
    earned_ok = {**EARN, "grpc_code": "OK"}
    refused = {**REDEEM, "grpc_code": "FAILED_PRECONDITION"}
    before = {
        "started": _value("grpc_server_started_total", EARN),
        "handled": _value("grpc_server_handled_total", earned_ok),
        "refused": _value("grpc_server_handled_total", refused),
        "seconds": _value("grpc_server_handling_seconds_count", EARN),
    }
    enroll(api, "m-metrics")
    earn(api, "m-metrics", 2599)
    try:
        api.ledger.Redeem(
            ledger_pb2.RedeemRequest(member_id="m-metrics", idempotency_key="too-much", points=10**6),
            metadata=api.metadata,
        )
    except grpc.RpcError:
        pass
    assert _value("grpc_server_started_total", EARN) == before["started"] + 1
    assert _value("grpc_server_handled_total", earned_ok) == before["handled"] + 1
    assert _value("grpc_server_handled_total", refused) == before["refused"] + 1
    assert _value("grpc_server_handling_seconds_count", EARN) == before["seconds"] + 1
    assert _value("loyalty_points_total", {"program": program.program_id, "kind": "EARN"}) == 25
    assert _value("loyalty_points_issued_total", {"program": program.program_id, "source": "BASE"}) == 25


@dataclass
class _Api:
    ledger: object
    metadata: tuple


def _days_ago(days: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=days))
    return stamp


def _sample(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus' text format."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[line.index("{") : line.rindex("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{labels} in:\n{text[:3000]}")


def test_metrics_are_scraped_over_http_on_the_configured_address(tmp_path):
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    program_id, key = run_ok(url, "program", "create", "metrics")[:2]
    port = free_port()
    extra = ["--metrics-port", str(port), "--metrics-address", "0.0.0.0", "--due-work-interval", "0.5"]
    with ServerProcess.serve(url, extra=extra) as server:
        server.wait_serving()
        metadata = (("authorization", f"Bearer {key}"),)
        with grpc.insecure_channel(server.target) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            stub.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id="m-1"), metadata=metadata, timeout=10)
            stub.GetMember(ledger_pb2.GetMemberRequest(member_id="m-1"), metadata=metadata, timeout=10)
            try:
                stub.GetMember(ledger_pb2.GetMemberRequest(member_id="nobody"), metadata=metadata, timeout=10)
            except grpc.RpcError:
                pass
            # Points already past their expiry when earned: the due work expires them.
            programs_pb2_grpc.ProgramsStub(channel).UpdateProgram(
                programs_pb2.UpdateProgramRequest(
                    program=programs_pb2.Program(expiry_mode=programs_pb2.EXPIRY_MODE_ROLLING, expiry_days=1),
                    update_mask=field_mask_pb2.FieldMask(paths=["expiry_mode", "expiry_days"]),
                ),
                metadata=metadata,
                timeout=10,
            )
            earn(_Api(stub, metadata), "m-1", 4200, occur_time=_days_ago(3))
        deadline = time.monotonic() + 20
        while True:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            if 'loyalty_points_expired_total{program="' in text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert _sample(text, "loyalty_points_expired_total", program=program_id) == 42
    service = {"grpc_type": "unary", "grpc_service": "loyalty.v1.Ledger", "grpc_method": "GetMember"}
    assert _sample(text, "grpc_server_started_total", **service) == 2
    assert _sample(text, "grpc_server_handled_total", **service, grpc_code="OK") == 1
    assert _sample(text, "grpc_server_handled_total", **service, grpc_code="NOT_FOUND") == 1
    assert _sample(text, "grpc_server_handling_seconds_count", **service) == 2
    assert "# TYPE loyalty_db_pool_connections_in_use gauge" in text


def test_the_grafana_dashboard_uses_only_metrics_the_server_exports():
    import json
    from pathlib import Path

    from ledger.api import metrics  # noqa: F401  (registers the server's metrics)

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:grpc_server|loyalty)_\w+)", target["expr"])
    }
    exported = {family.name for family in REGISTRY.collect()}
    assert used and used <= exported, used - exported

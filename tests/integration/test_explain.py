"""`python -m loyalty.client.explain` reads a refusal as `buf curl` prints it (JSON, details
base64-encoded without padding) and shows its reason, metadata and every field violation."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import grpc
from grpc_status import rpc_status

from loyalty.v1 import ledger_pb2


def _as_buf_curl_prints(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    details = [
        {"type": d.type_url.split("/")[-1], "value": base64.b64encode(d.value).decode().rstrip("=")}
        for d in status.details
    ]
    return json.dumps({"code": error.code().name.lower(), "message": error.details(), "details": details}, indent=3)


def test_a_refusal_printed_by_buf_curl_is_explained_field_by_field(api):
    try:
        api.ledger.Redeem(ledger_pb2.RedeemRequest(member_id=" m", points=-5), metadata=api.metadata)
    except grpc.RpcError as error:
        printed = _as_buf_curl_prints(error)
    assert "and 2 more" in json.loads(printed)["message"]  # the message alone hides two of them
    done = subprocess.run(
        [sys.executable, "-m", "loyalty.client.explain"], input=printed, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("INVALID_ARGUMENT: ")
    assert "  reason: INVALID_FIELD (loyalty.v1)" in lines
    assert {line.split(":")[0].strip() for line in lines if line.startswith("  field ")} == {
        "field member_id",
        "field idempotency_key",
        "field points",
    }

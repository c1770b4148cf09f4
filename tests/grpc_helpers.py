"""Assertions on gRPC failures (status code, ErrorInfo reason, BadRequest fields) and request builders."""

from __future__ import annotations

import secrets
from contextlib import contextmanager

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from loyalty.v1 import common_pb2, ledger_pb2


def error_details(error: grpc.RpcError) -> tuple[str, str, list[str]]:
    """(ErrorInfo.reason, ErrorInfo.domain, BadRequest field names) of a failed call."""
    status = rpc_status.from_call(error)
    reason, domain, fields = "", "", []
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            reason, domain = info.reason, info.domain
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return reason, domain, fields


@contextmanager
def expect_error(code: grpc.StatusCode, reason: str | None = None, field: str | None = None):
    with pytest.raises(grpc.RpcError) as caught:
        yield caught
    error = caught.value
    assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"
    got_reason, domain, fields = error_details(error)
    assert domain == "loyalty.v1"
    if reason is not None:
        assert got_reason == reason, f"expected reason {reason}, got {got_reason}: {error.details()}"
    if field is not None:
        assert field in fields, f"expected a violation of {field}, got {fields}"


def key() -> str:
    return f"k-{secrets.token_hex(8)}"


def earn_request(member_id: str, amount: int, order_id: str | None = None, idempotency_key: str | None = None, **order):
    order.setdefault("channel", common_pb2.CHANNEL_POS)
    order.setdefault("currency", "USD")
    return ledger_pb2.EarnRequest(
        member_id=member_id,
        idempotency_key=idempotency_key or key(),
        order=common_pb2.Order(order_id=order_id or f"o-{secrets.token_hex(6)}", amount=amount, **order),
    )


def enroll(api, member_id: str):
    return api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=member_id), metadata=api.metadata)


def earn(api, member_id: str, amount: int, **kwargs):
    return api.ledger.Earn(earn_request(member_id, amount, **kwargs), metadata=api.metadata)


def balance(api, member_id: str):
    return api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=member_id), metadata=api.metadata).member.balance

"""Helpers shared by the integration tests: outcomes of raw calls, statements, snapshots, verify.

Not a test module: it only reads through the public gRPC API (and `verify` on the
backend's engine), so the tests stay black-box over real gRPC.
"""

from __future__ import annotations

import grpc

from loyalty.v1 import ledger_pb2
from ledger.service.verify import verify
from tests.grpc_helpers import error_details


def outcome(call, request, metadata, timeout: float = 20.0):
    """(code, reason, fields, response) of one call; never raises for a gRPC status."""
    try:
        response = call(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        reason, _domain, fields = error_details(error)
        return error.code(), reason, fields, None
    return grpc.StatusCode.OK, "", [], response


def statement(api, member_id: str, page_size: int = 500, **filters) -> list:
    """Every transaction of a member, newest first, following next_page_token to the end."""
    transactions, token = [], ""
    while True:
        page = api.ledger.ListTransactions(
            ledger_pb2.ListTransactionsRequest(member_id=member_id, page_size=page_size, page_token=token, **filters),
            metadata=api.metadata,
        )
        transactions.extend(page.transactions)
        token = page.next_page_token
        if not token:
            return transactions


def member(api, member_id: str):
    return api.ledger.GetMember(ledger_pb2.GetMemberRequest(member_id=member_id), metadata=api.metadata).member


def snapshot(api, member_id: str) -> tuple:
    """A comparable picture of a member: balance and the serialized statement."""
    state = member(api, member_id)
    return (
        state.balance.SerializeToString(deterministic=True),
        tuple(tx.SerializeToString(deterministic=True) for tx in statement(api, member_id)),
    )


def assert_verify_clean(program) -> None:
    report = verify(program.backend.db)
    assert report.clean, report.breaches

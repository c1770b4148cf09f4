"""Turns a LedgerError into a gRPC status with google.rpc.ErrorInfo and BadRequest details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger.domain.errors import Category, LedgerError

DOMAIN = "loyalty.v1"

_CODES = {
    Category.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    Category.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    Category.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    Category.NOT_FOUND: code_pb2.NOT_FOUND,
    Category.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    Category.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    Category.ABORTED: code_pb2.ABORTED,
    Category.UNAVAILABLE: code_pb2.UNAVAILABLE,
    Category.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
    Category.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    Category.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    Category.OUT_OF_RANGE: code_pb2.OUT_OF_RANGE,
}

GRPC_CODES = {category: grpc.StatusCode[category.value] for category in Category}


# Field violations and messages are capped so a status always fits gRPC's trailer limits
# (a request with 500 bad lines must still get INVALID_ARGUMENT, not a metadata overflow).
MAX_VIOLATIONS = 20
MAX_TEXT = 300


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def to_status(error: LedgerError) -> grpc.Status:
    details = []
    info = any_pb2.Any()
    metadata = {key: _short(value) for key, value in error.metadata.items()}
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata))
    details.append(info)
    if error.violations:
        bad_request = any_pb2.Any()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=_short(v.field), description=_short(v.description))
                    for v in error.violations[:MAX_VIOLATIONS]
                ]
            )
        )
        details.append(bad_request)
    message = _short(error.message)
    return rpc_status.to_status(status_pb2.Status(code=_CODES[error.category], message=message, details=details))

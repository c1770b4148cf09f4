"""LedgerApiError: a failed call with its status code, ErrorInfo reason and field violations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class LedgerApiError(Exception):
    """A failed call: gRPC status code, ErrorInfo reason, message and field violations.

    `reason` is the machine-readable `google.rpc.ErrorInfo.reason` (e.g.
    "INSUFFICIENT_POINTS"; empty when the server sent none, e.g. a transport failure);
    `metadata` is ErrorInfo's metadata (e.g. {"requested": "100", "available": "25"});
    `field_violations` lists (field, description) pairs from `google.rpc.BadRequest`;
    `idempotency_key` is the key (or request id) the failed operation was sent with, so
    an operation whose outcome is unknown (DEADLINE_EXCEEDED) can be sent again with it.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[tuple[str, str]] = (),
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(f"{code.name}{' ' + reason if reason else ''}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: list[tuple[str, str]] = list(field_violations)
        self.idempotency_key = idempotency_key

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, idempotency_key: str | None = None) -> LedgerApiError:
        """Reads the status code, message and rich error details of a failed call (sync or aio)."""
        code_of = getattr(error, "code", None)
        details_of = getattr(error, "details", None)
        code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
        message = (details_of() if callable(details_of) else "") or str(error)
        reason, domain = "", ""
        metadata: dict[str, str] = {}
        violations: list[tuple[str, str]] = []
        try:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
        except (AttributeError, TypeError, ValueError):
            status = None  # not a completed call, or inconsistent details: keep code and message
        for detail in status.details if status is not None else ():
            info = error_details_pb2.ErrorInfo()
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Unpack(bad_request):
                violations.extend((v.field, v.description) for v in bad_request.field_violations)
        return cls(
            code or grpc.StatusCode.UNKNOWN,
            message,
            reason=reason,
            domain=domain,
            metadata=metadata,
            field_violations=violations,
            idempotency_key=idempotency_key,
        )

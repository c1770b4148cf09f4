"""The interceptor every loyalty.v1 call passes: authenticate, authorize, map errors, log.

It wraps each RPC handler so that:
- the `authorization: Bearer <key>` metadata is checked (UNAUTHENTICATED; a revocation
  takes effect on the key's very next call: the key is read on every call, or for the
  till's calls its revocation is read inside the call's own transaction, and any other
  refusal of such a call is answered UNAUTHENTICATED if the key was revoked meanwhile:
  ledger.service.keys), the key's rate limit
  is taken (RESOURCE_EXHAUSTED / RATE_LIMITED, when limits are on) and its role
  may call the RPC (PERMISSION_DENIED), all before the servicer runs;
- a request body that does not parse is INVALID_ARGUMENT, not INTERNAL;
- a LedgerError becomes its status with ErrorInfo; anything else is logged as a
  bug and answered INTERNAL without leaking details;
- one structured log line per call: method, code, duration, program, reason.
"""

from __future__ import annotations

import contextvars
import logging
import time

import grpc
from google.protobuf.message import DecodeError
from sqlalchemy import Engine

from ledger.api import metrics
from ledger.api.errors import to_status
from ledger.api.rate_limits import RateLimiter
from ledger.domain import errors, roles
from ledger.domain.errors import Category, LedgerError
from ledger.gen.loyalty.v1 import common_pb2
from ledger.service import keys, unit_of_work
from ledger.service.caller import Caller

CURRENT_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("current_caller")
PACKAGE_PREFIX = "/loyalty.v1."
log = logging.getLogger("ledger.calls")


class _Unparseable:
    """Stands in for a request whose bytes did not parse."""


def _safe(deserializer):
    def parse(raw: bytes):
        try:
            return deserializer(raw)
        except (DecodeError, ValueError, TypeError, RuntimeError):
            return _Unparseable()

    return parse


def _bearer(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise LedgerError(Category.UNAUTHENTICATED, "API_KEY_INVALID", "send metadata 'authorization: Bearer <api key>'")


def current_caller() -> Caller:
    return CURRENT_CALLER.get()


class CallGuard(grpc.ServerInterceptor):
    def __init__(self, engine: Engine, limiter: RateLimiter | None = None) -> None:
        self._engine = engine
        self._limiter = limiter if limiter is not None and not limiter.unlimited else None

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method_path = handler_call_details.method
        if handler is None or not method_path.startswith(PACKAGE_PREFIX) or handler.unary_unary is None:
            return handler
        service, _, method = method_path[len(PACKAGE_PREFIX) :].partition("/")
        behavior = handler.unary_unary
        engine = self._engine
        limiter = self._limiter

        def guarded(request, context: grpc.ServicerContext):
            started = time.perf_counter()
            outcome = {"code": "OK", "program": "", "reason": ""}
            caller = None
            try:
                if isinstance(request, _Unparseable):
                    raise errors.invalid_field("(request)", "the request body is not a valid protobuf message")
                caller = keys.authenticate(engine, _bearer(context), f"{service}.{method}")
                outcome["program"] = caller.program_id
                if limiter is not None:
                    limiter.check(caller.key_id)
                if not roles.may_call(caller.role, service, method):
                    raise LedgerError(
                        Category.PERMISSION_DENIED,
                        "ROLE_NOT_ALLOWED",
                        f"a {caller.role.value} key may not call {service}.{method}",
                    )
                token = CURRENT_CALLER.set(caller)
                waiting = unit_of_work.caller_waiting.set(context.is_active)
                # A client deadline or cancel stops the database statement the call waits on.
                scope = unit_of_work.CallScope()
                scoped = unit_of_work.current_scope.set(scope)
                context.add_callback(scope.cancel)
                try:
                    response = behavior(request, context)
                finally:
                    unit_of_work.current_scope.reset(scoped)
                    unit_of_work.caller_waiting.reset(waiting)
                    CURRENT_CALLER.reset(token)
                transaction = getattr(response, "transaction", None)
                if transaction is not None and transaction.transaction_id:
                    kind = common_pb2.TransactionKind.Name(transaction.kind).removeprefix("TRANSACTION_KIND_")
                    metrics.observe_points(caller.program_id, kind, transaction.points)
                return response
            except LedgerError as error:
                if caller is not None:
                    error = keys.refusal_for(engine, caller, error)
                outcome["code"], outcome["reason"] = error.category.value, error.reason
                context.abort_with_status(to_status(error))
            except NotImplementedError:
                error = errors.unimplemented(f"{service}.{method}", "a later issue")
                outcome["code"], outcome["reason"] = error.category.value, error.reason
                context.abort_with_status(to_status(error))
            except Exception:
                if context.code() not in (None, grpc.StatusCode.OK):
                    outcome["code"] = context.code().name  # the servicer aborted on purpose
                    raise
                outcome["code"] = "INTERNAL"
                log.exception("bug while serving %s", method_path)
                context.abort(grpc.StatusCode.INTERNAL, "internal error (logged on the server)")
            finally:
                if not context.is_active() and outcome["code"] == "OK":
                    outcome["code"] = "CANCELLED"
                metrics.observe_call(f"{service}.{method}", outcome["code"], time.perf_counter() - started)
                log.info(
                    "call",
                    extra={
                        "rpc": f"{service}.{method}",
                        "code": outcome["code"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "program": outcome["program"],
                        "reason": outcome["reason"],
                    },
                )

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=_safe(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )




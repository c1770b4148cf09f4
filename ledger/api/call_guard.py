"""What every loyalty.v1 call passes once its request has arrived: authenticate, authorize,
run the servicer, map errors, log.

`CallGuard.serve` runs on a worker thread (ledger.api.unary_calls hands it there) and:
- checks the `authorization: Bearer <key>` metadata (UNAUTHENTICATED; a revocation takes
  effect on the key's very next call: the key is read on every call, or for the till's
  calls its revocation is read inside the call's own transaction, and any other refusal of
  such a call is answered UNAUTHENTICATED if the key was revoked meanwhile:
  ledger.service.keys), takes the key's rate limit (RESOURCE_EXHAUSTED / RATE_LIMITED, when
  limits are on) and checks its role may call the RPC (PERMISSION_DENIED), all before the
  servicer runs;
- answers a request body that does not parse with INVALID_ARGUMENT, not INTERNAL;
- turns a LedgerError into its status with ErrorInfo; anything else is logged as a bug and
  answered INTERNAL without details.
A server-streaming call (WatchEvents) passes the same guard once, when it opens, with the
servicer's opening method as its behavior (ledger.api.unary_calls serves the stream).
`log_call` writes the one structured line per call (method, code, duration, program,
reason) and the call's metrics, also for calls refused before they reached a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import contextvars
import logging
import time
from typing import Callable

import grpc
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from ledger.api import metrics
from ledger.api.errors import to_status
from ledger.api.rate_limits import RateLimiter
from ledger.domain import errors, roles
from ledger.domain.errors import Category, LedgerError
from loyalty.v1 import common_pb2
from ledger.service import keys
from ledger import call_context
from ledger.service.caller import Caller

if TYPE_CHECKING:  # the port's type only: the api layer imports nothing of the store
    from ledger.store.database import Database


CURRENT_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("current_caller")
log = logging.getLogger("ledger.calls")
INTERNAL_MESSAGE = "internal error (logged on the server)"


class Unparseable:
    """Stands in for a request whose bytes did not parse."""


def tolerant(deserializer):
    """deserializer, answering Unparseable instead of raising on bytes that do not parse."""

    def parse(raw: bytes):
        try:
            return deserializer(raw)
        except (DecodeError, ValueError, TypeError, RuntimeError):
            return Unparseable()

    return parse


def bearer(metadata) -> str:
    """The API key in `authorization: Bearer <key>` metadata; UNAUTHENTICATED without one."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise LedgerError(Category.UNAUTHENTICATED, "API_KEY_INVALID", "send metadata 'authorization: Bearer <api key>'")


def current_caller() -> Caller:
    return CURRENT_CALLER.get()


def log_call(rpc: str, code: str, started: float, program: str = "", reason: str = "") -> None:
    seconds = time.perf_counter() - started
    metrics.observe_call(rpc, code, seconds)
    log.info(
        "call",
        extra={"rpc": rpc, "code": code, "duration_ms": round(seconds * 1000, 3), "program": program, "reason": reason},
    )


class CallGuard:
    def __init__(self, db: Database, limiter: RateLimiter | None = None) -> None:
        self._db = db
        self._limiter = limiter if limiter is not None and not limiter.unlimited else None

    def serve(
        self,
        rpc: str,
        behavior: Callable,
        request,
        metadata,
        started: float,
        caller_waiting: Callable[[], bool],
        scope: call_context.CallScope,
        log_success: bool = True,
    ) -> object | grpc.Status:
        """The response of one call of `rpc` ("Service.Method"), or the status to end it with.
        caller_waiting: False once the caller is gone (its deadline passed, it cancelled);
        scope: lets the transport cancel the statement the call waits on meanwhile;
        log_success: False for the opening of a stream, whose driver logs the call when it ends
        (a refusal is logged here all the same)."""
        outcome = {"code": "OK", "program": "", "reason": ""}
        caller = None
        try:
            if isinstance(request, Unparseable):
                raise errors.invalid_field("(request)", "the request body is not a valid protobuf message")
            caller = keys.authenticate(self._db, bearer(metadata), rpc)
            outcome["program"] = caller.program_id
            if self._limiter is not None:
                self._limiter.check(caller.key_id)
            service, _, method = rpc.partition(".")
            if not roles.may_call(caller.role, service, method):
                raise LedgerError(
                    Category.PERMISSION_DENIED,
                    "ROLE_NOT_ALLOWED",
                    f"a {caller.role.value} key may not call {rpc}",
                )
            token = CURRENT_CALLER.set(caller)
            waiting = call_context.caller_waiting.set(caller_waiting)
            scoped = call_context.current_scope.set(scope)
            try:
                response = behavior(request, None)
            finally:
                call_context.current_scope.reset(scoped)
                call_context.caller_waiting.reset(waiting)
                CURRENT_CALLER.reset(token)
            transaction = getattr(response, "transaction", None)
            if transaction is not None and transaction.transaction_id:
                kind = common_pb2.TransactionKind.Name(transaction.kind).removeprefix("TRANSACTION_KIND_")
                sources = (
                    (common_pb2.PointsSource.Name(line.source).removeprefix("POINTS_SOURCE_"), line.points)
                    for line in transaction.breakdown
                )
                metrics.observe_points(caller.program_id, kind, transaction.points, sources)
            if not caller_waiting():
                outcome["code"] = "CANCELLED"
            return response
        except LedgerError as error:
            if caller is not None:
                error = keys.refusal_for(self._db, caller, error)
            outcome["code"], outcome["reason"] = error.category.value, error.reason
            return to_status(error)
        except NotImplementedError:
            unimplemented = errors.unimplemented(rpc, "a later issue")
            outcome["code"], outcome["reason"] = unimplemented.category.value, unimplemented.reason
            return to_status(unimplemented)
        except Exception:
            outcome["code"] = "INTERNAL"
            log.exception("bug while serving %s", rpc)
            return rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE))
        finally:
            if log_success or outcome["code"] != "OK":
                log_call(rpc, outcome["code"], started, outcome["program"], outcome["reason"])

"""Serves the unary RPCs of loyalty.v1 on the grpc.aio event loop.

Each RPC is registered as a client-streaming handler, which gRPC serves identically for a
unary client, so that the handler runs as soon as the call's headers arrive and can:
- refuse a call without an API key at once (UNAUTHENTICATED), before any request arrives;
- wait for the one request message no longer than `request_timeout` seconds, then end the
  call with DEADLINE_EXCEEDED / REQUEST_INCOMPLETE: a call that never sends its request
  holds a coroutine for a bounded time, never a worker thread;
- hand the call to a worker thread through the admission bound (ledger.api.admission),
  where CallGuard authenticates, authorizes and runs the servicer's method.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from ledger.api import metrics
from ledger.api.admission import Admission
from ledger.api.call_guard import CallGuard, bearer, log_call, tolerant
from ledger.api.errors import to_status
from ledger.domain.errors import Category, LedgerError
from ledger import call_context


def request_incomplete(seconds: float) -> LedgerError:
    return LedgerError(
        Category.DEADLINE_EXCEEDED,
        "REQUEST_INCOMPLETE",
        f"the request message did not arrive within {seconds:g} s of the call's start; nothing was done",
    )


def generic_handler(
    descriptor: ServiceDescriptor, servicer, guard: CallGuard, admission: Admission, request_timeout: float
) -> grpc.GenericRpcHandler:
    """The handlers of every method of one service, each running `servicer`'s method of the
    same name behind the guard."""
    handlers = {}
    for method in descriptor.methods:
        rpc = f"{descriptor.name}.{method.name}"
        handlers[method.name] = grpc.stream_unary_rpc_method_handler(
            _serve(rpc, _behavior(servicer, method.name), guard, admission, request_timeout),
            request_deserializer=tolerant(message_factory.GetMessageClass(method.input_type).FromString),
            response_serializer=message_factory.GetMessageClass(method.output_type).SerializeToString,
        )
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)


def _behavior(servicer, name: str):
    """servicer's method `name`, or one raising NotImplementedError (UNIMPLEMENTED) where only
    the generated base class has it (an RPC of the contract not built yet)."""
    if any(name in vars(cls) for cls in type(servicer).__mro__ if not cls.__module__.startswith("loyalty.v1")):
        return getattr(servicer, name)

    def not_yet(_request, _context):
        raise NotImplementedError(name)

    return not_yet


def _serve(rpc: str, behavior, guard: CallGuard, admission: Admission, request_timeout: float):
    async def serve(_requests, context: grpc.aio.ServicerContext):
        started = time.perf_counter()
        metrics.observe_start(rpc)
        metadata = context.invocation_metadata()
        try:
            bearer(metadata)  # a call without a key is refused before its request is awaited
            try:
                async with asyncio.timeout(request_timeout):
                    request = await context.read()
            except TimeoutError:
                raise request_incomplete(request_timeout) from None
            if request is grpc.aio.EOF:
                raise request_incomplete(request_timeout)
        except LedgerError as error:
            log_call(rpc, error.category.value, started, reason=error.reason)
            status = to_status(error)
            await context.abort(status.code, status.details, status.trailing_metadata)

        scope = call_context.CallScope()
        try:
            reply = await admission.run(
                guard.serve, rpc, behavior, request, metadata, started, scope.caller_waiting, scope
            )
        except asyncio.CancelledError:
            # The caller left (its deadline passed, it cancelled): gRPC cancels this task. The
            # work stops short of committing; a statement still running for it is cancelled,
            # which is a network round trip: not on the loop.
            scope.abandoned = True
            if scope.attached:
                asyncio.get_running_loop().run_in_executor(None, scope.cancel)
            raise
        except LedgerError as error:  # refused by the admission bound, before any work
            log_call(rpc, error.category.value, started, reason=error.reason)
            reply = to_status(error)
        if isinstance(reply, grpc.Status):
            await context.abort(reply.code, reply.details, reply.trailing_metadata)
        return reply

    return serve

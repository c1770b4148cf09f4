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
import logging
import time
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from ledger.api import metrics
from ledger.api.admission import Admission
from ledger.api.call_guard import INTERNAL_MESSAGE, CallGuard, bearer, log_call, tolerant
from ledger.api.errors import to_status
from ledger.domain.errors import Category, LedgerError
from ledger import call_context


log = logging.getLogger("ledger.calls")
# A followed stream's pause between polls that found nothing: its delay at rest is at most this
# and one poll.
STREAM_POLL_S = 0.25


def request_incomplete(seconds: float) -> LedgerError:
    return LedgerError(
        Category.DEADLINE_EXCEEDED,
        "REQUEST_INCOMPLETE",
        f"the request message did not arrive within {seconds:g} s of the call's start; nothing was done",
    )


def generic_handler(
    descriptor: ServiceDescriptor,
    servicer,
    guard: CallGuard,
    admission: Admission,
    request_timeout: float,
    stopping: asyncio.Event | None = None,
) -> grpc.GenericRpcHandler:
    """The handlers of every method of one service, each running `servicer`'s method of the
    same name behind the guard. stopping: set when the server begins to stop; streams then end
    (UNAVAILABLE / SERVER_STOPPING) instead of holding the shutdown for its whole grace."""
    handlers = {}
    for method in descriptor.methods:
        rpc = f"{descriptor.name}.{method.name}"
        if method.server_streaming:
            metrics.server_streaming(rpc)
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _serve_stream(rpc, _opening(servicer, method.name), guard, admission, request_timeout, stopping),
                request_deserializer=tolerant(message_factory.GetMessageClass(method.input_type).FromString),
                response_serializer=message_factory.GetMessageClass(method.output_type).SerializeToString,
            )
            continue
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


async def _request(rpc: str, context: grpc.aio.ServicerContext, started: float, request_timeout: float):
    """The call's one request message; a call without a key is refused before it is awaited."""
    metadata = context.invocation_metadata()
    try:
        bearer(metadata)
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
    return request


def _serve(rpc: str, behavior, guard: CallGuard, admission: Admission, request_timeout: float):
    async def serve(_requests, context: grpc.aio.ServicerContext):
        started = time.perf_counter()
        metrics.observe_start(rpc)
        metadata = context.invocation_metadata()
        request = await _request(rpc, context, started, request_timeout)

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


def _opening(servicer, name: str):
    """The servicer's method that opens stream `name` (its STREAMING table), or UNIMPLEMENTED."""
    opener = getattr(servicer, "STREAMING", {}).get(name)
    if opener is not None:
        return getattr(servicer, opener)

    def not_yet(_request, _context):
        raise NotImplementedError(name)

    return not_yet


def server_stopping() -> LedgerError:
    return LedgerError(
        Category.UNAVAILABLE,
        "SERVER_STOPPING",
        "the server is stopping: resume the stream (on this or another server) after the last event_id received",
    )


def _serve_stream(
    rpc: str, opening, guard: CallGuard, admission: Admission, request_timeout: float, stopping: asyncio.Event | None
):
    """A server-streaming RPC: the request arrives as for a unary call; the guard authenticates,
    authorizes, rate-limits and runs `opening` on a worker, which answers a poller (or a
    status). Then each poll runs on a worker (one short read; a busy server only delays it)
    and the stream sleeps on the event loop between empty polls: a waiting stream holds no
    thread and no database connection. The call is logged and measured once, when it ends."""

    async def serve(_requests, context: grpc.aio.ServicerContext):
        started = time.perf_counter()
        metrics.observe_start(rpc)
        metadata = context.invocation_metadata()
        request = await _request(rpc, context, started, request_timeout)
        scope = call_context.CallScope()
        watch: Any
        try:
            watch = await admission.run(
                guard.serve, rpc, opening, request, metadata, started, scope.caller_waiting, scope, False
            )
        except LedgerError as error:  # refused by the admission bound, before any work
            log_call(rpc, error.category.value, started, reason=error.reason)
            watch = to_status(error)
        if isinstance(watch, grpc.Status):
            await context.abort(watch.code, watch.details, watch.trailing_metadata)
        code, reason = "OK", ""
        stopped = stopping or asyncio.Event()
        try:
            while True:
                if stopped.is_set():
                    raise server_stopping()
                try:
                    reply = await admission.run(watch.poll)
                except LedgerError as error:
                    if error.category is Category.RESOURCE_EXHAUSTED or error.category is Category.ABORTED:
                        reply = None  # the server is busy or a read lost a race: poll again later
                    elif error.category is Category.UNAVAILABLE:
                        reply = None  # the database is away: keep the stream, poll again later
                    else:
                        raise
                if reply is not None:
                    await context.write(reply)
                    continue  # more may be waiting
                try:  # a pause between polls, cut short when the server begins to stop
                    await asyncio.wait_for(stopped.wait(), STREAM_POLL_S)
                except TimeoutError:
                    pass
        except asyncio.CancelledError:
            code = "CANCELLED"  # the caller left, or the server is stopping
            raise
        except LedgerError as error:
            code, reason = error.category.value, error.reason
            status = to_status(error)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except Exception:
            code = "INTERNAL"
            log.exception("bug while streaming %s", rpc)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        finally:
            log_call(rpc, code, started, watch.caller.program_id, reason)

    return serve

"""Builds and runs the gRPC server: ledger services, health, reflection, graceful shutdown.

The server is grpc.aio: the event loop receives every call, serves health and reflection
itself, and hands the ledger's calls (whose database work blocks) to a bounded pool of
worker threads once their request has arrived (ledger.api.unary_calls,
ledger.api.admission). The loop runs on a thread of its own, so `start` returns to a
synchronous caller (the command line, the tests) as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from ledger.api.admission import Admission
from ledger.api.call_guard import CallGuard
from ledger.api.events_servicer import EventsServicer
from ledger.api.ledger_servicer import LedgerServicer
from ledger.api.programs_servicer import ProgramsServicer
from ledger.api.rate_limits import RateLimiter
from ledger.api.store_health import StoreHealth
from ledger.api.tls import TlsConfig
from ledger.api.unary_calls import generic_handler
from loyalty.v1 import events_pb2, ledger_pb2, programs_pb2

if TYPE_CHECKING:  # the port's type only: the api layer imports nothing of the store
    from ledger.store.database import Database


log = logging.getLogger("ledger.server")
MAX_MESSAGE_BYTES = 1 * 1024 * 1024
LEDGER_SERVICES = (
    ledger_pb2.DESCRIPTOR.services_by_name["Ledger"],
    programs_pb2.DESCRIPTOR.services_by_name["Programs"],
    events_pb2.DESCRIPTOR.services_by_name["Events"],
)
SERVICE_NAMES = tuple(service.full_name for service in LEDGER_SERVICES)
# A call that has not sent its request message after this long is ended (REQUEST_INCOMPLETE).
REQUEST_TIMEOUT_S = 10.0
# Calls allowed to wait for a worker thread, per worker, before SERVER_BUSY.
WAITING_PER_WORKER = 32
HEALTH_PROBE_INTERVAL_S = 1.0
HEALTH_PROBE_TIMEOUT_S = 2.0

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES),
    # Streams one connection may have open at once: one client cannot hold them all.
    ("grpc.max_concurrent_streams", 256),
    # Ping a connection quiet for a minute; a peer that does not answer in 20 s is gone.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # A connection with no call for 15 minutes is closed (clients reconnect transparently).
    ("grpc.max_connection_idle_ms", 15 * 60_000),
]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    admission: Admission
    store_health: StoreHealth
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list = field(default_factory=list)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting calls, let in-flight calls finish within the grace period."""

        async def stop() -> None:
            self.stopping.set()  # streams end now (their clients resume elsewhere)
            for task in self._tasks:
                task.cancel()
            await self.health.enter_graceful_shutdown()
            await self.server.stop(grace_seconds)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=grace_seconds + 30)
        self.admission.shutdown()
        self.store_health.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def start(
    db: Database,
    listen: str,
    *,
    max_workers: int = 32,
    share_port: bool = False,
    tls: TlsConfig | None = None,
    limiter: RateLimiter | None = None,
    request_timeout: float = REQUEST_TIMEOUT_S,
    health_interval: float = HEALTH_PROBE_INTERVAL_S,
    interceptors: tuple = (),
) -> RunningServer:
    """max_workers: threads doing the ledger's database work (at most 32 more calls each wait).
    share_port: several server processes listen on one port (SO_REUSEPORT); the kernel
    spreads connections over them, so a machine's cores are not limited by one GIL.
    tls: serve TLS (mutual TLS when it names a client CA) instead of plaintext.
    limiter: per-key rate limits (None: unlimited).
    request_timeout: seconds a call may take to send its request message.
    health_interval: seconds between probes of the database for the health service.
    interceptors: grpc.aio server interceptors (tracing: ledger.api.tracing)."""
    credentials = tls.server_credentials() if tls is not None else None  # bad files fail before binding
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-aio", daemon=True)
    thread.start()

    async def build() -> RunningServer:
        server = grpc.aio.server(
            interceptors=interceptors or None,
            options=[*CHANNEL_OPTIONS, ("grpc.so_reuseport", 1 if share_port else 0)],
        )
        admission = Admission(max_workers, max_workers * WAITING_PER_WORKER)
        guard = CallGuard(db, limiter)
        stopping = asyncio.Event()
        servicers = (LedgerServicer(db), ProgramsServicer(db), EventsServicer(db))
        for descriptor, servicer in zip(LEDGER_SERVICES, servicers):
            server.add_generic_rpc_handlers(
                (generic_handler(descriptor, servicer, guard, admission, request_timeout, stopping),)
            )
        health_servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
        if credentials is not None:
            port = server.add_secure_port(listen, credentials)
        else:
            port = server.add_insecure_port(listen)
        if port == 0:
            raise OSError(f"cannot listen on {listen}")
        store_health = StoreHealth(
            db.reachability(), health_servicer, ("", *SERVICE_NAMES), health_interval, HEALTH_PROBE_TIMEOUT_S
        )
        await store_health.probe_once()  # the first answer reflects the database already
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, store_health.status)
        await server.start()
        running = RunningServer(server, port, health_servicer, loop, thread, admission, store_health, stopping)
        running._tasks.append(asyncio.ensure_future(store_health.run()))
        return running

    try:
        return asyncio.run_coroutine_threadsafe(build(), loop).result(timeout=60)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        raise


def wait_for_stop_signal() -> None:
    """Returns once SIGTERM or SIGINT arrives (logged); call it from the main thread."""
    stopping = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A timed wait: a signal delivered to another thread only sets CPython's flag,
    # and the handler runs when the main thread next wakes up.
    while not stopping.wait(0.25):
        pass


def serve_until_signal(running: RunningServer, grace_seconds: float = 10.0) -> None:
    wait_for_stop_signal()
    running.stop(grace_seconds)
    log.info("stopped")

"""Builds and runs the gRPC server: ledger services, health, reflection, graceful shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import Engine

from ledger.api.call_guard import CallGuard
from ledger.api.ledger_servicer import LedgerServicer
from ledger.api.programs_servicer import ProgramsServicer
from ledger.api.rate_limits import RateLimiter
from ledger.api.tls import TlsConfig
from ledger.gen.loyalty.v1 import (
    ledger_pb2,
    ledger_pb2_grpc,
    programs_pb2,
    programs_pb2_grpc,
)

log = logging.getLogger("ledger.server")
MAX_MESSAGE_BYTES = 1 * 1024 * 1024
SERVICE_NAMES = (
    ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name,
    programs_pb2.DESCRIPTOR.services_by_name["Programs"].full_name,
)


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting calls, let in-flight calls finish within the grace period."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_seconds).wait()


def start(
    engine: Engine,
    listen: str,
    *,
    max_workers: int = 32,
    share_port: bool = False,
    tls: TlsConfig | None = None,
    limiter: RateLimiter | None = None,
) -> RunningServer:
    """share_port: several server processes listen on one port (SO_REUSEPORT); the kernel
    spreads connections over them, so a machine's cores are not limited by one GIL.
    tls: serve TLS (mutual TLS when it names a client CA) instead of plaintext.
    limiter: per-key rate limits (None: unlimited)."""
    credentials = tls.server_credentials() if tls is not None else None  # bad files fail before binding
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        interceptors=[CallGuard(engine, limiter)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES),
            # Unless asked to, refuse to share a port silently with another server.
            ("grpc.so_reuseport", 1 if share_port else 0),
        ],
        maximum_concurrent_rpcs=max_workers * 8,
    )
    ledger_pb2_grpc.add_LedgerServicer_to_server(LedgerServicer(engine), server)
    programs_pb2_grpc.add_ProgramsServicer_to_server(ProgramsServicer(engine), server)
    health_servicer = health.HealthServicer()
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
    server.start()
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, health_servicer)


def serve_until_signal(running: RunningServer, grace_seconds: float = 10.0) -> None:
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
    running.stop(grace_seconds)
    log.info("stopped")

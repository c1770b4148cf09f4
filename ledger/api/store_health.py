"""Keeps grpc.health.v1 in step with the database: NOT_SERVING while it does not answer.

Every `interval` seconds a probe (ledger.store.reachability) runs on a thread of its own; an
answer within `timeout` seconds makes every service SERVING, no answer NOT_SERVING. A load
balancer then takes a server whose database is gone out of rotation within
interval + timeout seconds, and back within one interval of the database's return.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent import futures

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio


log = logging.getLogger("ledger.health")
SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING


class StoreHealth:
    """probe: the database's reachability probe (Database.reachability()): check() returns
    when the database answers and raises otherwise; close() lets it go."""

    def __init__(
        self, probe, health: health_aio.HealthServicer, services: tuple[str, ...], interval: float, timeout: float
    ) -> None:
        self._probe = probe
        self._health = health
        self._services = services
        self._interval = interval
        self._timeout = timeout
        # One thread: a probe stuck on a dead network is never joined by a second one.
        self._thread = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-health")
        self._pending: asyncio.Future | None = None
        self.status = SERVING

    async def run(self) -> None:
        """Probes until cancelled."""
        while True:
            await self.probe_once()
            await asyncio.sleep(self._interval)

    async def probe_once(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pending is None or self._pending.done():
            self._pending = loop.run_in_executor(self._thread, self._probe.check)
        try:
            await asyncio.wait_for(asyncio.shield(self._pending), self._timeout)
            status = SERVING
        except asyncio.TimeoutError:
            status, why = NOT_SERVING, f"no answer within {self._timeout:g} s"
        except Exception as error:  # whatever the driver raised: the store is not answering
            status, why = NOT_SERVING, f"{type(error).__name__}: {str(error).strip()[:200]}"
        if status != self.status:
            if status == SERVING:
                log.warning("the database answers again: health is SERVING")
            else:
                log.error("the database does not answer: health is NOT_SERVING", extra={"error": why})
            self.status = status
            for service in self._services:
                await self._health.set(service, status)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._probe.close()

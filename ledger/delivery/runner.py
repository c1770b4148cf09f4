"""Runs event delivery (webhooks, the NATS relay) in one process among all that share the
database: inside each `serve` process (unless LOYALTY_DELIVERY=off) or as
`loyalty-ledger deliver`.

Every such process runs a DeliveryRunner; it asks ledger.store.leadership (the event
delivery lock, the same machinery as the due-work leader's) once per interval whether it
leads, and only the leader sends. A leader that dies (even by SIGKILL) releases the lock
with its connection or its file, and another process takes over within an interval, from
the positions stored in the database.

A process with nothing to send (no LOYALTY_NATS_URL, no webhook in the database) holds no
connection for it: it looks for a first webhook every IDLE_LOOK_S with a connection it
closes again, and asks for the lock only once there is one.

The sender keeps to itself so the tills never wait for it: a thread of its own with its
own event loop, its own small connection pool (DB_POOL) and its own worker threads for the
database; HTTP and NATS I/O is asynchronous on that loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ledger.delivery.relay import Relay
from ledger.delivery.webhooks import EndpointSender, Options
from ledger.domain.webhooks import RetryPolicy
from ledger.service import webhooks as service
from ledger.store import leadership
from ledger.store.database import Database

log = logging.getLogger("ledger.delivery")

DB_POOL = 4
RELOAD_EVERY_S = 1.0  # how soon a new webhook gets its sender
IDLE_LOOK_S = 2.0  # with nothing to send, how often to look for a first webhook


def options_from(values: dict[str, Any], allow_private: bool) -> Options:
    return Options(
        timeout=values["webhook_timeout"],
        concurrency=values["webhook_concurrency"],
        policy=RetryPolicy(values["webhook_retry_base"], values["webhook_retry_cap"], values["webhook_retry_window"]),
        poll=values["delivery_poll"],
        allow_private=allow_private,
    )


class DeliveryRunner:
    def __init__(
        self,
        db: Database,
        options: Options,
        *,
        nats_url: str | None = None,
        nats_stream: str = "LOYALTY",
        leader: leadership.Leadership | None = None,
        leader_interval: float = 1.0,
        on_leadership: Callable[[bool], None] | None = None,
    ) -> None:
        """db: a Database of the delivery's own (it is disposed by stop())."""
        self._db, self._options = db, options
        self._nats_url, self._nats_stream = nats_url, nats_stream
        self._leader = leader or leadership.for_delivery(db.engine, on_leadership)
        self._interval = leader_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="event-delivery", daemon=True)
        self._executor = ThreadPoolExecutor(max_workers=DB_POOL, thread_name_prefix="delivery-db")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._leader.release()
        self._db.dispose()

    def run_forever(self) -> None:
        """In the calling thread, until stop() (from a signal handler's thread)."""
        self._main()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._lead())
        except Exception:
            log.exception("event delivery crashed")
        finally:
            loop.close()

    def _wanted(self) -> bool:
        """Is there anything to send? (A NATS URL, or a webhook.) Without, this process holds
        no connection for the delivery: no lock session, and the pool emptied after the look."""
        if self._nats_url:
            return True
        try:
            found = service.any_webhook(self._db)
        except Exception as error:
            log.debug("cannot look for webhooks", extra={"error": str(error)[:300]})
            found = False
        if not found:
            self._db.engine.dispose()
        return found

    async def _lead(self) -> None:
        loop = asyncio.get_running_loop()
        sending: asyncio.Task | None = None
        halt = asyncio.Event()
        while not self._stop.is_set():
            if sending is None and not await loop.run_in_executor(self._executor, self._wanted):
                await asyncio.sleep(IDLE_LOOK_S)
                continue
            leading = await loop.run_in_executor(self._executor, self._leader.hold)
            if leading and sending is None:
                halt = asyncio.Event()
                sending = asyncio.ensure_future(self._send(halt))
            elif not leading and sending is not None:
                halt.set()
                await self._finish(sending)
                sending = None
            await asyncio.sleep(self._interval)
        if sending is not None:
            halt.set()
            await self._finish(sending)

    @staticmethod
    async def _finish(task: asyncio.Task) -> None:
        try:
            await asyncio.wait_for(task, 12.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("event delivery stopped with an error")

    async def _send(self, halt: asyncio.Event) -> None:
        """While this process leads: a sender per webhook (started and ended as webhooks come
        and go) and the relay."""
        loop = asyncio.get_running_loop()
        tasks: dict[str, asyncio.Task] = {}
        relay = None
        if self._nats_url:
            relay = asyncio.ensure_future(Relay(self._db, self._nats_url, self._nats_stream, self._executor).run(halt))
        try:
            while not halt.is_set():
                try:
                    rows = await loop.run_in_executor(self._executor, service.webhook_ids, self._db)
                except Exception as error:
                    log.warning("cannot read the webhooks; will retry", extra={"error": str(error)[:300]})
                    rows = None
                if rows is not None:
                    for row in rows:
                        task = tasks.get(row.webhook_id)
                        if task is None or task.done():
                            sender = EndpointSender(self._db, row, self._options, self._executor)
                            tasks[row.webhook_id] = asyncio.ensure_future(sender.run(halt))
                    known = {row.webhook_id for row in rows}
                    for webhook_id in [w for w, t in tasks.items() if w not in known and t.done()]:
                        del tasks[webhook_id]
                try:
                    await asyncio.wait_for(halt.wait(), RELOAD_EVERY_S)
                except asyncio.TimeoutError:
                    pass
        finally:
            pending = [*tasks.values(), *([relay] if relay else [])]
            done, still = await asyncio.wait(pending, timeout=self._options.timeout + 1) if pending else (set(), set())
            for task in still:
                task.cancel()

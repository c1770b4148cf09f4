"""Hands ledger calls from the event loop to the worker threads, a bounded number at a time.

A worker thread runs one call's database work (psycopg2 and sqlite3 block). At most one call
per worker is handed over at a time; up to `max_waiting` more wait on the event loop, where a
waiting call costs a coroutine, not a thread, and leaves the queue as soon as its caller
gives up. Beyond that a call is refused at once with RESOURCE_EXHAUSTED / SERVER_BUSY and
records nothing. Health, reflection and calls still sending their request never take a
worker, so no number of slow or unfinished calls can starve them.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent import futures
from typing import Callable, TypeVar

from ledger.domain.errors import Category, LedgerError

T = TypeVar("T")
RETRY_AFTER_MS = 100


class Admission:
    def __init__(self, workers: int, max_waiting: int) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self._executor = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc")
        self._turns = asyncio.Semaphore(workers)  # created on the serving loop
        self._waiting = 0

    async def run(self, work: Callable[..., T], *args) -> T:
        """work(*args) on a worker thread, in a copy of this context; SERVER_BUSY when too
        many calls already wait for a worker."""
        if self._turns.locked() and self._waiting >= self.max_waiting:
            raise LedgerError(
                Category.RESOURCE_EXHAUSTED,
                "SERVER_BUSY",
                f"the server is working on {self.workers} calls and {self._waiting} more are waiting; "
                f"retry in {RETRY_AFTER_MS} ms with the same idempotency key",
                metadata={"retry_after_ms": str(RETRY_AFTER_MS)},
            )
        self._waiting += 1
        try:
            await self._turns.acquire()
        finally:
            self._waiting -= 1
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        context = contextvars.copy_context()

        def finish(result, error) -> None:  # on the loop, once the thread is done
            # The turn is given back when the thread is done (not when a caller who left
            # stops waiting for it), so no more than `workers` calls ever hold a thread.
            self._turns.release()
            if not answer.done():
                if error is not None:
                    answer.set_exception(error)
                else:
                    answer.set_result(result)

        def job() -> None:
            try:
                result = context.run(work, *args)
            except BaseException as error:  # handed to the waiting coroutine
                loop.call_soon_threadsafe(finish, None, error)
            else:
                loop.call_soon_threadsafe(finish, result, None)  # one wake-up of the loop per call

        try:
            self._executor.submit(job)
        except BaseException:
            self._turns.release()
            raise
        return await answer

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)

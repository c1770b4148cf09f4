"""The NATS JetStream relay: every program's events, in commit order, to subjects
`loyalty.<program_id>.<type>` of one stream (nats-py).

Each message carries `Nats-Msg-Id: <event_id>`, and the payload is the event in proto3
JSON, as ListEvents gives it. The relay's position per program is a database row
(relay_positions) that moves only after JetStream acknowledged every event up to it; a
relay that stops in between (killed, NATS restarted, the connection cut) publishes those
events again, and JetStream's duplicate window drops the copies: the stream holds each
event once. Events that cannot be acknowledged are published again after a pause, never
skipped.

The stream is created if missing (subjects `loyalty.>`, file storage, duplicate window
DUPLICATE_WINDOW_S); an existing stream is used as it is. The duplicate window must cover
the time between an acknowledgement and the position's commit, plus a restart of the relay:
15 minutes does, at a cost of remembering 15 minutes of message ids in the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from typing import Any

import nats
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from ledger.api import metrics
from ledger.delivery.webhooks import body_of
from ledger.service import relay as service

log = logging.getLogger("ledger.delivery.relay")

BATCH = 500
ACK_TIMEOUT_S = 10.0
DUPLICATE_WINDOW_S = 15 * 60
SUBJECTS = "loyalty.>"


def subject(program_id: str, event_type: str) -> str:
    return f"loyalty.{program_id}.{event_type}"


class Relay:
    def __init__(self, db: Any, url: str, stream: str, executor: Executor, poll: float = 0.25) -> None:
        self._db, self._url, self._stream, self._executor, self._poll = db, url, stream, executor, poll
        self._nc: Any = None
        self._js: Any = None

    async def _db_call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, stop: asyncio.Event) -> None:
        pause = 0.5
        try:
            while not stop.is_set():
                try:
                    if self._js is None:
                        await self._connect()
                    busy = await self.round()
                    pause = 0.5
                except Exception as error:  # NATS away, an acknowledgement that never came, the database
                    reason = type(error).__name__
                    log.warning("relay round failed; will retry", extra={"reason": reason, "error": str(error)[:300]})
                    metrics.observe_relay(await self._lag(), failure=reason)
                    await self._close()
                    busy = False
                    await self._sleep(stop, pause)
                    pause = min(pause * 2, 5.0)
                    continue
                if not busy:
                    await self._sleep(stop, self._poll)
        finally:
            await self._close()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _connect(self) -> None:
        # No reconnecting inside the client: a broken connection ends the round, and the next
        # round connects afresh and publishes from the stored position.
        self._nc = await nats.connect(self._url, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=0)
        self._js = self._nc.jetstream(timeout=ACK_TIMEOUT_S)
        try:
            await self._js.stream_info(self._stream)
        except NotFoundError:
            await self._js.add_stream(
                js_api.StreamConfig(
                    name=self._stream,
                    subjects=[SUBJECTS],
                    storage=js_api.StorageType.FILE,
                    duplicate_window=DUPLICATE_WINDOW_S,
                )
            )
            log.info("created the JetStream stream", extra={"stream": self._stream, "subjects": SUBJECTS})
        log.info("relaying events to NATS JetStream", extra={"url": self._url, "stream": self._stream})

    async def _close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception:
                pass

    async def _lag(self) -> float:
        try:
            oldest = await self._db_call(service.oldest_unrelayed, self._db)
        except Exception:
            return 0.0
        return 0.0 if oldest is None else max(0.0, time.time() - oldest / 1e6)

    async def round(self) -> bool:
        """Publishes each program's next events; True when it published something."""
        todo = await self._db_call(service.read_round, self._db, BATCH)
        published = 0
        for program_id, events in todo:
            futures = []
            for event in events:
                futures.append(
                    await self._js.publish_async(
                        subject(program_id, event.type),
                        body_of(event).encode(),
                        headers={"Nats-Msg-Id": event.event_id},
                    )
                )
            acks = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), ACK_TIMEOUT_S)
            acked = 0
            for ack in acks:
                if isinstance(ack, BaseException):
                    break
                acked += 1
            if acked:
                await self._db_call(service.advance, self._db, program_id, events[acked - 1].position)
                published += acked
            if acked < len(events):
                failed = next(a for a in acks if isinstance(a, BaseException))
                raise failed if isinstance(failed, Exception) else RuntimeError(str(failed))
        metrics.observe_relay(await self._lag(), published=published)
        return published > 0

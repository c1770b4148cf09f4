"""The webhook sender: one asyncio task per endpoint, so a slow or dead endpoint holds up
only itself, never the tills (the sender has its own thread, event loop, database
connections and worker threads) nor the other endpoints.

A round of an endpoint's task reads (ledger.service.webhooks.read_round) its due retries
and the events after its cursor, sends them, and records what happened in one
transaction, moving the cursor past the round's events only then. So a sender killed in
the middle of a round sends the round again when it (or another process) comes back: the
endpoint sees those events twice, under the same `webhook-id`, and nothing is lost.

Order: each member's events are a chain, sent one after the other; chains run at once,
at most `concurrency` requests in flight per endpoint. An event that fails enters the
retry queue (exponential backoff with jitter, ledger.domain.webhooks.RetryPolicy), and the
member's later events queue behind it until it is delivered or failed for good.

Each request is signed per Standard Webhooks with the `standardwebhooks` package:
`webhook-id` is the event_id, `webhook-timestamp` the attempt's Unix time,
`webhook-signature` `v1,<base64 HMAC-SHA256 of id.timestamp.body>`. The body is the event
in proto3 JSON, as ListEvents shows it, whatever its type. A 2xx answer within the timeout
(10 s) is a delivery; a redirect is never followed; the host's addresses are checked
(ledger.domain.webhooks) before each round and the request goes to a checked address.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import httpx
from google.protobuf import json_format
from standardwebhooks.webhooks import Webhook as Signer

from ledger.api import metrics
from ledger.api.events_servicer import event_message
from ledger.domain import webhooks as rules
from ledger.domain.events import Event
from ledger.service import webhooks as service
from ledger.store.database import Database
from ledger.store.webhooks import AttemptRow, QueuedRow, WebhookRow

log = logging.getLogger("ledger.delivery.webhooks")

BATCH = 200
USER_AGENT = "loyalty-ledger-webhooks/1"
MAX_ANSWER_BYTES = 64 * 1024  # read and dropped: only the status counts
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Options:
    timeout: float = 10.0
    concurrency: int = 8
    policy: rules.RetryPolicy = field(default_factory=rules.RetryPolicy)
    poll: float = 0.25
    allow_private: bool = False
    detach_after: float = 2.0  # a round waits this long for its slowest requests


@dataclass(frozen=True)
class Result:
    status: int  # 0: no HTTP answer
    latency_ms: int
    error: str
    at: int  # micros

    @property
    def delivered(self) -> bool:
        return not self.error and rules.outcome_of(self.status)

    @property
    def label(self) -> str:
        if self.status:
            return str(self.status)
        if self.error.startswith("timeout"):
            return "timeout"
        if self.error.startswith("refused"):
            return "refused"
        return "error"


def body_of(event: Event) -> str:
    """The event in proto3 JSON (camelCase), as ListEvents gives it, on one line."""
    message = json_format.MessageToDict(event_message(event))
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _micros() -> int:
    return time.time_ns() // 1000


class _RoundState:
    """A round's outcome, and what is still in flight when the round stops waiting."""

    def __init__(self) -> None:
        self.outcome = service.Outcome()
        self.closed = False
        self.recorded = asyncio.Event()
        # key -> (chain, index, sending) of a chain, or (queued row, event, sending) of a retry
        self.flights: dict[object, tuple[Any, Any, bool | None]] = {}
        self.detached: dict[int, QueuedRow] = {}  # position -> its pending row, for the late answer

    def detach(self, due_at: int) -> None:
        """Records what is unfinished as pending: an event in flight due again at due_at (after
        its timeout, if its answer never gets recorded), a chain's later events behind it."""
        self.closed = True
        now = _micros()
        for first, second, sending in self.flights.values():
            if isinstance(first, QueuedRow):  # a retry
                if sending:
                    row = replace(first, next_attempt_at=due_at)
                    self.outcome.changed.append((row, first.attempts))
                    self.detached[first.position] = row
                continue
            chain, index = first, second
            rest = chain[index:]
            if sending:
                event = rest[0]
                row = QueuedRow(event.position, event.member_id, event.type, rules.PENDING, 0, now, due_at)
                self.outcome.entered.append(row)
                self.detached[event.position] = row
                rest = rest[1:]
            for later in rest:
                self.outcome.entered.append(QueuedRow(later.position, later.member_id, later.type, rules.PENDING, 0, now, 0))


class Resolved:
    """The address a round's requests go to, checked (or why there is none)."""

    def __init__(self, address: str | None, problem: str) -> None:
        self.address, self.problem = address, problem


async def resolve(target: rules.Target, allow_private: bool) -> Resolved:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        return Resolved(None, f"refused: cannot resolve {target.host}: {error}")
    addresses = sorted({str(info[4][0]) for info in infos})
    problem = rules.addresses_problem(target, addresses, allow_private)
    if problem:
        return Resolved(None, f"refused: {problem}")
    return Resolved(addresses[0], "")


class EndpointSender:
    """One webhook's task: rounds until stopped or the webhook is deleted."""

    def __init__(self, db: Database, webhook: WebhookRow, options: Options, executor: Executor) -> None:
        self._db, self._options, self._executor = db, options, executor
        self.webhook_id = webhook.webhook_id
        self._signer = Signer(webhook.secret)
        self._target = rules.parse_url(webhook.url)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(options.timeout),
            follow_redirects=False,
            trust_env=False,
            # The round's semaphore bounds the requests a round makes; requests that outlived
            # their round (each within the timeout) must not hold the next round's.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=options.concurrency),
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
        )
        self._rng = random.Random()
        self._pruned_at = 0.0
        self._stragglers: set[asyncio.Future] = set()

    async def _db_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    busy = await self.round()
                except Exception:
                    log.exception("webhook round failed; will retry", extra={"webhook_id": self.webhook_id})
                    busy = False
                    await asyncio.sleep(1.0)
                if busy is None:
                    return  # deleted
                if not busy:
                    try:
                        await asyncio.wait_for(stop.wait(), self._options.poll)
                    except asyncio.TimeoutError:
                        pass
        finally:
            await self._client.aclose()

    async def round(self) -> bool | None:
        """One round; True when it sent something, None when the webhook is gone."""
        now = _micros()
        found: service.Round | None = await self._db_call(service.read_round, self._db, self.webhook_id, now, BATCH)
        if found is None:
            metrics.observe_webhook_lag(self.webhook_id, None)
            return None
        self._observe_lag(found.oldest_waiting, now)
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            await self._db_call(service.prune_attempts, self._db, found.webhook, now)
        if not found.heads and not found.chains and not found.behind and found.cursor == found.webhook.cursor:
            return False
        state = _RoundState()
        since = _micros()
        for event in found.behind:  # their member has an event pending: they wait behind it
            state.outcome.entered.append(QueuedRow(event.position, event.member_id, event.type, rules.PENDING, 0, since, 0))
        if found.heads or found.chains:
            resolved = await resolve(self._target, self._options.allow_private)
            limit = asyncio.Semaphore(self._options.concurrency)
            tasks = [
                *(asyncio.ensure_future(self._retry(q, e, resolved, limit, state)) for q, e in found.heads),
                *(asyncio.ensure_future(self._chain(c, resolved, limit, state)) for c in found.chains),
            ]
            # Requests still out after `detach_after` (an endpoint that sometimes takes its whole
            # timeout) do not hold the round, and with it every other member's events: their
            # events are recorded as pending, due again only after the timeout, and their
            # answers are recorded when they come (or, if this process dies first, they are
            # sent again then).
            _, stragglers = await asyncio.wait(tasks, timeout=self._options.detach_after)
            if stragglers:
                state.detach(_micros() + int((self._options.timeout + 1) * 1e6))
                self._stragglers.update(stragglers)  # the loop keeps only weak references to tasks
                for task in stragglers:
                    task.add_done_callback(self._stragglers.discard)
        outcome = state.outcome
        delivered = sum(1 for a in outcome.attempts if a.outcome == rules.DELIVERED)
        outcome.hurry = delivered > 0 and delivered == len(outcome.attempts) and bool(found.chains) and not state.closed
        try:
            recorded = await self._db_call(service.record_round, self._db, found, outcome, _micros())
        finally:
            state.recorded.set()
        if not recorded:
            log.info("webhook rewound or deleted during a round; its events go again", extra={"webhook_id": self.webhook_id})
            return True
        metrics.observe_webhook_failed(self.webhook_id, sum(1 for a in outcome.attempts if a.outcome == rules.FAILED))
        return True

    def _observe_lag(self, oldest: int | None, now: int) -> None:
        metrics.observe_webhook_lag(self.webhook_id, 0.0 if oldest is None else max(0.0, (now - oldest) / 1e6))

    async def _chain(self, chain: list[Event], resolved: Resolved, limit: asyncio.Semaphore, state: _RoundState):
        """A member's new events in order; the first that fails and those after it queue."""
        key = object()
        for index, event in enumerate(chain):
            state.flights[key] = (chain, index, None)
            async with limit:
                if state.closed:
                    return  # detached before it was sent: queued by detach()
                state.flights[key] = (chain, index, True)
                result = await self._send(event, resolved)
            if state.closed:  # detached in flight: its row is pending, its answer goes there
                await self._late(state.detached[event.position], event, result, state)
                return
            del state.flights[key]
            if result.delivered:
                state.outcome.attempts.append(self._attempt(event, 1, result, rules.DELIVERED))
                continue
            virtual = QueuedRow(event.position, event.member_id, event.type, rules.PENDING, 0, result.at, 0)
            attempt, row = self._after_failure(virtual, event, result)
            state.outcome.attempts.append(attempt)
            state.outcome.entered.append(row)
            for later in chain[index + 1 :]:
                state.outcome.entered.append(
                    QueuedRow(later.position, later.member_id, later.type, rules.PENDING, 0, result.at, 0)
                )
            return
        state.flights.pop(key, None)

    async def _retry(
        self, queued: QueuedRow, event: Event, resolved: Resolved, limit: asyncio.Semaphore, state: _RoundState
    ):
        key = object()
        state.flights[key] = (queued, event, None)
        async with limit:
            if state.closed:
                return  # not sent: its row stays as it was, due again next round
            state.flights[key] = (queued, event, True)
            result = await self._send(event, resolved)
        if state.closed:
            await self._late(state.detached[event.position], event, result, state)
            return
        del state.flights[key]
        if result.delivered:
            state.outcome.attempts.append(self._attempt(event, queued.attempts + 1, result, rules.DELIVERED))
            state.outcome.removed.append(queued.position)
            return
        attempt, row = self._after_failure(queued, event, result)
        state.outcome.attempts.append(attempt)
        state.outcome.changed.append((row, queued.attempts))

    def _after_failure(self, queued: QueuedRow, event: Event, result: Result) -> tuple[AttemptRow, QueuedRow]:
        """The attempt and the event's queue row after a failed attempt (retry later, or failed)."""
        attempt = queued.attempts + 1
        retry_at = self._options.policy.after_failure(attempt, queued.since / 1e6, result.at / 1e6, self._rng)
        if retry_at is None:
            log.warning(
                "webhook delivery failed for good",
                extra={"webhook_id": self.webhook_id, "event_id": event.event_id, "attempts": attempt, "error": result.error},
            )
            return self._attempt(event, attempt, result, rules.FAILED), replace(queued, state=rules.FAILED, attempts=attempt)
        row = replace(queued, attempts=attempt, next_attempt_at=int(retry_at * 1e6))
        return self._attempt(event, attempt, result, rules.RETRYING), row

    async def _late(self, queued: QueuedRow, event: Event, result: Result, state: _RoundState) -> None:
        """The answer to a request that outlived its round: recorded on its pending row."""
        await state.recorded.wait()
        if result.delivered:
            attempt, row = self._attempt(event, queued.attempts + 1, result, rules.DELIVERED), None
        else:
            attempt, row = self._after_failure(queued, event, result)
        try:
            await self._db_call(service.record_late, self._db, self.webhook_id, attempt, queued, row)
        except Exception:  # the row stays pending: the event is sent again after its timeout
            log.exception("cannot record a late webhook answer", extra={"webhook_id": self.webhook_id})

    def _attempt(self, event: Event, attempt: int, result: Result, outcome: str) -> AttemptRow:
        metrics.observe_webhook_attempt(self.webhook_id, result.label, result.delivered)
        return AttemptRow(
            self.webhook_id,
            result.at,
            event.position,
            event.type,
            attempt,
            result.status,
            result.latency_ms,
            result.error[:256],
            outcome,
        )

    async def _send(self, event: Event, resolved: Resolved) -> Result:
        started_at = _micros()
        started = time.monotonic()

        def done(status: int, error: str) -> Result:
            return Result(status, int((time.monotonic() - started) * 1000), error, started_at)

        if resolved.address is None:
            return done(0, resolved.problem)
        body = body_of(event)
        stamp = datetime.fromtimestamp(started_at // 1_000_000, timezone.utc)
        headers = {
            "webhook-id": event.event_id,
            "webhook-timestamp": str(started_at // 1_000_000),
            "webhook-signature": self._signer.sign(event.event_id, stamp, body),
        }
        url = httpx.URL(self._target.url)
        headers["host"] = url.netloc.decode("ascii")
        extensions = {"sni_hostname": self._target.host} if self._target.scheme == "https" else {}
        request = self._client.build_request(
            "POST", url.copy_with(host=resolved.address), content=body.encode(), headers=headers, extensions=extensions
        )
        try:
            async with asyncio.timeout(self._options.timeout):
                answer = await self._client.send(request, stream=True)
                try:
                    read = 0
                    async for chunk in answer.aiter_raw():
                        read += len(chunk)
                        if read > MAX_ANSWER_BYTES:
                            break
                finally:
                    await answer.aclose()
        except TimeoutError:
            return done(0, f"timeout after {self._options.timeout:g} s")
        except httpx.TimeoutException:
            return done(0, f"timeout after {self._options.timeout:g} s")
        except httpx.HTTPError as error:
            return done(0, f"{type(error).__name__}: {error}"[:256] or type(error).__name__)
        except OSError as error:
            return done(0, f"{type(error).__name__}: {error}"[:256])
        status = answer.status_code
        if 300 <= status < 400:
            return done(status, f"HTTP {status}: redirect not followed")
        if not rules.outcome_of(status):
            return done(status, f"HTTP {status}")
        return done(status, "")

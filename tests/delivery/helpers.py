"""Shared pieces of the delivery tests: a fresh database with its own server per backend
(delivery reads every program's webhooks, so these tests keep out of the shared database),
a loopback receiver that can be told to fail, and an in-process sender with short delays."""

from __future__ import annotations

import json
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from google.protobuf import json_format

from clients.webhook_receiver import Receiver
from ledger.api import server as grpc_server
from ledger.delivery.runner import DeliveryRunner
from ledger.delivery.webhooks import Options
from ledger.domain.webhooks import RetryPolicy
from ledger.service import programs
from ledger.store import leadership, migrate
from ledger.store.database import Database
from ledger.store.engine import create_engine_for
from loyalty.v1 import events_pb2, ledger_pb2, webhooks_pb2
from tests.conftest import Api
from tests.grpc_helpers import key


@dataclass
class Fresh:
    name: str
    url: str
    db: Database
    target: str

    def program(self) -> tuple[str, Api]:
        created = programs.create_program(self.db, f"wh-{secrets.token_hex(4)}")
        return created.program_id, Api(self.target, created.admin_key)


@contextmanager
def fresh_backend(name: str, url: str):
    db = Database(create_engine_for(url, pool_size=8))
    migrate.upgrade(db.engine)
    running = grpc_server.start(db, "127.0.0.1:0", max_workers=8)
    try:
        yield Fresh(name, url, db, f"127.0.0.1:{running.port}")
    finally:
        running.stop(1)
        db.dispose()


@dataclass
class Received:
    """What a receiver got: each request's webhook-id in arrival order, and the events once."""

    ids: list[str] = field(default_factory=list)  # every request that reached on_event or a forced answer
    events: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_order(self) -> list[str]:
        with self.lock:
            return list(self.events)


@contextmanager
def receiver(secret: str, before: Callable[[str], int | None] | None = None):
    got = Received()

    def on_event(event: dict, webhook_id: str) -> None:
        with got.lock:
            got.events[webhook_id] = event

    server = Receiver(("127.0.0.1", 0), secret, on_event, before=before)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, got
    finally:
        server.shutdown()
        server.server_close()


def fast_options(**overrides: Any) -> Options:
    values: dict[str, Any] = dict(
        timeout=1.0, concurrency=4, policy=RetryPolicy(0.05, 0.2, 30.0), poll=0.05, allow_private=False,
        detach_after=0.1,
    )
    values.update(overrides)
    return Options(**values)


@contextmanager
def sending(fresh: Fresh, options: Options | None = None, nats_url: str | None = None, stream: str = "LOYALTY"):
    """The delivery, in this process, leading on its own (one sender per fresh database)."""
    runner = DeliveryRunner(
        Database(create_engine_for(fresh.url, pool_size=4)),
        options or fast_options(),
        nats_url=nats_url,
        nats_stream=stream,
        leader=leadership.SoleLeadership(),
        leader_interval=0.05,
    )
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def create_webhook(api: Api, url: str, **fields: Any) -> webhooks_pb2.Webhook:
    answer = api.programs.CreateWebhook(webhooks_pb2.CreateWebhookRequest(url=url, **fields), metadata=api.metadata)
    return answer.webhook


def make_events(api: Api, members: int, adjustments: int) -> None:
    for m in range(members):
        api.ledger.EnrollMember(ledger_pb2.EnrollMemberRequest(member_id=f"m-{m}"), metadata=api.metadata)
    for a in range(adjustments):
        api.ledger.AdjustPoints(
            ledger_pb2.AdjustPointsRequest(
                member_id=f"m-{a % members}", idempotency_key=key(), points=1 + a, reason="goodwill"
            ),
            metadata=api.metadata,
        )


def all_events(api: Api) -> list[events_pb2.Event]:
    found, token = [], ""
    while True:
        page = api.events.ListEvents(
            events_pb2.ListEventsRequest(page_size=500, page_token=token), metadata=api.metadata
        )
        found.extend(page.events)
        token = page.next_page_token
        if not token:
            return found


def as_json(event: events_pb2.Event) -> dict:
    return json.loads(json.dumps(json_format.MessageToDict(event)))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def in_member_order(order: list[str], events: dict[str, dict]) -> bool:
    """Each member's events were first received in event_id order."""
    last: dict[str, str] = {}
    for event_id in order:
        member = events[event_id]["memberId"]
        if member in last and last[member] > event_id:
            return False
        last[member] = event_id
    return True


def deliveries(api: Api, webhook_id: str, failed_only: bool = False) -> list[webhooks_pb2.WebhookDelivery]:
    found, token = [], ""
    while True:
        page = api.programs.ListWebhookDeliveries(
            webhooks_pb2.ListWebhookDeliveriesRequest(
                webhook_id=webhook_id, page_size=100, page_token=token, failed_only=failed_only
            ),
            metadata=api.metadata,
        )
        found.extend(page.deliveries)
        token = page.next_page_token
        if not token:
            return found



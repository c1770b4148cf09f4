"""Webhooks through the real gRPC API and a real HTTP receiver on loopback, on PostgreSQL and
SQLite (DESIGN.md section 10, README "Webhooks and NATS"):

- what the receiver gets verifies with the webhook's secret (Standard Webhooks, checked by
  the example receiver clients/webhook_receiver.py) and is the event as ListEvents shows it;
  a wrong secret fails verification; the type filter holds;
- an endpoint that fails (500s, timeouts) gets each event again, with backoff, until it
  answers 2xx; each member's events are first received in commit order; every attempt is
  listed by ListWebhookDeliveries;
- past the retry window a delivery fails for good, and RedeliverEvents sends it again (by
  event id), or every event after a cursor;
- SSRF: non-https, private and link-local targets are INVALID_ARGUMENT /
  WEBHOOK_URL_REFUSED, unless LOYALTY_WEBHOOK_ALLOW_PRIVATE; marketing may list, not create.
"""

from __future__ import annotations

import random
import threading
import time

import grpc
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from clients.webhook_receiver import Receiver
from ledger.domain.kinds import Role
from ledger.domain.webhooks import RetryPolicy
from tests.cli.processes import free_port
from loyalty.v1 import webhooks_pb2
from tests.databases import postgres_database, sqlite_database
from tests.delivery.helpers import (
    all_events,
    as_json,
    create_webhook,
    deliveries,
    fast_options,
    fresh_backend,
    in_member_order,
    make_events,
    sending,
    wait_until,
)
from tests.grpc_helpers import expect_error


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def fresh(request, tmp_path_factory):
    if request.param == "postgresql":
        with postgres_database("loyalty_webhooks") as url, fresh_backend("postgresql", url) as backend:
            yield backend
    else:
        with sqlite_database(tmp_path_factory.mktemp("webhooks")) as url, fresh_backend("sqlite", url) as backend:
            yield backend


def test_signed_deliveries_are_the_events_and_verify(fresh):
    _, api = fresh.program()
    # The secret comes with the webhook, the webhook needs the URL: a receiver on a port chosen first.
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/loyalty"
    everything = create_webhook(api, url, description="crm")
    only_adjusted = create_webhook(api, url.replace("loyalty", "adjusted"), event_types=["points.adjusted"])
    assert everything.signing_secret.startswith("whsec_") and everything.last_event_id == ""
    listed = api.programs.ListWebhooks(webhooks_pb2.ListWebhooksRequest(), metadata=api.metadata).webhooks
    assert [w.webhook_id for w in listed] == [everything.webhook_id, only_adjusted.webhook_id]
    assert all(w.signing_secret == "" for w in listed)  # shown once

    raw: list[tuple[bytes, dict]] = []
    class Recording(Receiver):
        def receive(self, body, headers):
            raw.append((body, headers))
            return super().receive(body, headers)

    got: dict[str, dict] = {}
    server = Recording(("127.0.0.1", port), everything.signing_secret, lambda e, i: got.__setitem__(i, e))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        make_events(api, members=3, adjustments=6)
        with sending(fresh):
            expected = {e.event_id: as_json(e) for e in all_events(api)}
            wait_until(lambda: len(got) == len(expected), 15, "every event at the receiver")
            # The filtered webhook (other secret) was sent only points.adjusted: its requests fail
            # verification at this receiver, which is the point of the secret.
            wait_until(lambda: server.rejected >= 6, 15, "the other webhook's requests, refused")
    finally:
        server.shutdown()
        server.server_close()
    assert got == expected  # the body is the event as ListEvents shows it
    assert server.duplicates == 0
    body, headers = next((b, h) for b, h in raw if h["webhook-id"] == next(iter(expected)))
    assert Webhook(everything.signing_secret).verify(body, headers)["eventId"] == headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(only_adjusted.signing_secret).verify(body, headers)
    adjusted_ids = {i for i, e in expected.items() if e["type"] == "points.adjusted"}
    other = [h for b, h in raw if b and h.get("webhook-signature") and h["webhook-id"] in adjusted_ids]
    assert len(other) >= len(adjusted_ids)
    attempts = deliveries(api, everything.webhook_id)
    assert {d.event_id for d in attempts} == set(expected)
    assert all(d.outcome == webhooks_pb2.DELIVERY_OUTCOME_DELIVERED and d.http_status == 204 for d in attempts)
    assert [d.attempt_time.ToMicroseconds() for d in attempts] == sorted(
        (d.attempt_time.ToMicroseconds() for d in attempts), reverse=True
    )


def test_a_flaky_endpoint_gets_every_event_in_member_order(fresh):
    _, api = fresh.program()
    rng = random.Random(7)
    first_tries: set[str] = set()
    lock = threading.Lock()

    def flaky(webhook_id: str) -> int | None:
        with lock:
            if webhook_id not in first_tries:  # every event's first attempt fails
                first_tries.add(webhook_id)
                return 500
        if rng.random() < 0.3:
            if rng.random() < 0.2:
                time.sleep(0.5)  # past the sender's timeout (0.3 s here)
            return 503
        return None

    port = free_port()
    webhook = create_webhook(api, f"http://127.0.0.1:{port}/h")
    order: list[str] = []
    got: dict[str, dict] = {}

    def on_event(event, webhook_id):
        got[webhook_id] = event
        order.append(webhook_id)

    server = Receiver(("127.0.0.1", port), webhook.signing_secret, on_event, before=flaky)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with sending(fresh, fast_options(timeout=0.3)):
            make_events(api, members=4, adjustments=24)
            expected = {e.event_id for e in all_events(api)}
            wait_until(lambda: set(got) == expected, 30, "every event despite the failures")
    finally:
        server.shutdown()
        server.server_close()
    assert in_member_order(order, got)
    attempts = deliveries(api, webhook.webhook_id)
    retried = [d for d in attempts if d.outcome == webhooks_pb2.DELIVERY_OUTCOME_RETRYING]
    assert len(retried) >= len(expected)  # each event failed at least once
    assert {d.http_status for d in retried} <= {500, 503, 0}
    assert any(d.error.startswith("HTTP 500") for d in retried)
    assert all(d.latency_ms >= 0 for d in attempts)
    delivered = [d for d in attempts if d.outcome == webhooks_pb2.DELIVERY_OUTCOME_DELIVERED]
    assert {d.event_id for d in delivered} == expected
    assert all(d.attempt >= 2 for d in delivered)


def test_failed_deliveries_are_redelivered_by_id_and_from_a_cursor(fresh):
    _, api = fresh.program()
    healthy = threading.Event()
    port = free_port()
    webhook = create_webhook(api, f"http://127.0.0.1:{port}/h")
    got: list[str] = []
    server = Receiver(
        ("127.0.0.1", port),
        webhook.signing_secret,
        lambda e, i: got.append(i),
        before=lambda _id: None if healthy.is_set() else 500,
    )
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        make_events(api, members=2, adjustments=2)
        expected = [e.event_id for e in all_events(api)]
        with sending(fresh, fast_options(policy=RetryPolicy(0.05, 0.1, 0.4))):
            wait_until(
                lambda: len(deliveries(api, webhook.webhook_id, failed_only=True)) == len(expected),
                20,
                "every delivery failed for good",
            )
            listed = api.programs.ListWebhooks(webhooks_pb2.ListWebhooksRequest(), metadata=api.metadata).webhooks[0]
            assert (listed.failed_count, listed.retrying_count) == (len(expected), 0)
            assert got == []
            with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "DELIVERY_NOT_FAILED"):
                api.programs.RedeliverEvents(
                    webhooks_pb2.RedeliverEventsRequest(webhook_id=webhook.webhook_id, event_ids=["ev_00000000000000ff"]),
                    metadata=api.metadata,
                )
            healthy.set()
            answer = api.programs.RedeliverEvents(
                webhooks_pb2.RedeliverEventsRequest(webhook_id=webhook.webhook_id, event_ids=expected[:2]),
                metadata=api.metadata,
            )
            assert answer.requeued == 2 and answer.webhook.failed_count == len(expected) - 2
            wait_until(lambda: set(got) == set(expected[:2]), 10, "the two redelivered")
            # From a cursor: every event after it again (the receiver de-duplicates the ones it had).
            api.programs.RedeliverEvents(
                webhooks_pb2.RedeliverEventsRequest(webhook_id=webhook.webhook_id, after_event_id=""),
                metadata=api.metadata,
            )
            wait_until(lambda: set(got) == set(expected), 10, "every event after the cursor")
            wait_until(lambda: server.duplicates >= 2, 10, "the two sent again, seen as duplicates")
            wait_until(
                lambda: (w := api.programs.ListWebhooks(webhooks_pb2.ListWebhooksRequest(), metadata=api.metadata).webhooks[0])
                and w.failed_count == 0
                and w.last_event_id == expected[-1],
                10,
                "the webhook caught up, nothing failed",
            )
    finally:
        server.shutdown()
        server.server_close()
    api.programs.DeleteWebhook(webhooks_pb2.DeleteWebhookRequest(webhook_id=webhook.webhook_id), metadata=api.metadata)
    with expect_error(grpc.StatusCode.NOT_FOUND, "WEBHOOK_NOT_FOUND"):
        deliveries(api, webhook.webhook_id)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # http beyond loopback
        "ftp://127.0.0.1/hook",
        "https://10.1.2.3/hook",  # private
        "https://192.168.0.10:8443/hook",
        "https://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "https://[fe80::1]/hook",
        "https://[fd00::1]/hook",  # unique-local
        "https://100.64.0.1/hook",  # carrier-grade NAT
        "https://0.0.0.0/hook",
        "https://user:pw@example.com/hook",
        "https://no-such-host.invalid/hook",
        "not a url",
    ],
)
def test_targets_that_could_reach_the_servers_network_are_refused(api, url):
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_REFUSED", field="url"):
        create_webhook(api, url)


def test_private_targets_when_the_operator_allows_them_and_roles(api, program, monkeypatch):
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_REFUSED"):
        create_webhook(api, "https://10.1.2.3/hook")
    monkeypatch.setenv("LOYALTY_WEBHOOK_ALLOW_PRIVATE", "on")  # read at each call, in this process
    created = create_webhook(api, "https://10.1.2.3/hook", event_types=["points.earned"])
    assert created.url == "https://10.1.2.3/hook" and list(created.event_types) == ["points.earned"]
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_REFUSED"):
        create_webhook(api, "http://10.1.2.3/hook")  # still https only beyond loopback
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field="event_types[0]"):
        create_webhook(api, "https://10.1.2.3/hook", event_types=["points.sold"])
    marketing = program.api(Role.MARKETING)
    try:
        listed = marketing.programs.ListWebhooks(webhooks_pb2.ListWebhooksRequest(), metadata=marketing.metadata)
        assert [w.webhook_id for w in listed.webhooks] == [created.webhook_id]
        deliveries(marketing, created.webhook_id)
        for call, request in (
            (marketing.programs.CreateWebhook, webhooks_pb2.CreateWebhookRequest(url="https://127.0.0.1/h")),
            (marketing.programs.DeleteWebhook, webhooks_pb2.DeleteWebhookRequest(webhook_id=created.webhook_id)),
            (marketing.programs.RedeliverEvents, webhooks_pb2.RedeliverEventsRequest(webhook_id=created.webhook_id)),
        ):
            with expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"):
                call(request, metadata=marketing.metadata)
    finally:
        marketing.close()
    api.programs.DeleteWebhook(webhooks_pb2.DeleteWebhookRequest(webhook_id=created.webhook_id), metadata=api.metadata)
    with expect_error(grpc.StatusCode.NOT_FOUND, "WEBHOOK_NOT_FOUND"):
        api.programs.DeleteWebhook(webhooks_pb2.DeleteWebhookRequest(webhook_id=created.webhook_id), metadata=api.metadata)

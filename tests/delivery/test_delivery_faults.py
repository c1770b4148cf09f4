"""Event delivery through faults, with real processes (README "Webhooks and NATS"):

- the sender (a real `loyalty-ledger serve` process) killed with SIGKILL in the middle of
  sending, then started again: the webhook receiver has every event, each member's first in
  commit order, and the only repeats are redeliveries of the same webhook-id;
- the relay to a private nats-server with JetStream (started by the test on its own port,
  never the machine's), restarted in the middle of relaying, and the sender killed too:
  the stream holds every event exactly once, on `loyalty.<program_id>.<type>`, with
  Nats-Msg-Id = event_id, in commit order.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from clients.nats_consumer import consume
from clients.webhook_receiver import Receiver
from tests.cli.processes import ServerProcess, free_port, run_ok
from tests.conftest import Api
from tests.databases import postgres_database, sqlite_database
from tests.delivery.helpers import all_events, create_webhook, in_member_order, make_events, wait_until
from tests.delivery.nats_server import PrivateNats

FAST = {
    "LOYALTY_WEBHOOK_RETRY_BASE": "0.05",
    "LOYALTY_WEBHOOK_RETRY_CAP": "0.2",
    "LOYALTY_WEBHOOK_TIMEOUT": "2",
    "LOYALTY_DELIVERY_POLL": "0.05",
    "LOYALTY_DELIVERY_LEADER_INTERVAL": "0.2",
}


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request, tmp_path):
    if request.param == "postgresql":
        with postgres_database("loyalty_delivery") as url:
            yield url
    else:
        with sqlite_database(tmp_path) as url:
            yield url


def test_kill_9_of_the_sender_and_a_nats_restart_lose_nothing_and_store_each_event_once(
    database_url, tmp_path, monkeypatch, capsys
):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    program_id, admin_key = run_ok(database_url, "program", "create", "faults")[:2]
    port = free_port()
    order: list[str] = []
    got: dict[str, dict] = {}

    def on_event(event: dict, webhook_id: str) -> None:
        got[webhook_id] = event
        order.append(webhook_id)

    def slow(_webhook_id: str) -> None:
        time.sleep(0.03)  # so the kill lands while requests are in flight
        return None

    with PrivateNats(tmp_path / "jetstream") as nats:
        monkeypatch.setenv("LOYALTY_NATS_URL", nats.url)
        first = ServerProcess.serve(database_url)
        try:
            target = first.wait_serving()
            api = Api(target, admin_key)
            webhook = create_webhook(api, f"http://127.0.0.1:{port}/hooks")
            receiver = Receiver(("127.0.0.1", port), webhook.signing_secret, on_event, before=slow)
            threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            make_events(api, members=4, adjustments=56)
            wait_until(lambda: len(got) >= 10, 60, "the first deliveries")
            first.process.kill()  # SIGKILL, mid-flight
            first.wait(10)
            at_kill = len(got)
            assert at_kill < 60, "the sender finished before the kill: slow the receiver down"
            nats.stop(kill=True)  # and the broker goes away while the sender is down
            api.close()
        finally:
            first.kill()
        second = ServerProcess.serve(database_url)
        try:
            api = Api(second.wait_serving(), admin_key)
            make_events(api, members=4, adjustments=0)  # re-enrolments: no new events
            expected = [e.event_id for e in all_events(api)]
            assert len(expected) == 60
            time.sleep(0.5)  # the relay finds NATS away and retries
            nats.start()  # the same port and store
            wait_until(lambda: set(got) == set(expected), 60, "every event at the receiver after the restart")
            wait_until(lambda: len(nats.stream_messages()) >= len(expected), 60, "every event in the stream")
            api.close()
        finally:
            second.terminate()
        receiver.shutdown()
        receiver.server_close()
        messages = nats.stream_messages()
        consumed = asyncio.run(asyncio.wait_for(consume(nats.url, "LOYALTY", "test", f"loyalty.{program_id}.>", 60), 20))
    assert consumed == 60 and len(capsys.readouterr().out.splitlines()) >= 60  # the example consumer
    assert in_member_order(order, got)
    assert receiver.rejected == 0
    ids = [msg_id for _, msg_id, _ in messages]
    assert ids == expected  # each once, in commit order
    assert all(subject == f"loyalty.{program_id}.{body['type']}" for subject, _, body in messages)
    assert all(body["eventId"] == msg_id for _, msg_id, body in messages)
    assert [body for _, _, body in messages] == [got[i] for i in expected]  # one JSON form for both

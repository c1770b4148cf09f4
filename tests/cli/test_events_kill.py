"""kill -9 of the server in the middle of 32-client Earn load with WatchEvents streams attached
(issue 18): a new server on the same PostgreSQL database, the watchers resume after their last
event_id, and afterwards the events equal the committed changes one to one. Every transaction
has exactly one event naming it, no event names a transaction that does not exist, every
Earn a client saw succeed has its event, and each watcher saw every event, after
de-duplication, in the ledger's order, none it should not have."""

from __future__ import annotations

import secrets
import threading
from collections import Counter

import grpc

from loyalty.v1 import common_pb2, events_pb2, events_pb2_grpc, ledger_pb2, ledger_pb2_grpc
from tests.cli.processes import ServerProcess, free_port, run_ok, wait_until
from tests.databases import connect, postgres_database

CLIENTS = 32
WATCHERS = 4
MEMBERS = 8  # clients share members, so the member group commit folds some of their Earns
EARNS_BEFORE_KILL = 150
EARNS_AFTER_RESTART = 150
# A channel to a server that went away tries again soon (gRPC's default first backoff is 1 s).
RECONNECT_SOON = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
]


def _metadata(key: str) -> tuple:
    return (("authorization", f"Bearer {key}"),)


class EarnClient(threading.Thread):
    """A till with a channel of its own: an Earn after another; a failed one is sent again with
    the same idempotency key until it succeeds (it may have committed before the kill)."""

    def __init__(self, target: str, key: str, member_id: str, stopping: threading.Event) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(target, options=RECONNECT_SOON)
        self.stub = ledger_pb2_grpc.LedgerStub(self.channel)
        self.metadata, self.member_id, self.stopping = _metadata(key), member_id, stopping
        self.succeeded: list[str] = []  # transaction ids of the Earns that answered OK
        self.failures: Counter = Counter()

    def run(self) -> None:
        request = None
        while not self.stopping.is_set():
            if request is None:
                order = common_pb2.Order(
                    order_id=f"o-{secrets.token_hex(8)}", channel=common_pb2.CHANNEL_POS, amount=1000, currency="USD"
                )
                request = ledger_pb2.EarnRequest(
                    member_id=self.member_id, idempotency_key=secrets.token_hex(12), order=order
                )
            try:
                answer = self.stub.Earn(request, metadata=self.metadata, timeout=5)
            except grpc.RpcError as error:
                self.failures[error.code().name] += 1
                self.stopping.wait(0.05)
                continue
            self.succeeded.append(answer.transaction.transaction_id)
            request = None
        self.channel.close()


class Watcher(threading.Thread):
    """A WatchEvents follower that, when its stream breaks, opens another after the last
    event_id it received."""

    def __init__(self, target: str, key: str) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(target, options=RECONNECT_SOON)
        self.stub = events_pb2_grpc.EventsStub(self.channel)
        self.metadata = _metadata(key)
        self.stopping = threading.Event()
        self.seen: list[str] = []  # event ids as received, duplicates included
        self.cursor = ""
        self.reopened = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                request = events_pb2.WatchEventsRequest(after_event_id=self.cursor)
                for message in self.stub.WatchEvents(request, metadata=self.metadata):
                    for event in message.events:
                        self.seen.append(event.event_id)
                        self.cursor = event.event_id
            except (grpc.RpcError, ValueError):  # ValueError: the channel was closed to stop it
                pass
            self.reopened += 1
            self.stopping.wait(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.channel.close()  # ends the stream in progress
        self.join(timeout=10)


def _serve(url: str, listen: str) -> ServerProcess:
    server = ServerProcess.serve(url, listen=listen, extra=["--due-work-interval", "0"])
    server.wait_serving()
    return server


def _earned(clients: list[EarnClient]) -> int:
    return sum(len(client.succeeded) for client in clients)


def test_kill_9_under_earn_load_with_watchers_loses_no_event_and_invents_none():
    with postgres_database() as url:
        program_id, admin_key = run_ok(url, "program", "create", "kill")[:2]
        events_key = run_ok(url, "key", "create", "--program", program_id, "--role", "events")[0]
        listen = f"127.0.0.1:{free_port()}"
        server = _serve(url, listen)
        stopping = threading.Event()
        clients: list[EarnClient] = []
        watchers = [Watcher(listen, events_key) for _ in range(WATCHERS)]
        try:
            members = [f"m-{i}" for i in range(MEMBERS)]
            with grpc.insecure_channel(listen) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                for member_id in members:
                    stub.EnrollMember(
                        ledger_pb2.EnrollMemberRequest(member_id=member_id), metadata=_metadata(admin_key), timeout=10
                    )
            for watcher in watchers:
                watcher.start()
            clients = [EarnClient(listen, admin_key, members[i % MEMBERS], stopping) for i in range(CLIENTS)]
            for client in clients:
                client.start()
            wait_until(lambda: _earned(clients) >= EARNS_BEFORE_KILL, 30, "Earns before the kill")
            wait_until(lambda: all(w.seen for w in watchers), 10, "every watcher receiving")

            server.kill()  # SIGKILL, mid-load: some Earns are in flight, some commits unanswered
            killed_at = _earned(clients)
            server = _serve(url, listen)
            wait_until(lambda: _earned(clients) >= killed_at + EARNS_AFTER_RESTART, 30, "Earns after the restart")
            stopping.set()
            for client in clients:
                client.join(timeout=10)
            assert not any(client.is_alive() for client in clients)

            # The ledger's account: ListEvents (every event, in order) and the tables themselves.
            with grpc.insecure_channel(listen) as channel:
                stub_events = events_pb2_grpc.EventsStub(channel)
                listed: list[events_pb2.Event] = []
                token = ""
                while True:
                    page = stub_events.ListEvents(
                        events_pb2.ListEventsRequest(page_token=token, page_size=500),
                        metadata=_metadata(events_key),
                        timeout=10,
                    )
                    listed += page.events
                    token = page.next_page_token
                    if not token:
                        break
            last = listed[-1].event_id
            wait_until(lambda: all(w.cursor == last for w in watchers), 20, "the watchers catching up")
        finally:
            stopping.set()
            for watcher in watchers:
                watcher.stop()
            server.kill()

        conn = connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT transaction_id FROM transactions WHERE program_id = %s", (program_id,))
                transactions = {row[0] for row in cur.fetchall()}
                cur.execute(
                    "SELECT transaction_id FROM events WHERE program_id = %s AND transaction_id IS NOT NULL",
                    (program_id,),
                )
                named = Counter(row[0] for row in cur.fetchall())
                cur.execute("SELECT count(*) FROM events WHERE program_id = %s", (program_id,))
                (stored,) = cur.fetchone()
        finally:
            conn.close()
        run_ok(url, "verify")

    succeeded = [tx for client in clients for tx in client.succeeded]
    assert sum(client.failures["UNAVAILABLE"] for client in clients) > 0  # the kill did land under load
    assert all(watcher.reopened >= 1 for watcher in watchers)  # every stream broke and was resumed
    # one to one: each transaction has exactly one event, and every event names a transaction
    assert len(transactions) >= len(set(succeeded)) >= EARNS_BEFORE_KILL + EARNS_AFTER_RESTART
    assert {tx: n for tx, n in named.items() if n != 1} == {}
    assert set(named) == transactions
    assert set(succeeded) <= set(named)  # every Earn a client saw succeed has its event
    assert stored == len(listed) == len(transactions) + MEMBERS  # and the enrolments, nothing else
    assert [e.type for e in listed].count("member.enrolled") == MEMBERS
    assert {e.transaction_id for e in listed if e.transaction_id} == transactions
    expected = [e.event_id for e in listed]
    for watcher in watchers:
        once = list(dict.fromkeys(watcher.seen))  # de-duplicated by event_id, first receipt kept
        assert once == expected  # every event, in commit order, none it should not have seen

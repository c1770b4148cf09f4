"""The example consumer `python -m clients.event_follower` against real servers: it prints every
event once, in order, survives a kill -9 of its server (a new one on the same port and
database) by resuming from its cursor, and a second follower started on the same cursor file
carries on where the first stopped, printing nothing twice."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from loyalty.client import LedgerClient
from loyalty.v1 import common_pb2
from tests.cli.processes import ServerProcess, free_port, run_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _follower(target: str, key: str, cursor: Path) -> ServerProcess:
    command = [sys.executable, "-m", "clients.event_follower", "--target", target, "--key", key, "--cursor-file", str(cursor)]
    return ServerProcess(command, None, cwd=ROOT)


def _printed(follower: ServerProcess) -> list[dict]:
    return [json.loads(line) for line in follower.stdout_lines if line.startswith("{")]


def _wait_printed(follower: ServerProcess, count: int) -> list[dict]:
    wait_until(lambda: len(_printed(follower)) >= count, 30, f"{count} events printed\n{follower.describe()}")
    return _printed(follower)


def _earn(target: str, key: str, member_id: str, orders: int) -> None:
    with LedgerClient(target, key) as ledger:
        ledger.enroll_member(member_id=member_id)
        for _ in range(orders):
            order = common_pb2.Order(order_id=f"o-{uuid.uuid4()}", channel=common_pb2.CHANNEL_POS, amount=1000, currency="USD")
            ledger.earn(member_id=member_id, order=order)


def test_the_follower_prints_each_event_once_across_a_server_kill_and_its_own_restart(database_url, tmp_path):
    _, key = run_ok(database_url, "program", "create", "follow")[:2]
    listen = f"127.0.0.1:{free_port()}"
    cursor = tmp_path / "events.cursor"
    server = ServerProcess.serve(database_url, listen=listen, extra=["--due-work-interval", "0"])
    try:
        target = server.wait_serving()
        first = _follower(target, key, cursor)
        with first:
            _earn(target, key, "m-1", 3)
            _wait_printed(first, 4)  # enrolled, then three earns

            server.kill()  # kill -9: the stream breaks under the follower
            server = ServerProcess.serve(database_url, listen=listen, extra=["--due-work-interval", "0"])
            server.wait_serving()
            _earn(target, key, "m-2", 2)
            seen_by_first = _wait_printed(first, 7)  # m-2 enrolled and its two earns
            assert first.terminate() == 0, first.describe()
        assert cursor.read_text().strip() == seen_by_first[-1]["eventId"]

        second = _follower(target, key, cursor)
        with second:
            _earn(target, key, "m-1", 1)
            seen_by_second = _wait_printed(second, 1)
            assert second.terminate() == 0, second.describe()

        printed = [event["eventId"] for event in seen_by_first + seen_by_second]
        with LedgerClient(target, key) as ledger:
            everything = [event.event_id for event in ledger.iter_events()]
        assert printed == everything  # each once, in the ledger's order, none missing
        assert [event["type"] for event in seen_by_first] == [
            "member.enrolled", "points.earned", "points.earned", "points.earned",
            "member.enrolled", "points.earned", "points.earned",
        ]  # fmt: skip
        assert seen_by_second[0]["memberId"] == "m-1" and seen_by_second[0]["type"] == "points.earned"
    finally:
        server.kill()


def test_a_refused_key_stops_the_follower_with_exit_code_1(database_url, tmp_path):
    server = ServerProcess.serve(database_url, extra=["--due-work-interval", "0"])
    with server:
        target = server.wait_serving()
        follower = _follower(target, "lk_unknown_" + "x" * 32, tmp_path / "events.cursor")
        with follower:
            assert follower.wait(30) == 1, follower.describe()
            assert "UNAUTHENTICATED" in follower.stderr

"""TransferPoints over real gRPC on PostgreSQL and SQLite: one transaction on both statements,
exactly once, lots keep their expiry dates, pending and held points stay put, program limits
and roles, its transfer.completed event; and a ring of concurrent transfers that never answers
a deadlock, conserves every point and leaves verify clean."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from ledger.domain.kinds import Role
from ledger.store.instants import from_micros
from ledger.store.tables import lots
from loyalty.v1 import common_pb2, events_pb2, ledger_pb2, programs_pb2
from tests.grpc_helpers import balance, earn, enroll, expect_error, key
from tests.integration.ledger_checks import assert_verify_clean, outcome, statement
from tests.integration.test_concurrency import run_together

OK = grpc.StatusCode.OK


def update_program(api, **fields):
    return api.programs.UpdateProgram(
        programs_pb2.UpdateProgramRequest(
            program=programs_pb2.Program(**fields), update_mask=field_mask_pb2.FieldMask(paths=list(fields))
        ),
        metadata=api.metadata,
    ).program


def transfer_request(sender: str, receiver: str, points: int, idempotency_key: str | None = None, reason: str = ""):
    return ledger_pb2.TransferPointsRequest(
        from_member_id=sender, to_member_id=receiver, points=points,
        idempotency_key=idempotency_key or key(), reason=reason,
    )


def transfer(api, sender: str, receiver: str, points: int, **kwargs):
    return api.ledger.TransferPoints(transfer_request(sender, receiver, points, **kwargs), metadata=api.metadata)


def at(days_ago: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=days_ago))
    return stamp


def open_lots(program, member_id: str) -> list[tuple[int, datetime | None]]:
    with program.backend.engine.connect() as conn:
        rows = conn.execute(
            select(lots.c.remaining, lots.c.expires_at).where(
                lots.c.program_id == program.program_id, lots.c.member_id == member_id, lots.c.remaining > 0
            )
        ).all()
    return sorted((r.remaining, from_micros(r.expires_at) if r.expires_at else None) for r in rows)


def test_a_transfer_moves_available_points_on_both_statements_keeping_expiry(program, api):
    update_program(api, expiry_mode=programs_pb2.EXPIRY_MODE_ROLLING, expiry_days=365, max_backdate_days=90)
    for m in ("ann", "bob"):
        enroll(api, m)
    earn(api, "ann", 3_000, occur_time=at(60))  # 30 points expiring in ~305 days
    earn(api, "ann", 5_000, occur_time=at(10))  # 50 points expiring in ~355 days
    before = {expires: points for points, expires in open_lots(program, "ann")}

    response = transfer(api, "ann", "bob", 40, reason="family pooling")

    assert response.transaction.kind == common_pb2.TRANSACTION_KIND_TRANSFER
    assert (response.transaction.member_id, response.transaction.points) == ("ann", -40)
    assert (response.to_transaction.member_id, response.to_transaction.points) == ("bob", 40)
    assert response.to_transaction.transaction_id == response.transaction.transaction_id
    assert response.to_transaction.breakdown[0].source == common_pb2.POINTS_SOURCE_TRANSFER
    assert response.to_transaction.breakdown[0].points == 40
    assert (response.balance.available, response.to_balance.available) == (40, 40)
    assert balance(api, "ann").available == 40 and balance(api, "bob").available == 40
    assert statement(api, "ann")[0].transaction_id == response.transaction.transaction_id
    received = statement(api, "bob")[0]
    assert (received.points, received.reason, received.kind) == (40, "family pooling", common_pb2.TRANSACTION_KIND_TRANSFER)
    # Soonest expiry first: all 30 of the older lot, then 10 of the newer; each keeps its date.
    soon, late = sorted(before)
    assert open_lots(program, "bob") == sorted([(30, soon), (10, late)])
    assert open_lots(program, "ann") == [(40, late)]
    # The same key and request: the same answer, nothing moved twice.
    again = outcome(api.ledger.TransferPoints, transfer_request("ann", "bob", 40, response.transaction.idempotency_key,
                                                                 "family pooling"), api.metadata)
    assert again[0] == OK and again[3] == response
    with expect_error(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"):
        transfer(api, "ann", "bob", 41, idempotency_key=response.transaction.idempotency_key)
    assert balance(api, "bob").posted == 40
    # Its event, told once, names both members.
    events = api.events.ListEvents(events_pb2.ListEventsRequest(types=["transfer.completed"]), metadata=api.metadata)
    (event,) = events.events
    assert event.member_id == "ann" and event.transaction_id == response.transaction.transaction_id
    assert event.transfer_completed == events_pb2.TransferCompleted(
        to_member_id="bob", points=40, from_posted_after=40, to_posted_after=40, reason="family pooling"
    )
    # Not reversible: a transfer back undoes it.
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "TRANSACTION_NOT_REVERSIBLE"):
        api.ledger.ReverseTransaction(
            ledger_pb2.ReverseTransactionRequest(transaction_id=received.transaction_id, idempotency_key=key()),
            metadata=api.metadata,
        )
    assert_verify_clean(program)


def test_pending_held_and_missing_points_are_not_transferable(program, api):
    update_program(api, pending_days=14)
    for m in ("ann", "bob"):
        enroll(api, m)
    earn(api, "ann", 10_000)  # 100 points, pending for 14 days
    api.ledger.AdjustPoints(
        ledger_pb2.AdjustPointsRequest(member_id="ann", idempotency_key=key(), points=50, reason="goodwill"),
        metadata=api.metadata,
    )  # 50 available
    api.ledger.AuthorizeRedemption(
        ledger_pb2.AuthorizeRedemptionRequest(member_id="ann", idempotency_key=key(), points=20),
        metadata=api.metadata,
    )  # 30 available
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS"):
        transfer(api, "ann", "bob", 31)
    transfer(api, "ann", "bob", 30)
    assert (balance(api, "ann").available, balance(api, "ann").pending, balance(api, "ann").held) == (0, 100, 20)
    assert balance(api, "bob").available == 30
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "SAME_MEMBER"):
        transfer(api, "bob", "bob", 1)
    with expect_error(grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND"):
        transfer(api, "bob", "nobody", 1)
    with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "points"):
        transfer(api, "bob", "ann", 0)
    assert_verify_clean(program)


def test_program_limits_and_roles(program, api):
    for m in ("ann", "bob", "cid"):
        enroll(api, m)
        api.ledger.AdjustPoints(
            ledger_pb2.AdjustPointsRequest(member_id=m, idempotency_key=key(), points=1_000, reason="opening"),
            metadata=api.metadata,
        )
    rules = programs_pb2.TransferRules(max_points_per_transfer=300, max_points_per_month=500)
    assert update_program(api, transfer_rules=rules).transfer_rules == rules
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "TRANSFER_LIMIT_EXCEEDED"):
        transfer(api, "ann", "bob", 301)
    transfer(api, "ann", "bob", 300)
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "TRANSFER_LIMIT_EXCEEDED") as caught:
        transfer(api, "ann", "cid", 201)  # ann would send 501 this month
    assert "sent" in caught.value.details()
    with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "TRANSFER_LIMIT_EXCEEDED"):
        transfer(api, "cid", "bob", 201)  # bob would receive 501 this month
    transfer(api, "ann", "cid", 200)

    support, pos, storefront = (program.api(role) for role in (Role.SUPPORT, Role.POS, Role.STOREFRONT))
    try:
        transfer(support, "bob", "ann", 10)
        with expect_error(grpc.StatusCode.PERMISSION_DENIED, "TRANSFER_ROLE_NOT_ALLOWED"):
            transfer(pos, "bob", "ann", 10)
        with expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"):
            transfer(storefront, "bob", "ann", 10)
        update_program(api, transfer_rules=programs_pb2.TransferRules(pos_allowed=True))
        assert transfer(pos, "bob", "ann", 10).transaction.channel == common_pb2.CHANNEL_POS
        update_program(api, transfer_rules=programs_pb2.TransferRules(disabled=True))
        with expect_error(grpc.StatusCode.FAILED_PRECONDITION, "TRANSFERS_DISABLED"):
            transfer(support, "bob", "ann", 10)
    finally:
        for client in (support, pos, storefront):
            client.close()
    assert sum(balance(api, m).posted for m in ("ann", "bob", "cid")) == 3_000
    assert_verify_clean(program)


def test_a_ring_of_concurrent_transfers_never_deadlocks_and_conserves_points(pg_program):
    """32 transfers at once among 8 members, each member sending to its neighbour on both sides
    (so pairs transfer to each other at the same moment): every call succeeds at the first try."""
    api = pg_program.api()
    members = [f"ring-{i}" for i in range(8)]
    try:
        for m in members:
            enroll(api, m)
            api.ledger.AdjustPoints(
                ledger_pb2.AdjustPointsRequest(member_id=m, idempotency_key=key(), points=1_000, reason="opening"),
                metadata=api.metadata,
            )
        requests = []
        for i in range(32):
            sender = i % 8
            receiver = (sender + (1 if i < 16 else -1)) % 8
            requests.append(transfer_request(members[sender], members[receiver], 10 + i))
        results = run_together(pg_program, 32, lambda i, c: outcome(c.ledger.TransferPoints, requests[i], c.metadata))
        assert [r[:2] for r in results] == [(OK, "")] * 32
        expected = {m: 1_000 for m in members}
        for request in requests:
            expected[request.from_member_id] -= request.points
            expected[request.to_member_id] += request.points
        assert {m: balance(api, m).posted for m in members} == expected
        assert sum(expected.values()) == 8_000
    finally:
        api.close()
    assert_verify_clean(pg_program)

"""A debit reads only the member's first open lots in consumption order (ledger.store.lots
FIRST_LOTS), and all of them only when those do not cover it: the lots it consumes must be
exactly those ledger.domain.lots.plan_consumption picks from all the member's open lots,
through the real API, on both databases. Members here hold more open lots than FIRST_LOTS,
with expiries, return windows and order times spread so every part of the order matters."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from ledger.domain.lots import Consumption, Lot, plan_consumption
from ledger.store.instants import from_micros
from ledger.store import lots
from ledger.store.lots import FIRST_LOTS
from ledger.store.tables import lot_consumptions, transactions
from loyalty.v1 import ledger_pb2
from tests.grpc_helpers import key
from tests.integration.test_lifecycle_expiry import ROLLING, earn_at, new_member, update_program, whole_seconds_ago


def _open_lots(program, member_id: str) -> list[Lot]:
    with program.backend.db.engine.connect() as conn:
        return lots.open_lots(conn, program.program_id, member_id)


def _consumed(program, member_id: str, transaction_id: str) -> tuple[set[Consumption], object]:
    with program.backend.db.engine.connect() as conn:
        rows = conn.execute(
            select(lot_consumptions.c.lot_id, lot_consumptions.c.points).where(
                lot_consumptions.c.program_id == program.program_id,
                lot_consumptions.c.member_id == member_id,
                lot_consumptions.c.transaction_id == transaction_id,
            )
        ).all()
        created = conn.execute(
            select(transactions.c.created_at).where(
                transactions.c.program_id == program.program_id, transactions.c.transaction_id == transaction_id
            )
        ).scalar_one()
    return {Consumption(r.lot_id, r.points) for r in rows}, from_micros(created)


def _member_with_many_lots(program, api, seed: int) -> str:
    update_program(api, expiry_mode=ROLLING, expiry_days=40, pending_days=3, max_backdate_days=60)
    member_id = new_member(api)
    chance = random.Random(seed)
    for _ in range(FIRST_LOTS + 12):
        # Order times from 0 to 39 days ago, several on the same second: pending, matured,
        # expiring on the same day, tie-broken by lot id.
        days = chance.choice([0, 1, 2, 5, 5, 10, 20, 39])
        earn_at(api, member_id, chance.randint(1, 30), whole_seconds_ago(timedelta(days=days)))
    return member_id


@pytest.mark.parametrize("seed", [1, 2])
def test_a_redeem_consumes_what_the_rule_picks_from_all_open_lots(program, api, seed):
    member_id = _member_with_many_lots(program, api, seed)
    for points in (1, 7, 45):
        before = _open_lots(program, member_id)
        done = api.ledger.Redeem(
            ledger_pb2.RedeemRequest(member_id=member_id, idempotency_key=key(), points=points), metadata=api.metadata
        )
        consumed, at = _consumed(program, member_id, done.transaction.transaction_id)
        assert consumed == set(plan_consumption(before, points, at))


def test_a_debit_past_the_first_lots_reads_them_all(program, api):
    member_id = _member_with_many_lots(program, api, 3)
    before = _open_lots(program, member_id)
    total = sum(lot.remaining for lot in before)
    # An adjustment may overdraw: it takes every open lot, expired ones last, and more.
    done = api.ledger.AdjustPoints(
        ledger_pb2.AdjustPointsRequest(member_id=member_id, idempotency_key=key(), points=-(total + 5), reason="audit"),
        metadata=api.metadata,
    )
    consumed, at = _consumed(program, member_id, done.transaction.transaction_id)
    assert len(before) > FIRST_LOTS
    assert consumed == set(plan_consumption(before, total + 5, at))
    assert sum(c.points for c in consumed) == total


def test_a_reversal_takes_its_own_lot_first_even_beyond_the_first_lots(program, api):
    update_program(api, expiry_mode=ROLLING, expiry_days=40, pending_days=3, max_backdate_days=60)
    member_id = new_member(api)
    # The earn to reverse expires last of all: far from the first lots in consumption order.
    latest = earn_at(api, member_id, 9, whole_seconds_ago(timedelta(seconds=1)))
    for _ in range(FIRST_LOTS + 3):
        earn_at(api, member_id, 2, whole_seconds_ago(timedelta(days=20)))
    before = _open_lots(program, member_id)
    done = api.ledger.ReverseTransaction(
        ledger_pb2.ReverseTransactionRequest(
            transaction_id=latest.transaction.transaction_id, idempotency_key=key(), reason="mistake"
        ),
        metadata=api.metadata,
    )
    consumed, at = _consumed(program, member_id, done.transaction.transaction_id)
    assert consumed == {Consumption(latest.transaction.transaction_id, 9)}
    assert consumed == set(plan_consumption(before, 9, at, first_lot_id=latest.transaction.transaction_id))

"""The balance's SQL (ledger.store.lots.BALANCE_FACTS) sums a member's lots by the domain's rules.

The live balance is read in one statement on the hot path (prefetched with the operation's
other reads on PostgreSQL, as JSON), so "pending" and "past its expiry" are stated in SQL
(ledger.store.lots.pending_lot, past_expiry). For any lots and holds of a member, on both
databases, read directly and (PostgreSQL) through the prefetch's JSON, the statement must
give what ledger.domain.expiry.lot_totals gives over the same lots, the held points of the
open holds not lapsed, and the program's expiry policy as stored. The expiry job's own
reads of due lots (ledger.store.expiry) use the same predicate and must find exactly the
lots the domain calls past their expiry.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, update

from ledger.domain.expiry import lot_totals
from ledger.domain.lots import Lot
from ledger.domain.program import ExpiryMode
from ledger.service import programs as program_service
from ledger.store import expiry, lots, members, migrate
from ledger.store.postgres import prefetch
from ledger.store.instants import to_micros
from ledger.store.tables import holds, lots as lot_rows, programs
from tests.store.fresh import BACKENDS, fresh_engine

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, tmp_path_factory):
    with fresh_engine(request.param, tmp_path_factory.mktemp("lot-totals")) as engine:
        migrate.upgrade(engine)
        yield engine


@pytest.fixture(scope="module")
def program_id(engine) -> str:
    return program_service.create_program(engine, f"totals-{secrets.token_hex(4)}").program_id


# Instants around NOW, to the microsecond on either side of it.
_offsets = st.one_of(
    st.integers(-3, 3).map(lambda us: timedelta(microseconds=us)),
    st.integers(-40, 40).map(lambda days: timedelta(days=days)),
)
_lots = st.lists(
    st.tuples(st.integers(0, 1000), _offsets, st.one_of(st.none(), _offsets)),
    max_size=8,
)
_holds = st.lists(st.tuples(st.integers(1, 500), st.sampled_from(["OPEN", "CAPTURED", "VOIDED"]), _offsets), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    drawn_lots=_lots,
    drawn_holds=_holds,
    mode=st.sampled_from(list(ExpiryMode)),
    days=st.integers(0, 400),
)
def test_the_balance_statement_sums_lots_as_the_domain_does(engine, program_id, drawn_lots, drawn_holds, mode, days):
    member_id = f"m-{secrets.token_hex(6)}"
    domain_lots = [
        Lot(f"lot-{i}", remaining, NOW + available, None if expires is None else NOW + expires)
        for i, (remaining, available, expires) in enumerate(drawn_lots)
    ]
    held = sum(points for points, state, expires in drawn_holds if state == "OPEN" and NOW + expires > NOW)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            members.insert_if_absent(conn, program_id, member_id, secrets.token_hex(4), NOW)
            conn.execute(
                update(programs).where(programs.c.program_id == program_id).values(expiry_mode=mode.value, expiry_days=days)
            )
            for lot in domain_lots:
                conn.execute(
                    insert(lot_rows).values(
                        program_id=program_id, member_id=member_id, lot_id=lot.lot_id, points=max(lot.remaining, 1),
                        remaining=lot.remaining, available_at=to_micros(lot.available_at),
                        expires_at=None if lot.expires_at is None else to_micros(lot.expires_at),
                        order_id=None, created_at=0,
                    )
                )
            for i, (points, state, expires) in enumerate(drawn_holds):
                conn.execute(
                    insert(holds).values(
                        program_id=program_id, hold_id=f"{member_id}-h{i}", member_id=member_id, points=points,
                        captured_points=0, state=state, expires_at=to_micros(NOW + expires), order_id=None,
                        channel="POS", store_id="", created_at=0, closed_at=None,
                    )
                )

            reads = [lots.balance_facts(conn, program_id, member_id, NOW)]
            if conn.dialect.name == "postgresql":  # as the hot path reads it: prefetched, as JSON
                params = {"program_id": program_id, "member_id": member_id, "at": to_micros(NOW)}
                prefetch.load(conn, (lots.BALANCE_FACTS,), params)
                reads.append(lots.balance_facts(conn, program_id, member_id, NOW))
            for facts in reads:
                assert facts.lots == lot_totals(domain_lots, NOW)
                assert facts.held == held
                assert (facts.expiry_mode, facts.expiry_days) == (mode, days)

            # The expiry job finds the same lots due.
            due = expiry.open_lots_of(conn, [(program_id, member_id)], due_at=NOW).get((program_id, member_id), [])
            expected = {lot.lot_id for lot in domain_lots if lot.remaining > 0 and lot.past_expiry(NOW)}
            assert {lot.lot_id for lot in due} == expected
        finally:
            transaction.rollback()

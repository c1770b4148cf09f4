"""The RFM figures, scores and preset memberships the refresh computes are exact: recomputed here
independently, in Python, from the ledger's own rows of a seeded program of a few thousand members
(ties in every measure, refunds inside and outside the window, members without an order), and
compared member by member. A fresh database per backend: the seeded rows are a ledger's
transactions and qualifying spend without entries, which `verify` would rightly refuse."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import insert, select

from ledger.domain import credentials
from ledger.domain.kinds import Role
from ledger.domain.segments import DAY_MICROS, Figures, presets, profile
from ledger.domain.segments import matches as domain_matches
from ledger.service import clock, members, programs, segments
from ledger.service.caller import Caller
from ledger.store import migrate
from ledger.store import segments as segment_store
from ledger.store.database import Database
from ledger.store.instants import to_micros
from ledger.store.tables import member_rfm, qualifying_events, segment_members, transactions
from ledger.store.tables import members as members_table

MEMBERS = 2000
WINDOW = 365 * DAY_MICROS


def _seed(engine, program_id: str, now: int) -> None:
    """Members enrolled over two years; 0-6 orders each on whole days (same time of day, so last
    orders tie), amounts from a short list (spend ties), refunds of some orders."""
    rnd = random.Random(20)
    member_rows, tx_rows, spend_rows = [], [], []
    for i in range(MEMBERS):
        member_id = f"x{i:05d}"
        enrolled = now - rnd.randint(0, 730) * DAY_MICROS
        member_rows.append(
            dict(
                program_id=program_id, member_id=member_id, referral_code=f"R{i:09d}", status="ACTIVE",
                enrolled_at=enrolled, posted=0, held=0, last_seq=0, updated_at=now, last_activity_at=now,
                last_entry_hash="0" * 64,
            )
        )
        for n in range(rnd.choice((0, 0, 1, 1, 2, 3, 4, 6))):
            # Whole days back, some a few hours either side of the window's edge.
            days = rnd.choice((rnd.randint(1, 500), 364, 366))
            occurred = now - days * DAY_MICROS - 3_600_000_000
            amount = rnd.choice((1000, 2500, 2500, 4000, 10000))
            order_id, earn_id = f"{member_id}-o{n}", f"tx-{member_id}-{n}"
            tx_rows.append(_tx(program_id, earn_id, member_id, "EARN", order_id, amount, occurred))
            spend_rows.append(dict(program_id=program_id, member_id=member_id, transaction_id=earn_id,
                                   occurred_at=occurred, spend=amount, base_points=amount // 100))
            if rnd.random() < 0.25:
                refunded = rnd.choice((amount, amount // 2, 500))
                refund_id = f"rf-{member_id}-{n}"
                tx_rows.append(_tx(program_id, refund_id, member_id, "REFUND", order_id, refunded, now - DAY_MICROS))
                # As the ledger writes it: dated at the order's time, so it reduces that order's window.
                spend_rows.append(dict(program_id=program_id, member_id=member_id, transaction_id=refund_id,
                                       occurred_at=occurred, spend=-refunded, base_points=-(refunded // 100)))
    with engine.begin() as conn:
        conn.execute(insert(members_table), member_rows)
        conn.execute(insert(transactions), tx_rows)
        conn.execute(insert(qualifying_events), spend_rows)


def _tx(program_id, tx_id, member_id, kind, order_id, amount, occurred) -> dict:
    return dict(
        program_id=program_id, transaction_id=tx_id, member_id=member_id, kind=kind, points=0, breakdown="[]",
        channel="POS", store_id="", order_id=order_id, order_amount=amount, currency="USD", reason="",
        idempotency_key=tx_id, api_key_id="seed", reverses_transaction_id=None, occurred_at=occurred,
        created_at=occurred, activity_type=None, tier_from=None, tier_to=None,
    )


def _independent(engine, program_id: str, at: int) -> dict[str, Figures]:
    """Each member's figures from the raw rows, by the definitions in the README."""
    last: dict[str, int] = {}
    orders: dict[str, int] = defaultdict(int)
    spend: dict[str, int] = defaultdict(int)
    with engine.connect() as conn:
        for m, kind, occurred in conn.execute(
            select(transactions.c.member_id, transactions.c.kind, transactions.c.occurred_at).where(
                transactions.c.program_id == program_id
            )
        ):
            if kind == "EARN":
                last[m] = max(last.get(m, occurred), occurred)
                orders[m] += occurred > at - WINDOW
        for m, occurred, amount in conn.execute(
            select(qualifying_events.c.member_id, qualifying_events.c.occurred_at, qualifying_events.c.spend).where(
                qualifying_events.c.program_id == program_id
            )
        ):
            if occurred > at - WINDOW:
                spend[m] += amount
        ids = conn.execute(select(members_table.c.member_id).where(members_table.c.program_id == program_id)).scalars()
        return {m: Figures(last.get(m), orders[m], spend[m]) for m in ids}


def _quintile(values: dict[str, int]) -> dict[str, int]:
    """1 + min(4, floor(5 * (members with a lower value) / N)): ties share a score."""
    ordered = sorted(values.values())
    n = len(ordered)
    lower = {}
    for position, value in enumerate(ordered):
        lower.setdefault(value, position)
    return {m: 1 + min(4, 5 * lower[v] // n) for m, v in values.items()}


def test_refresh_scores_and_memberships_equal_an_independent_computation(empty_engine):
    engine = empty_engine
    migrate.upgrade(engine)
    db = Database(engine)
    created = programs.create_program(db, "exact")
    program_id = created.program_id
    _seed(engine, program_id, to_micros(clock.now()))

    report = segments.refresh_program(db, program_id)
    with engine.connect() as conn:
        cuts = segment_store.cuts(conn, program_id)
        stored = {
            r.member_id: Figures(r.last_order_at, r.orders, r.spend)
            for r in conn.execute(select(member_rfm).where(member_rfm.c.program_id == program_id))
        }
        inside = defaultdict(set)
        for segment_id, m in conn.execute(
            select(segment_members.c.segment_id, segment_members.c.member_id).where(
                segment_members.c.program_id == program_id
            )
        ):
            inside[m].add(segment_id)
        enrolled = dict(
            conn.execute(
                select(members_table.c.member_id, members_table.c.enrolled_at).where(
                    members_table.c.program_id == program_id
                )
            ).all()
        )
    at = to_micros(cuts.computed_at)
    expected = _independent(engine, program_id, at)
    assert report.members == MEMBERS == len(stored)
    assert stored == expected
    assert sum(1 for f in expected.values() if f.last_order_at is None) > MEMBERS // 10  # members with no order
    assert any(f.spend < 0 for f in expected.values()) or any(f.orders and f.spend == 0 for f in expected.values())

    r = _quintile({m: f.last_order_at or 0 for m, f in expected.items()})
    f_ = _quintile({m: f.orders for m, f in expected.items()})
    m_ = _quintile({m: f.spend for m, f in expected.items()})
    for member_id, figures in expected.items():
        shown = profile(figures, cuts, at, enrolled[member_id], "", 0)
        assert (shown.scores.recency, shown.scores.frequency, shown.scores.monetary) == (
            r[member_id], f_[member_id], m_[member_id]
        ), member_id
        # The presets' membership, decided here by the domain rule on independent figures.
        want = {s.segment_id for s in presets() if domain_matches(s.conditions, shown)}
        assert inside[member_id] == want, member_id
    assert min(len(set(r.values())), len(set(m_.values()))) >= 4  # ties (at 0 above all) merge quintiles

    # GetMember reads the figures live from the ledger and scores them the same way.
    caller = Caller(program_id, credentials.key_id_of(created.admin_key), Role.ADMIN)
    for member_id in sorted(expected)[:: MEMBERS // 60]:
        view = members.get_member(db, caller, member_id).rfm
        assert view is not None and view.figures == expected[member_id]
        assert (view.profile.scores.recency, view.profile.scores.frequency, view.profile.scores.monetary) == (
            r[member_id], f_[member_id], m_[member_id]
        )
    # Nothing moved: a second refresh enters and exits no one.
    again = segments.refresh_program(db, program_id)
    assert (again.entered, again.exited) == (0, 0)
    assert clock.now() - cuts.computed_at < timedelta(minutes=5)

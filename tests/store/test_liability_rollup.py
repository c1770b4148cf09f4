"""The liability report's points by source: what it reads from the rollup of settled days plus
its scan of what came after equals a scan of everything, as of any instant (inside a rolled-up
day, at its edges, after it), before and after rolling up; a day still open is never rolled
up, and a second roll-up adds nothing. Transactions written straight into a fresh database
per backend, on days in the past."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest
from sqlalchemy import func, insert, select

from ledger.domain.liability import DAY_MICROS
from ledger.store import liability, migrate, verification
from ledger.store.tables import liability_day_sources, transactions

PROGRAM = "prg_rollup"
TODAY = 20_500  # a day number; "now" is noon of it
NOW = TODAY * DAY_MICROS + DAY_MICROS // 2
SOURCES = ("BASE", "TIER_BONUS", "CAMPAIGN", "REFERRAL")


def _transactions() -> list[dict]:
    rnd = random.Random(17)
    rows = []
    for n in range(400):
        day = TODAY - rnd.randint(0, 6)
        created = day * DAY_MICROS + rnd.randint(0, DAY_MICROS - 1)
        if n < 4:  # on the edges of a day
            created = (TODAY - 3) * DAY_MICROS + (0, 1, DAY_MICROS - 1, DAY_MICROS - 2)[n]
        lines = [
            {"source": source, "points": rnd.randint(1, 500), "description": f"line {n}", "campaign_id": ""}
            for source in rnd.sample(SOURCES, rnd.randint(1, 3))
        ]
        kind = rnd.choice(("EARN", "EARN", "ACTIVITY", "ADJUST"))
        rows.append(
            dict(
                program_id=PROGRAM, transaction_id=f"tx-{n}", member_id=f"m{n % 7}", kind=kind,
                points=sum(line["points"] for line in lines), breakdown=json.dumps(lines), channel="POS",
                store_id="", order_id=None, order_amount=0, currency="USD", reason="", idempotency_key=f"k-{n}",
                api_key_id="seed", reverses_transaction_id=None, occurred_at=created, created_at=created,
                activity_type=None, tier_from=None, tier_to=None,
            )
        )
    return rows


def _expected(rows: list[dict], at: int) -> dict[tuple[int, str], int]:
    """Straight from the rows, in Python."""
    sums: dict[tuple[int, str], int] = defaultdict(int)
    for row in rows:
        if row["kind"] in ("EARN", "ACTIVITY") and row["created_at"] <= at:
            for line in json.loads(row["breakdown"]):
                sums[(row["created_at"] // DAY_MICROS, line["source"])] += line["points"]
    return dict(sums)


def _read(conn, at: int) -> dict[tuple[int, str], int]:
    found: dict[tuple[int, str], int] = defaultdict(int)
    for day, source, points in liability.by_source(conn, PROGRAM, at):
        found[(day, source)] += points  # a day never comes from both the rollup and the scan
    return dict(found)


@pytest.fixture
def ledger_rows(empty_engine):
    migrate.upgrade(empty_engine)
    rows = _transactions()
    with empty_engine.begin() as conn:
        conn.execute(insert(transactions), rows)
    return empty_engine, rows


INSTANTS = [
    (TODAY - 3) * DAY_MICROS - 1, (TODAY - 3) * DAY_MICROS, (TODAY - 3) * DAY_MICROS + 1,
    (TODAY - 2) * DAY_MICROS - 1, (TODAY - 1) * DAY_MICROS + 12345, NOW,
]


def test_rolled_up_days_plus_the_scan_equal_a_scan_of_everything(ledger_rows):
    engine, rows = ledger_rows
    with engine.connect() as conn:
        before = {at: _read(conn, at) for at in INSTANTS}
    assert before == {at: _expected(rows, at) for at in INSTANTS}
    with engine.begin() as conn:
        liability.start_rollup(conn, PROGRAM)
    with engine.begin() as conn:
        covered = liability.roll_up_sources(conn, PROGRAM, NOW)
    with engine.connect() as conn:
        kept_days = set(conn.execute(select(liability_day_sources.c.day)).scalars())
        after = {at: _read(conn, at) for at in INSTANTS}
    # At noon, yesterday ended only 12 hours ago: settled (6 hours); today is not.
    assert covered == TODAY and max(kept_days) == TODAY - 1
    assert after == before
    with engine.begin() as conn:
        assert liability.roll_up_sources(conn, PROGRAM, NOW + 3_600_000_000) == 0  # nothing newly settled
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(liability_day_sources)).scalar_one() == len(
            {(d, s) for (d, s) in _expected(rows, TODAY * DAY_MICROS - 1)}
        )


def test_a_day_ended_less_than_six_hours_ago_is_not_rolled_up(ledger_rows):
    engine, _rows = ledger_rows
    with engine.begin() as conn:
        liability.start_rollup(conn, PROGRAM)
    with engine.begin() as conn:
        liability.roll_up_sources(conn, PROGRAM, TODAY * DAY_MICROS + 5 * 3_600_000_000)
    with engine.connect() as conn:
        assert max(conn.execute(select(liability_day_sources.c.day)).scalars()) == TODAY - 2


def test_verify_finds_a_rolled_up_day_that_no_longer_matches_the_ledger(ledger_rows):
    engine, rows = ledger_rows
    breach = "the liability report's rolled-up days equal the ledger's points by source"
    with engine.begin() as conn:
        liability.start_rollup(conn, PROGRAM)
    with engine.begin() as conn:
        liability.roll_up_sources(conn, PROGRAM, NOW)
    with engine.connect() as conn:
        assert verification.run_checks(conn)[breach] == []
    # A transaction recorded late into a day already rolled up (a clock hours behind).
    late = dict(rows[10], transaction_id="tx-late", idempotency_key="k-late", kind="EARN",
                created_at=(TODAY - 2) * DAY_MICROS + 5, occurred_at=(TODAY - 2) * DAY_MICROS + 5,
                breakdown=json.dumps([{"source": "BASE", "points": 7, "description": "late", "campaign_id": ""}]),
                points=7)
    with engine.begin() as conn:
        conn.execute(insert(transactions), [late])
    with engine.connect() as conn:
        [found] = verification.run_checks(conn)[breach]
    expected = _expected(rows, TODAY * DAY_MICROS)[(TODAY - 2, "BASE")]
    assert found == {"program_id": PROGRAM, "day": TODAY - 2, "source": "BASE", "rolled_up": expected, "ledger": expected + 7}

"""`verify` pairs every transaction and every enrolment with its event in one join each, and
events have no index by transaction or member (migration 0019).

On SQLite such a join must not walk all of a program's events by the primary key for every
transaction or member: that is quadratic (16,000 transactions took 15.8 s that way, against
5 ms with an index to join on). The checks are written so that SQLite builds an automatic
index of its own for the join; this holds them to that plan on a migrated database, and to
a clean report on a ledger with events. PostgreSQL hash-joins both tables either way.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ledger.service.verify import verify
from ledger.store import migrate
from ledger.store.verification import CHECKS
from tests.store.test_tamper_evidence import new_ledger

EVENT_PAIRINGS = ("every transaction has its event", "every enrolment has its member.enrolled event")


@pytest.mark.parametrize("empty_engine", ["sqlite"], indirect=True)
def test_sqlite_joins_events_on_an_index_made_for_the_check(empty_engine):
    engine = empty_engine
    migrate.upgrade(engine)
    new_ledger(engine)  # members with and without transactions, each with its events
    report = verify(engine)
    assert report.clean, report.breaches
    with engine.connect() as conn:  # no ANALYZE: the server never runs one on SQLite
        for name in EVENT_PAIRINGS:
            plan = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + CHECKS[name]))]
            on_events = [step for step in plan if step.startswith(("SEARCH e ", "SCAN e "))]
            assert len(on_events) == 1 and "AUTOMATIC" in on_events[0], (name, plan)

"""Use case: the points liability report of the caller's program at an instant
(ledger.domain.liability says what each figure means and how breakage is projected)."""

from __future__ import annotations

from datetime import datetime

from ledger.store.database import Database

from ledger.domain import errors
from ledger.domain.liability import EXPIRING_WINDOWS_DAYS, LiabilityReport, cohorts, months
from ledger.service import clock, lookups
from ledger.service.caller import Caller
from ledger.store import liability, programs, unit_of_work
from ledger.store.engine import without_statement_timeout
from ledger.store.instants import to_micros


def liability_report(db: Database, program_id: str, as_of: datetime | None = None) -> LiabilityReport:
    """The report as the ledger stood at as_of (now when None); one consistent snapshot."""
    now = clock.now()
    at_instant = as_of or now
    if at_instant > now:
        raise errors.invalid_field("as_of_time", "must not be in the future")

    if db.is_postgresql:
        # On SQLite (one writer at a time) a report summing a history would hold every Earn
        # back meanwhile: there the due-work leader alone rolls up (and work() below refuses
        # an unknown program).
        _roll_up_program(db, program_id, to_micros(now))

    def work(conn) -> LiabilityReport:
        without_statement_timeout(conn)  # a report over a big ledger runs longer than a till's call
        rules = lookups.program_rules(conn, program_id)
        at = to_micros(at_instant)
        kinds = liability.by_kind(conn, program_id, at)
        sources = liability.by_source(conn, program_id, at)
        lot_rows = liability.lot_days(conn, program_id, at)
        held = liability.held(conn, program_id, at)
        posted = sum(credits + debits for _, _, credits, debits in kinds)
        outstanding = sum(int(r.outstanding) for r in lot_rows)
        pending = sum(int(r.pending) for r in lot_rows)
        past = sum(int(r.past_expiry) for r in lot_rows)
        expiring = tuple(
            (days, sum(int(getattr(r, f"within_{days}")) for r in lot_rows)) for days in EXPIRING_WINDOWS_DAYS
        )
        cohort_rows = [
            (int(r.day), int(r.issued), int(r.expired), int(r.outstanding)) for r in lot_rows if not int(r.moved)
        ]
        return LiabilityReport(
            as_of=at_instant,
            currency=rules.currency,
            point_value=rules.point_value,
            posted=posted,
            negative=posted - outstanding,
            outstanding=outstanding,
            pending=pending,
            held=held,
            expired_unwritten=past,
            available=outstanding - pending - held - past,
            expiring=expiring,
            months=months(kinds, sources),
            cohorts=cohorts(cohort_rows),
        )

    return unit_of_work.run(db, work, read_only=True, snapshot=True)


def _roll_up_program(db: Database, program_id: str, now: int) -> int:
    """Settled days' points by source, summed once for every later report (the first time,
    the program's whole history); returns how many days it covered."""

    def start(conn) -> None:
        lookups.program_rules(conn, program_id)  # PROGRAM_NOT_FOUND before anything is written
        liability.start_rollup(conn, program_id)

    def roll_up(conn) -> int:
        without_statement_timeout(conn)
        return liability.roll_up_sources(conn, program_id, now)

    unit_of_work.run(db, start)
    return unit_of_work.run(db, roll_up)


def roll_up_all(db: Database) -> int:
    """Rolls up every program's newly settled days (the due-work leader, hourly), so that no
    report pays for it; returns how many program-days it covered."""
    ids = unit_of_work.run(db, programs.ids, read_only=True)
    return sum(_roll_up_program(db, program_id, to_micros(clock.now())) for program_id in ids)


def report_for(db: Database, caller: Caller, as_of: datetime | None) -> LiabilityReport:
    return liability_report(db, caller.program_id, as_of)

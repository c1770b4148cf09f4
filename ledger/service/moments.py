"""Use case: tell the post-purchase moments that are due (part of the due work, run by its leader).

For each program with a moment turned on, page through its candidates (members and their
lots, orders placed N days ago, members whose last order was N days ago, tiers under review
within N days); per page, one unit of work loads the facts, asks ledger.domain.moments which
moments are due, claims their keys and writes an event for each key it claimed, through the
outbox, in the same transaction. So a moment is told exactly once, however often the due work
runs and whichever process leads it, and a crash between pages loses nothing: the next run
finds the keys of what was told and tells the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.domain import moments as rules_of
from ledger.domain.moments import Moment, OrderFacts
from ledger.domain.program import ExpiryMode, ProgramRules
from ledger.service import clock
from ledger.service.tiers import qualifying_windows
from ledger.store import moments as moment_store
from ledger.store import programs, unit_of_work
from ledger.store import tiers as tier_store
from ledger.store.database import Database, Transaction

PAGE = 5_000
WORKERS = 2  # batches written at once on PostgreSQL (two cores: one for Python, one for the database)
TIER_PAGE = 200  # each member's qualifying windows are read one by one
# Keys are kept this long after their moment was due: no scan looks back further (the
# catch-up horizon is 7 days), even after a program shortens an N.
KEY_MEMORY = timedelta(days=60)
FORGET_BATCH = 10_000


@dataclass
class MomentsReport:
    told: Counter = field(default_factory=Counter)  # type -> moments told
    forgotten: int = 0


def tell_due_moments(db: Database, now: datetime | None = None, *, page: int = PAGE) -> MomentsReport:
    now = now or clock.now()
    report = MomentsReport()
    for rules, _created in unit_of_work.run(db, programs.list_all, read_only=True):
        settings = rules.moments
        if settings.points_expiring_days:
            report.told[rules_of.POINTS_EXPIRING] += _points_expiring(db, rules, now, page)
        if settings.tier_downgrade_warning_days:
            report.told[rules_of.TIER_DOWNGRADE_WARNING] += _tier_warnings(db, rules, now)
        if settings.review_request_days:
            report.told[rules_of.REVIEW_REQUESTED] += _review_requests(db, rules, now, page)
        if settings.lapsed_days:
            report.told[rules_of.MEMBER_LAPSED] += _lapses(db, rules, now, page)
    while True:
        gone = unit_of_work.run(db, lambda conn: moment_store.forget_before(conn, now - KEY_MEMORY, FORGET_BATCH))
        report.forgotten += gone
        if gone < FORGET_BATCH:
            return report


def _points_expiring(db: Database, rules: ProgramRules, now: datetime, page: int) -> int:
    settings = rules.moments
    window = rules_of.expiring_window(settings, now)
    if window is None:
        return 0
    if rules.expiry_mode is ExpiryMode.INACTIVITY:
        return _inactivity_expiring(db, rules, now, page) if rules.expiry_days > 0 else 0
    # Lots expire by their own expires_at whatever the mode is now (lots credited under an
    # earlier ROLLING setting too): read the lots expiring in the window, one member group at
    # a time, and tell each group's moments in a transaction of its own, WORKERS at a time on
    # PostgreSQL (the groups' keys are disjoint; their events queue only for the event head).
    workers = WORKERS if db.is_postgresql else 1
    told = 0

    def tell_group(batch: dict[str, list[tuple[datetime, int]]]) -> int:
        due = [m for member_id, lots in batch.items() for m in rules_of.points_expiring(member_id, lots, now, settings)]
        return unit_of_work.run(db, lambda conn: moment_store.tell(conn, rules.program_id, due, now))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moments") as pool:
        running: set[Future[int]] = set()
        with unit_of_work.snapshot(db) as reading:
            for batch in moment_store.lots_expiring_by_member(reading, rules.program_id, window[0], window[1], page):
                if len(running) >= workers:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    told += sum(future.result() for future in finished)
                running.add(pool.submit(tell_group, batch))
        told += sum(future.result() for future in wait(running).done)
    return told


def _inactivity_expiring(db: Database, rules: ProgramRules, now: datetime, page: int) -> int:
    """All of a member's points go when they have been inactive for expiry_days: the day they
    would go is last activity + expiry_days."""
    settings = rules.moments
    window = rules_of.expiring_window(settings, now)
    assert window is not None
    lifetime = timedelta(days=rules.expiry_days)
    told, after = 0, None
    while True:

        def work(conn: Transaction, after: str | None = after) -> tuple[int, str | None]:
            ids = moment_store.member_page(conn, rules.program_id, after, page)
            if not ids:
                return 0, None
            inactive = moment_store.inactive_points(
                conn, rules.program_id, ids[0], ids[-1], window[0] - lifetime, window[1] - lifetime
            )
            due = [
                m
                for member_id, (active_at, points) in sorted(inactive.items())
                for m in rules_of.points_expiring(member_id, [(active_at + lifetime, points)], now, settings)
            ]
            return moment_store.tell(conn, rules.program_id, due, now), ids[-1] if len(ids) == page else None

        count, after = unit_of_work.run(db, work)
        told += count
        if after is None:
            return told


def _review_requests(db: Database, rules: ProgramRules, now: datetime, page: int) -> int:
    window = rules_of.review_window(rules.moments, now)
    if window is None:
        return 0
    return _order_moments(
        db, rules, now, page, window, lambda o: rules_of.review_request(o, now, rules.moments), latest_of_member=False
    )


def _lapses(db: Database, rules: ProgramRules, now: datetime, page: int) -> int:
    window = rules_of.lapse_window(rules.moments, now)
    if window is None:
        return 0
    return _order_moments(
        db, rules, now, page, window,
        lambda o: rules_of.lapse(o.member_id, o.order_id, o.occurred_at, now, rules.moments), latest_of_member=True,
    )


def _order_moments(
    db: Database, rules: ProgramRules, now: datetime, page: int, window: tuple[datetime, datetime],
    moment_of: Callable[[OrderFacts], Moment | None], *, latest_of_member: bool,
) -> int:
    """Pages through the orders placed in the window (each member's latest only, when asked)
    and tells each page's due moments in a transaction of its own."""
    told, cursor = 0, moment_store.START
    while True:

        def work(conn: Transaction, cursor: moment_store.OrderCursor = cursor) -> tuple[int, moment_store.OrderCursor, bool]:
            orders, moved = moment_store.orders_placed(
                conn, rules.program_id, window[0], window[1], cursor, page, latest_of_member=latest_of_member
            )
            due = [m for m in map(moment_of, orders) if m is not None]
            return moment_store.tell(conn, rules.program_id, due, now), moved, len(orders) == page

        count, cursor, more = unit_of_work.run(db, work)
        told += count
        if not more:
            return told


def _tier_warnings(db: Database, rules: ProgramRules, now: datetime) -> int:
    window = rules_of.warning_window(rules.moments, now)
    if window is None:
        return 0
    grace = timedelta(days=rules.tier_grace_days)
    # The review happens at held_until + grace (ledger.domain.tiers.period_end_review).
    start, end = window[0] - grace, window[1] - grace
    told, cursor = 0, None
    while True:

        def work(conn: Transaction, cursor: tuple[datetime, str] | None = cursor) -> tuple[int, tuple[datetime, str] | None]:
            under_review = moment_store.tiers_under_review(conn, rules.program_id, start, end, cursor, TIER_PAGE)
            if not under_review:
                return 0, None
            definitions = tier_store.definitions(conn, rules.program_id)
            due: list[Moment] = []
            for member_id, tier_name, held_until in under_review:
                review_at = held_until + grace
                windows = qualifying_windows(conn, rules.program_id, member_id, rules, definitions, (review_at,))
                moment = rules_of.downgrade_warning(
                    member_id, tier_name, review_at, definitions, rules, windows[review_at], now, rules.moments
                )
                if moment is not None:
                    due.append(moment)
            member_id, _, held_until = under_review[-1]
            more = len(under_review) == TIER_PAGE
            return moment_store.tell(conn, rules.program_id, due, now), ((held_until, member_id) if more else None)

        count, cursor = unit_of_work.run(db, work)
        told += count
        if cursor is None:
            return told

"""Runs the due work (lapse holds, review tiers, expire points, prune old events, tell the
post-purchase moments, refresh segments when due, roll up the liability report's settled days)
on a schedule inside the server.

Every server process runs this thread, but only the leader does the work: once per
interval each asks ledger.store.leadership whether it leads (taking the leadership if
nobody holds it), so the work runs in one place at a time across all processes and
machines sharing the database, and moves to another process within one interval when
the leader dies. The post-purchase moments are counted in days, so they run at a slower pace
of their own (moments_interval): their scan reads every member's lots. The liability rollup
goes at that pace too (a day settles once a day).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Callable, TypeVar


from ledger.domain.errors import LedgerError
from ledger.service import liability, segments
from ledger.service.expiry import DueWorkReport, run_due_work
from ledger.store import leadership
from ledger.store.database import Database

log = logging.getLogger("ledger.scheduler")
T = TypeVar("T")


class DueWorkScheduler:
    def __init__(
        self,
        db: Database,
        interval_seconds: float,
        *,
        on_leadership: Callable[[bool], None] | None = None,
        on_report: Callable[[DueWorkReport], None] | None = None,
        leader: leadership.Leadership | None = None,
        moments_interval: float = 3600.0,
        segments_every: float = 86400.0,
    ) -> None:
        """on_leadership: called with True or False when this process starts or stops leading.
        on_report: called with the report of each run of the due work (the metrics count it).
        leader: the leadership to use (default: the one of db's database).
        moments_interval: seconds between two runs that tell the post-purchase moments (the
        first run that leads tells them; 0: every run).
        segments_every: seconds between refreshes of a program's RFM figures, cut points and
        segment members (0: never); a program never refreshed is due at once."""
        self._segments_every = segments_every
        self._db = db
        self._interval = interval_seconds
        self._leader = leader
        self._on_leadership = on_leadership
        self._on_report = on_report
        self._moments_interval = moments_interval
        self._moments_at: float | None = None  # monotonic time of the last run that told them
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="due-work", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            if self._leader is None:
                self._leader = leadership.for_engine(self._db.engine, self._on_leadership)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self._leader is not None:
            self._leader.release()

    def _loop(self) -> None:
        self._tick(work=False)  # at once: the log says who leads from the start
        while not self._stop.wait(self._interval):
            self._tick(work=True)

    def _tick(self, work: bool) -> None:
        try:
            if self._leader is not None and self._leader.hold() and work:
                self._run()
        except Exception:  # never let the thread die: the next interval tries again
            log.exception("due work scheduler failed; will retry")

    def _run(self) -> None:
        started = time.monotonic()
        moments = self._moments_at is None or started - self._moments_at >= self._moments_interval
        report = _guarded("due work", lambda: run_due_work(self._db, moments=moments))
        if report is None:
            return
        if moments:
            self._moments_at = started
        if self._on_report is not None:
            self._on_report(report)
        if self._segments_every > 0:
            self._refresh_segments()
        if moments:
            self._roll_up_liability()
        if report.holds_lapsed or report.points_expired or report.tiers_changed or report.moments_told:
            log.info(
                "due work",
                extra={
                    "holds_lapsed": report.holds_lapsed,
                    "members_expired": report.members_expired,
                    "points_expired": report.points_expired,
                    "tiers_changed": report.tiers_changed,
                    "moments_told": report.moments_told,
                },
            )

    def _roll_up_liability(self) -> None:
        covered = _guarded("liability rollup", lambda: liability.roll_up_all(self._db))
        if covered:
            log.info("liability rollup", extra={"program_days": covered})

    def _refresh_segments(self) -> None:
        every = timedelta(seconds=self._segments_every)
        for done in _guarded("segments refresh", lambda: segments.refresh_due(self._db, every)) or []:
            log.info(
                "segments refreshed",
                extra={"program_id": done.program_id, "members": done.members, "entered": done.entered,
                       "exited": done.exited, "seconds": round(done.seconds, 3)},
            )


def _guarded(what: str, work: Callable[[], T]) -> T | None:
    """work()'s result, or None when it failed (logged): the next interval tries again."""
    try:
        return work()
    except LedgerError as error:
        log.warning(f"{what} failed; will retry", extra={"reason": error.reason, "error": error.message})
    except Exception:
        log.exception(f"{what} crashed; will retry")
    return None

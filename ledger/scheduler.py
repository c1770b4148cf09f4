"""Runs the daily work (lapse holds, expire points) on a schedule inside the server process.

Every server runs it; that is safe because each batch locks its rows and
re-checks them, so two servers sweeping at once never expire anything twice.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from ledger.domain.errors import LedgerError
from ledger.service.expiry import run_due_work

log = logging.getLogger("ledger.scheduler")


class DueWorkScheduler:
    def __init__(self, engine: Engine, interval_seconds: float) -> None:
        self._engine = engine
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="due-work", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = run_due_work(self._engine)
            except LedgerError as error:
                log.warning("due work failed; will retry", extra={"reason": error.reason, "error": error.message})
                continue
            except Exception:
                log.exception("due work crashed; will retry")
                continue
            if report.holds_lapsed or report.points_expired:
                log.info(
                    "due work",
                    extra={
                        "holds_lapsed": report.holds_lapsed,
                        "members_expired": report.members_expired,
                        "points_expired": report.points_expired,
                    },
                )

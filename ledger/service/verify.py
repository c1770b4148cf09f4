"""Use case: recompute every cached balance from the ledger and check every invariant."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.store.database import Database

from ledger.store import unit_of_work
from ledger.store import verification
from ledger.store.engine import without_statement_timeout


@dataclass(frozen=True)
class VerifyReport:
    counts: dict[str, int]
    breaches: dict[str, list[dict]]
    # Per program: posted and outstanding points (the liability report's totals).
    totals: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not any(self.breaches.values())


def verify(db: Database) -> VerifyReport:
    def work(conn) -> VerifyReport:
        without_statement_timeout(conn)
        results = verification.run_checks(conn)
        return VerifyReport(
            verification.counts(conn), {k: v for k, v in results.items() if v}, verification.program_totals(conn)
        )

    return unit_of_work.run(db, work, read_only=True, snapshot=True)

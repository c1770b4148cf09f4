"""Times a job of the due work run in this process, round after round: `bench moments` and
`bench segments` print one JSON line a round with its wall and CPU seconds and this process's
peak memory before and after (flat memory: the job streams, it never holds the ledger)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Callable

from ledger.store.database import Database
from ledger.store.engine import create_engine_for


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_rounds(rounds: int, job: Callable[[Database], dict], pool_size: int = 4) -> int:
    """Runs job(db) `rounds` times on LOYALTY_DATABASE_URL; job returns what to print of its result."""
    url = os.environ.get("LOYALTY_DATABASE_URL")
    if not url:
        print("set LOYALTY_DATABASE_URL to the seeded database", file=sys.stderr)
        return 2
    db = Database(create_engine_for(url, pool_size=pool_size))
    try:
        for round_ in range(1, rounds + 1):
            before = _peak_rss_mib()
            started, cpu = time.monotonic(), time.process_time()
            outcome = job(db)
            line = {
                "round": round_,
                "seconds": round(time.monotonic() - started, 2),
                "cpu_seconds": round(time.process_time() - cpu, 2),
                **outcome,
                "peak_rss_mib_before": round(before, 1),
                "peak_rss_mib_after": round(_peak_rss_mib(), 1),
            }
            print(json.dumps(line), flush=True)
    finally:
        db.dispose()
    return 0

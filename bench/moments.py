"""`python -m bench moments`: how long the due work takes to tell the post-purchase moments.

Seed a ledger whose every member has a lot expiring within the reminder window, then time
one run of ledger.service.moments.tell_due_moments against it (the whole of it: every
program, every moment turned on), with the peak memory of this process before and after:

  LOYALTY_DATABASE_URL=postgresql://127.0.0.1/moments python -m bench seed --members 1000000 --expiring-lots 10
  LOYALTY_DATABASE_URL=postgresql://127.0.0.1/moments python -m bench moments

A second run tells nothing (every key is there) and shows what the hourly scan costs when
nothing is due any more.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from ledger.service.moments import tell_due_moments
from ledger.store.database import Database
from ledger.store.engine import create_engine_for


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args) -> int:
    url = os.environ.get("LOYALTY_DATABASE_URL")
    if not url:
        print("set LOYALTY_DATABASE_URL to the seeded database", file=sys.stderr)
        return 2
    db = Database(create_engine_for(url, pool_size=4))
    try:
        for round_ in range(1, args.rounds + 1):
            before = _peak_rss_mib()
            started, cpu = time.monotonic(), time.process_time()
            report = tell_due_moments(db)
            print(
                json.dumps(
                    {
                        "round": round_,
                        "seconds": round(time.monotonic() - started, 2),
                        "cpu_seconds": round(time.process_time() - cpu, 2),
                        "told": dict(report.told),
                        "peak_rss_mib_before": round(before, 1),
                        "peak_rss_mib_after": round(_peak_rss_mib(), 1),
                    }
                ),
                flush=True,
            )
    finally:
        db.dispose()
    return 0


def add_parser(sub) -> None:
    parser = sub.add_parser("moments", help="time one run of the post-purchase moments (LOYALTY_DATABASE_URL)")
    parser.add_argument("--rounds", type=int, default=2, help="runs one after another (the later ones find nothing new)")
    parser.set_defaults(run=run)

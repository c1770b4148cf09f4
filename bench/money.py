"""Benchmarks of the money and members features (PostgreSQL, LOYALTY_DATABASE_URL):

- `python -m bench liability --program ID [--as-of ISO]`: times GetLiabilityReport's work (the
  service call, in process) over a seeded ledger (`python -m bench seed --members 1000000
  --entries 10` makes 1M members and 10M entries), the first run (which rolls the program's
  settled days up) and the best and median of --repeat runs.
- `python -m bench import-orders --program ID --rows N [--members M]`: writes a CSV of N
  orders for the seeded members m0..m{M-1} (one order each, dated within the last day) and
  imports it with `loyalty-ledger import orders`' code, printing rows per second and the
  peak memory of the process and of its largest worker process.
"""

from __future__ import annotations

import csv
import resource
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ledger.store.database import Database
from ledger.store.engine import create_engine_for, database_url


def _liability(args) -> int:
    from ledger.service.liability import liability_report

    db = Database(create_engine_for(database_url(), pool_size=2))
    as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00")) if args.as_of else None
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        report = liability_report(db, args.program, as_of)
        times.append(time.perf_counter() - started)
    print(f"liability report: posted {report.posted:,} points, {len(report.months)} months, {len(report.cohorts)} cohorts")
    # The first report of a program also rolls up its settled days (ledger.store.liability).
    print(f"seconds: first {times[0]:.2f}; best {min(times):.2f}, median {statistics.median(times):.2f} over {args.repeat} runs")
    return 0


def _import_orders(args) -> int:
    from ledger import imports

    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    source = folder / "orders.csv"
    start = datetime.now(timezone.utc) - timedelta(days=1)
    with source.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("member_id", "order_id", "amount", "currency", "occur_time"))
        for i in range(args.rows):
            when = start + timedelta(microseconds=i * 80_000_000_000 // max(args.rows, 1))
            writer.writerow((f"m{i % args.members}", f"bench-{args.tag}-{i}", 1000 + i % 5000, "USD", when.isoformat()))
    workers = imports.workers_for("orders", args.workers)
    db = Database(create_engine_for(database_url(), pool_size=workers + 2))
    started = time.perf_counter()
    tally = imports.run(db, args.program, source, "orders", workers=workers, progress=not args.no_progress)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The import's worker processes (orders on PostgreSQL), ended by now: the largest one's peak.
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"import orders: {tally.applied:,} applied, {tally.refused:,} refused in {seconds:.1f} s:"
          f" {tally.applied / seconds:,.0f} orders/s, peak RSS {peak:.0f} MiB, largest worker's"
          f" {workers_peak:.0f} MiB ({source})")
    return 0


def add_parsers(sub) -> None:
    liability = sub.add_parser("liability", help="time the liability report over a seeded ledger")
    liability.add_argument("--program", required=True)
    liability.add_argument("--as-of", default="")
    liability.add_argument("--repeat", type=int, default=3)
    liability.set_defaults(run=_liability)
    orders = sub.add_parser("import-orders", help="time `import orders` of N generated rows")
    orders.add_argument("--program", required=True)
    orders.add_argument("--rows", type=int, default=100_000)
    orders.add_argument("--members", type=int, default=100_000)
    orders.add_argument("--workers", type=int, default=0, help="batches at once (default: the import's)")
    orders.add_argument("--tag", default=str(int(time.time())))
    orders.add_argument("--no-progress", action="store_true")
    orders.set_defaults(run=_import_orders)

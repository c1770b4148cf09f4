"""`python -m bench`: seed a ledger, run scenarios against a running server, write a report.

  python -m bench seed --members 100000 --entries 1 --out bench/out/setup.json
  python -m bench seed --members 1000000 --due-lots   # then: time loyalty-ledger expire
  python -m bench seed --members 1000000 --expiring-lots 10 && python -m bench moments   (see bench/moments.py)
  python -m bench seed --members 100000 --no-analyze   # statistics that know none of it
  python -m bench run --setup bench/out/setup.json --scenario earn --concurrency 64 --duration 20
  python -m bench run --setup ... --scenario all --report bench/out/report.md
  python -m bench scale --ledger 10k URL SETUP --ledger 10m URL SETUP   (p99 ratios, see bench/scale.py)
  python -m bench serial --operation earn --calls 3000   (one call's cost without gRPC, see bench/serial.py)
  python -m bench stall --unfinished 200 --connections 20   (Health while calls never send a request, see bench/stall.py)
  python -m bench sqlite-sync --calls 1500 --rounds 3   (SQLite synchronous=FULL against NORMAL, see bench/sqlite_durability.py)
  python -m bench watch --watchers 64 --rounds 2 --server-pid PID   (WatchEvents followers under the earn load, see bench/watch.py)
  python -m bench webhooks flaky --flaky 60 --healed 60   (webhook lag under a flaky receiver, see bench/webhooks.py)
  python -m bench webhooks till --setup bench/out/setup.json   (earn's ratio with delivery on and off)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench import (
    anatomy,
    moments,
    money,
    report,
    runner,
    scale,
    segments,
    seed,
    serial,
    server_models,
    soak,
    sqlite_durability,
    stall,
    watch,
    webhooks,
)
from bench.scenarios import SCENARIOS, Context


def cmd_seed(args) -> int:
    url = os.environ.get("LOYALTY_DATABASE_URL")
    if not url:
        print("set LOYALTY_DATABASE_URL to the server's PostgreSQL database", file=sys.stderr)
        return 2
    setup = seed.seed(
        url, args.members, args.entries, args.name, due_lots=args.due_lots, analyze=not args.no_analyze,
        expiring_in_days=args.expiring_lots, orders=args.orders,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    seed.write(args.out, setup)
    print(json.dumps({k: v for k, v in setup.items() if k not in ("key", "events_key")}))
    return 0


def cmd_run(args) -> int:
    setup = json.loads(Path(args.setup).read_text())
    ctx = Context.from_setup(setup)
    names = [s for s in SCENARIOS if s != "health"] if args.scenario == "all" else [args.scenario]
    results = {}
    measure = (args.target, ctx, args.concurrency, args.duration, args.processes, args.server_pid)
    results["health"] = runner.run(measure[0], "health", *measure[1:])
    print(report.header(results["health"]), flush=True)
    report.print_row("health", results["health"], results["health"])
    for name in names:
        if name == "health":
            continue
        results[name] = runner.run(measure[0], name, *measure[1:])
        report.print_row(name, results[name], results["health"])
    if args.report:
        report.write(args.report, results, vars(args), setup)
        print(f"report written to {args.report}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("seed", help="seed a PostgreSQL ledger (LOYALTY_DATABASE_URL) for the scenarios")
    s.add_argument("--members", type=int, default=100_000)
    s.add_argument("--entries", type=int, default=1, help="ledger entries per member")
    s.add_argument("--name", default="bench")
    s.add_argument(
        "--due-lots",
        action="store_true",
        help="every member's lot is already past its expiry date (for timing `loyalty-ledger expire`)",
    )
    s.add_argument(
        "--expiring-lots",
        type=int,
        metavar="DAYS",
        help="every member's lot expires DAYS days from now: a points.expiring moment each (`bench moments`)",
    )
    s.add_argument(
        "--no-analyze",
        action="store_true",
        help="leave the seeded tables unanalysed, with autovacuum off for them: the planner's statistics "
        "know nothing of these rows (see bench/seed.py)",
    )
    s.add_argument(
        "--orders",
        action="store_true",
        help="each entry is an order (EARN with amount and qualifying spend, dated over the last 500 days): "
        "the ledger `bench segments` refreshes",
    )
    s.add_argument("--out", default="bench/out/setup.json")
    s.set_defaults(run=cmd_seed)
    r = sub.add_parser("run", help="run scenarios against a running server")
    r.add_argument(
        "--target",
        default="127.0.0.1:50051",
        help="HOST:PORT of the server, or IP:PORT,IP:PORT,... of several (calls spread round robin)",
    )
    r.add_argument("--setup", default="bench/out/setup.json")
    r.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    r.add_argument("--concurrency", type=int, default=64)
    r.add_argument("--duration", type=float, default=20.0)
    r.add_argument("--processes", type=int, default=2)
    r.add_argument("--report", help="write a Markdown report (and a latency plot next to it)")
    r.add_argument(
        "--server-pid",
        type=int,
        action="append",
        help="the server's process id (repeat it for several servers): adds the CPU per call spent by the server, by this machine's "
        "PostgreSQL and by the load generator (read from /proc; all three on this machine), and the "
        "ceiling: the ratio to health a scenario could reach if the server's work beyond one RPC's transport cost nothing",
    )
    r.set_defaults(run=cmd_run)
    soak.add_parser(sub)
    moments.add_parser(sub)
    segments.add_parser(sub)
    scale.add_parser(sub)
    server_models.add_parser(sub)
    serial.add_parser(sub)
    stall.add_parser(sub)
    anatomy.add_parser(sub)
    sqlite_durability.add_parser(sub)
    watch.add_parser(sub)
    webhooks.add_parser(sub)
    money.add_parsers(sub)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

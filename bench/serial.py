"""`python -m bench serial`: what one call costs with gRPC and concurrency taken away.

  LOYALTY_DATABASE_URL=postgresql://... python -m bench serial --setup bench/out/setup.json \
      --operation earn --calls 3000

Runs the use case behind an RPC (Earn: request checks, `earning.earn`; Redeem: request
checks, `redemption.redeem` of one point from the setup's hot member, as redeem-hot does;
GetMember: `members.get_member`) in a loop in this process, one call after another, on the seeded
ledger the setup describes, each call authenticated with the setup's key as the server
does it (the key's row as last read, its revocation read in the call's transaction).
The requests are built before the clock starts: making them is the load generator's
work. After a warm-up (prepared statements, caches), it prints wall time, this process's
CPU and PostgreSQL's CPU per call (from /proc: every PostgreSQL process on this machine,
so run it on an otherwise idle database server). Set against `bench run --server-pid`,
the difference is what serving over gRPC to many clients at once adds: the transport,
the interceptor (role check, metrics, the log line), building the response, and
handing calls between threads. Earn writes to the ledger, as `bench run` does.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench import procfs
from bench.scenarios import Context, earn_request, random_member, redeem_hot_request
from ledger.api import requests
from loyalty.v1 import ledger_pb2
from ledger.service import earning, keys, members, redemption
from ledger.store.database import Database
from ledger.store.engine import create_engine_for

OPERATIONS = ("earn", "redeem", "get-member")


def _earn(db, api_key: str, request: ledger_pb2.EarnRequest) -> None:
    caller = keys.authenticate(db, api_key, "Ledger.Earn")
    command, idempotency_key = requests.earn(request, key_required=True)
    earning.earn(db, caller, requests.mutation("Earn", request, idempotency_key), command)


def _redeem(db, api_key: str, request: ledger_pb2.RedeemRequest) -> None:
    caller = keys.authenticate(db, api_key, "Ledger.Redeem")
    command, idempotency_key = requests.redeem(request)
    redemption.redeem(db, caller, requests.mutation("Redeem", request, idempotency_key), command)


def _get_member(db, api_key: str, member_id: str) -> None:
    caller = keys.authenticate(db, api_key, "Ledger.GetMember")
    members.get_member(db, caller, member_id)


def measure(url: str, setup: dict, operation: str, calls: int, warmup: int) -> dict:
    """Per-call wall time, this process's CPU and PostgreSQL's CPU, in ms, over `calls`."""
    ctx = Context.from_setup(setup)
    # the same requests as the scenarios of those names send
    call_once, make = {
        "earn": (_earn, earn_request),
        "redeem": (_redeem, redeem_hot_request),
        "get-member": (_get_member, random_member),
    }[operation]
    arguments = [make(ctx) for _ in range(warmup + calls)]
    db = Database(create_engine_for(url, pool_size=1))
    try:
        for argument in arguments[:warmup]:
            call_once(db, setup["key"], argument)
        database_before = procfs.cpu_seconds(procfs.postgres_pids())
        cpu_before, started = time.process_time(), time.perf_counter()
        for argument in arguments[warmup:]:
            call_once(db, setup["key"], argument)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
        database = procfs.cpu_seconds(procfs.postgres_pids()) - database_before
    finally:
        db.dispose()
    return {
        "operation": operation,
        "calls": calls,
        "wall_ms": 1000 * wall / calls,
        "python_cpu_ms": 1000 * cpu / calls,
        "database_cpu_ms": 1000 * database / calls,
    }


def run(args) -> int:
    url = os.environ.get("LOYALTY_DATABASE_URL")
    if not url:
        print("set LOYALTY_DATABASE_URL to the seeded PostgreSQL database", file=sys.stderr)
        return 2
    if args.calls < 1 or args.warmup < 0:
        print("--calls must be at least 1 and --warmup at least 0", file=sys.stderr)
        return 2
    setup = json.loads(Path(args.setup).read_text())
    found = measure(url, setup, args.operation, args.calls, args.warmup)
    print(
        f"{found['operation']}: {found['calls']} calls one after another, per call: wall {found['wall_ms']:.3f} ms, "
        f"Python CPU {found['python_cpu_ms']:.3f} ms, PostgreSQL CPU {found['database_cpu_ms']:.3f} ms"
    )
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("serial", help="one use case in a loop in-process (no gRPC): Python and PostgreSQL CPU per call")
    s.add_argument("--setup", default="bench/out/setup.json")
    s.add_argument("--operation", choices=OPERATIONS, default="earn")
    s.add_argument("--calls", type=int, default=3000)
    s.add_argument("--warmup", type=int, default=300, help="calls before measuring (prepared statements, caches)")
    s.set_defaults(run=run)

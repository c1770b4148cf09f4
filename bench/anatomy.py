"""`python -m bench anatomy`: what one Earn touches, in the code and in the database.

  LOYALTY_DATABASE_URL=postgresql://... python -m bench anatomy --setup bench/out/setup.json --calls 10000

Runs Earns in-process one after another (as `bench serial --operation earn` does) and prints:
- the code path of one Earn after a warm-up (sys.setprofile): the ledger modules it enters,
  how many per layer (api, service, domain, store), and how many times the call climbs back
  from a lower layer to a higher one;
- per Earn, over --calls Earns: the rows inserted and updated in each table (from
  pg_stat_user_tables) and the WAL bytes written (pg_current_wal_lsn before and after).
Run it on an otherwise idle database: the WAL and the table statistics are the server's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

from bench.scenarios import Context, earn_request
from bench.serial import _earn
from ledger.store.database import Database
from ledger.store.engine import create_engine_for

LAYERS = ("api", "service", "domain", "store")
ORDER = {layer: rank for rank, layer in enumerate(("api", "service", "store", "domain"))}


def _layer(filename: str) -> str | None:
    marker = f"{os.sep}ledger{os.sep}"
    if marker not in filename:
        return None
    parts = filename.split(marker, 1)[1].split(os.sep)
    return parts[0] if parts[0] in LAYERS else None


def code_path(db, key: str, request) -> dict:
    """The ledger files entered by one Earn, by layer, and the climbs from a lower layer back
    into a higher one (store or domain returning into service counts as one)."""
    entered: list[str] = []

    def profile(frame, event, _arg):
        if event == "call":
            entered.append(frame.f_code.co_filename)

    sys.setprofile(profile)
    try:
        _earn(db, key, request)
    finally:
        sys.setprofile(None)
    files = [f for f in entered if _layer(f)]
    modules = sorted({f.split(f"{os.sep}ledger{os.sep}", 1)[1] for f in files})
    by_layer = Counter(_layer(f"{os.sep}ledger{os.sep}{m}") for m in modules)
    climbs, previous = 0, None
    for f in files:
        layer = _layer(f)
        if previous is not None and ORDER[layer] < ORDER[previous]:
            climbs += 1
        previous = layer
    return {"modules": modules, "modules_by_layer": dict(by_layer), "climbs": climbs}


def _table_writes(conn) -> dict[str, tuple[int, int]]:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_user_tables")
        return {name: (inserted, updated) for name, inserted, updated in cur.fetchall()}


def _wal(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        return int(cur.fetchone()[0])


def writes_per_earn(db, url: str, key: str, requests: list) -> dict:
    parsed = make_url(url)
    conn = psycopg2.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, password=parsed.password, dbname=parsed.database
    )
    conn.autocommit = True
    try:
        time.sleep(1.0)  # let earlier statistics reach the shared counters
        tables_before, wal_before = _table_writes(conn), _wal(conn)
        for request in requests:
            _earn(db, key, request)
        wal = _wal(conn) - wal_before
        # A backend hands its table statistics over at most once a second, and when it exits:
        # closing the ledger's connections counts every write.
        db.dispose()
        time.sleep(1.0)
        tables_after = _table_writes(conn)
    finally:
        conn.close()
    calls = len(requests)
    rows = {}
    for name, (inserted, updated) in sorted(tables_after.items()):
        before = tables_before.get(name, (0, 0))
        delta = (inserted - before[0], updated - before[1])
        if delta != (0, 0):
            rows[name] = {"inserted": round(delta[0] / calls, 3), "updated": round(delta[1] / calls, 3)}
    return {"calls": calls, "wal_bytes_per_earn": round(wal / calls), "rows_per_earn": rows}


def run(args) -> int:
    url = os.environ.get("LOYALTY_DATABASE_URL")
    if not url or not url.startswith("postgres"):
        print("set LOYALTY_DATABASE_URL to the seeded PostgreSQL database", file=sys.stderr)
        return 2
    if args.calls < 1:
        print("--calls must be at least 1", file=sys.stderr)
        return 2
    setup = json.loads(Path(args.setup).read_text())
    ctx = Context.from_setup(setup)
    db = Database(create_engine_for(url, pool_size=1))
    try:
        for _ in range(50):  # warm-up: prepared statements, caches
            _earn(db, setup["key"], earn_request(ctx))
        path = code_path(db, setup["key"], earn_request(ctx))
        writes = writes_per_earn(db, url, setup["key"], [earn_request(ctx) for _ in range(args.calls)])
    finally:
        db.dispose()
    print(json.dumps({"code_path": path, **writes}, indent=2))
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("anatomy", help="one Earn's code path, and rows and WAL bytes written per Earn")
    s.add_argument("--setup", default="bench/out/setup.json")
    s.add_argument("--calls", type=int, default=10_000)
    s.set_defaults(run=run)

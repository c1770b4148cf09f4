"""`python -m bench segments`: how long `loyalty-ledger segments refresh` takes on a big program.

Seed a program whose members each have orders (EARN transactions with qualifying spend, dated
over the last 500 days), then time the refresh of that program: every member's RFM figures
from the ledger, the quintile cut points, and every segment's members with their events, all
in set-based SQL. The peak memory of this process is printed before and after each round: it
stays flat, since no member's row comes through Python.

  createdb -h 127.0.0.1 -U postgres bench_segments
  export LOYALTY_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_segments
  python -m bench seed --members 1000000 --entries 10 --orders --out bench/out/segments-setup.json
  python -m bench segments --setup bench/out/segments-setup.json

The first round puts every member in their segments (an event each); the later ones find
only what changed (nothing, right after), which is the daily steady state.
"""

from __future__ import annotations

import json

from bench.job_rounds import run_rounds
from ledger.service.segments import refresh_program


def run(args) -> int:
    with open(args.setup) as f:
        program_id = json.load(f)["program_id"]

    def refresh(db) -> dict:
        report = refresh_program(db, program_id)
        return {"members": report.members, "entered": report.entered, "exited": report.exited}

    return run_rounds(args.rounds, refresh, pool_size=2)


def add_parser(sub) -> None:
    parser = sub.add_parser("segments", help="time the segments refresh of a seeded program (LOYALTY_DATABASE_URL)")
    parser.add_argument("--setup", default="bench/out/setup.json", help="the seed's setup file (its program)")
    parser.add_argument("--rounds", type=int, default=2, help="refreshes one after another")
    parser.set_defaults(run=run)

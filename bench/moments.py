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

from bench.job_rounds import run_rounds
from ledger.service.moments import tell_due_moments


def run(args) -> int:
    return run_rounds(args.rounds, lambda db: {"told": dict(tell_due_moments(db).told)})


def add_parser(sub) -> None:
    parser = sub.add_parser("moments", help="time one run of the post-purchase moments (LOYALTY_DATABASE_URL)")
    parser.add_argument("--rounds", type=int, default=2, help="runs one after another (the later ones find nothing new)")
    parser.set_defaults(run=run)

"""`python -m bench soak`: a fixed-rate mixed load held for minutes, watching for drift.

  python -m bench soak --target 127.0.0.1:50051 --setup bench/out/setup.json \
      --minutes 10 --rate 200 --server-pid $(pgrep -f 'loyalty-ledger serve' | head -1)

Open loop: operation i is due at start + i/rate whatever the server does (a slow server
does not slow the load down); its latency is measured from when it was due, so queueing
in the load generator counts against the server (no coordinated omission). The mix is
earn / get-member / redeem (default 50/30/20) over the setup's members; a redeem refused
for lack of points (FAILED_PRECONDITION) is a normal business answer.

Every --interval seconds (default 10) one line: that interval's calls, achieved rate,
p50 / p99 latency, errors (anything but OK and FAILED_PRECONDITION) and the server's
resident memory (VmRSS of --server-pid and its child processes, from /proc). At the end a
verdict: FLAT when the last interval's p99 is within --max-p99-growth (2x) of the first
interval's, RSS grew less than --max-rss-growth (20 %), errors stayed under
--max-error-rate (1 %) and the achieved rate kept within 10 % of --rate; else DRIFT
(exit code 1). A --warmup period (default 10 s) runs the load before the first interval.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

from bench import procfs
from bench.scenarios import Context, random_member, random_order
from loyalty.v1 import ledger_pb2, ledger_pb2_grpc

BUSINESS_ANSWERS = {"OK", "FAILED_PRECONDITION"}


@dataclass
class Interval:
    index: int
    seconds: float
    calls: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    rss_kb: int | None
    dropped: int = 0


@dataclass
class Verdict:
    flat: bool
    reasons: list[str] = field(default_factory=list)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def read_rss_kb(pid: int) -> int | None:
    """VmRSS of pid plus its descendants (a multi-process server), in kB; None if it is gone."""
    tree = procfs.process_tree(pid)
    return None if tree is None else procfs.rss_kb(tree)


def judge(
    intervals: list[Interval],
    *,
    rate: float,
    max_p99_growth: float = 2.0,
    max_rss_growth: float = 0.20,
    max_error_rate: float = 0.01,
    min_rate_ratio: float = 0.90,
) -> Verdict:
    if len(intervals) < 2:
        return Verdict(False, ["fewer than two intervals: nothing to compare"])
    first, last = intervals[0], intervals[-1]
    reasons = []
    if first.p99_ms > 0 and last.p99_ms > max_p99_growth * first.p99_ms:
        reasons.append(f"p99 grew from {first.p99_ms:.1f} ms to {last.p99_ms:.1f} ms (> {max_p99_growth:g}x)")
    if first.rss_kb and last.rss_kb is not None and last.rss_kb > (1 + max_rss_growth) * first.rss_kb:
        growth = last.rss_kb / first.rss_kb - 1
        reasons.append(f"server RSS grew {growth:.0%} ({first.rss_kb} -> {last.rss_kb} kB; limit {max_rss_growth:.0%})")
    if first.rss_kb is not None and last.rss_kb is None:
        reasons.append("the server process is gone")
    calls = sum(i.calls for i in intervals)
    errors = sum(sum(i.errors.values()) for i in intervals)
    if calls == 0 or errors / calls > max_error_rate:
        reasons.append(f"{errors} of {calls} calls failed (limit {max_error_rate:.0%})")
    slow = [i.index for i in intervals if i.rate < min_rate_ratio * rate]
    if slow:
        reasons.append(f"achieved rate below {min_rate_ratio:.0%} of {rate:g}/s in intervals {slow}")
    return Verdict(not reasons, reasons)


class Soak:
    def __init__(self, target: str, setup: dict, rate: float, mix: tuple[float, float, float], max_in_flight: int):
        self.target = target
        self.ctx = Context.from_setup(setup)
        self.rate = rate
        self.mix = mix
        self.max_in_flight = max_in_flight
        self.latencies: list[float] = []
        self.codes: dict[str, int] = {}
        self.dropped = 0
        self.in_flight = 0

    async def _one(self, stub: ledger_pb2_grpc.LedgerStub, due: float) -> None:
        roll = random.random()
        try:
            if roll < self.mix[0]:
                request = ledger_pb2.EarnRequest(
                    member_id=random_member(self.ctx), idempotency_key=f"soak-{secrets.token_hex(12)}", order=random_order()
                )
                await stub.Earn(request, metadata=self.ctx.metadata, timeout=10)
            elif roll < self.mix[0] + self.mix[1]:
                await stub.GetMember(ledger_pb2.GetMemberRequest(member_id=random_member(self.ctx)), metadata=self.ctx.metadata, timeout=10)
            else:
                request = ledger_pb2.RedeemRequest(
                    member_id=random_member(self.ctx), idempotency_key=f"soak-{secrets.token_hex(12)}", points=random.randint(1, 5)
                )
                await stub.Redeem(request, metadata=self.ctx.metadata, timeout=10)
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        finally:
            self.in_flight -= 1
        self.latencies.append((time.perf_counter() - due) * 1000)
        self.codes[code] = self.codes.get(code, 0) + 1

    def take(self) -> tuple[list[float], dict[str, int], int]:
        taken = (self.latencies, self.codes, self.dropped)
        self.latencies, self.codes, self.dropped = [], {}, 0
        return taken

    async def run(self, seconds: float, on_tick, interval: float, warmup: float) -> None:
        channels = [grpc.aio.insecure_channel(self.target) for _ in range(4)]
        stubs = [ledger_pb2_grpc.LedgerStub(c) for c in channels]
        tasks: set[asyncio.Task] = set()
        start = time.perf_counter()
        measure_from = start + warmup
        end = measure_from + seconds
        next_tick = measure_from + interval
        measuring = warmup <= 0
        i = 0
        try:
            while True:
                due = start + i / self.rate
                now = time.perf_counter()
                if not measuring and now >= measure_from:
                    self.take()  # drop the warm-up's numbers
                    measuring = True
                if now >= next_tick:
                    on_tick(*self.take(), next_tick - interval, next_tick)
                    next_tick += interval
                if due >= end:
                    break
                if due > now:
                    await asyncio.sleep(min(due - now, max(0.0, next_tick - now)))
                    continue
                i += 1
                if self.in_flight >= self.max_in_flight:
                    self.dropped += 1  # the server is not keeping up: count, do not queue without bound
                    continue
                self.in_flight += 1
                task = asyncio.create_task(self._one(stubs[i % len(stubs)], due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=15)
            if time.perf_counter() >= next_tick - 1e-3 or self.latencies:
                on_tick(*self.take(), next_tick - interval, min(time.perf_counter(), next_tick))
        finally:
            for task in tasks:
                task.cancel()
            for channel in channels:
                await channel.close()


def run(args) -> int:
    setup = json.loads(Path(args.setup).read_text())
    mix = tuple(float(x) for x in args.mix.split("/"))
    total = sum(mix)
    mix = tuple(x / total for x in mix)
    soak = Soak(args.target, setup, args.rate, mix, args.max_in_flight)
    intervals: list[Interval] = []
    print(
        f"soak: {args.rate:g} ops/s for {args.minutes:g} min against {args.target} "
        f"(earn/get/redeem {mix[0]:.0%}/{mix[1]:.0%}/{mix[2]:.0%}), {args.interval:g}s intervals"
        + (f", server pid {args.server_pid}" if args.server_pid else ""),
        flush=True,
    )
    print(f"{'#':>3} {'t(s)':>6} {'calls':>6} {'ops/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}  errors", flush=True)

    def on_tick(latencies, codes, dropped, began, ended) -> None:
        seconds = max(1e-9, ended - began)
        errors = {c: n for c, n in codes.items() if c not in BUSINESS_ANSWERS}
        if dropped:
            errors["DROPPED_OVERLOAD"] = dropped
        rss = read_rss_kb(args.server_pid) if args.server_pid else None
        interval = Interval(
            len(intervals) + 1,
            round(seconds, 2),
            len(latencies),
            len(latencies) / seconds,
            percentile(latencies, 50),
            percentile(latencies, 99),
            errors,
            rss,
            dropped,
        )
        if interval.seconds < 0.5 * args.interval:
            return  # a sliver at the very end: not a comparable interval
        intervals.append(interval)
        elapsed = sum(i.seconds for i in intervals)
        rss_text = f"{rss / 1024:8.1f}" if rss is not None else f"{'-':>8}"
        print(
            f"{interval.index:>3} {elapsed:>6.0f} {interval.calls:>6} {interval.rate:>7.1f} "
            f"{interval.p50_ms:>8.2f} {interval.p99_ms:>8.2f} {rss_text}  {errors or ''}",
            flush=True,
        )

    asyncio.run(soak.run(args.minutes * 60, on_tick, args.interval, args.warmup))
    verdict = judge(
        intervals,
        rate=args.rate,
        max_p99_growth=args.max_p99_growth,
        max_rss_growth=args.max_rss_growth,
        max_error_rate=args.max_error_rate,
    )
    if verdict.flat:
        first, last = intervals[0], intervals[-1]
        rss = (
            f", RSS {first.rss_kb / 1024:.1f} -> {last.rss_kb / 1024:.1f} MiB"
            if first.rss_kb and last.rss_kb
            else " (RSS not sampled: pass --server-pid)"
        )
        print(f"verdict: FLAT: p99 {first.p99_ms:.1f} -> {last.p99_ms:.1f} ms{rss}", flush=True)
    else:
        print("verdict: DRIFT: " + "; ".join(verdict.reasons), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"args": {k: v for k, v in vars(args).items() if k != "run"}, "intervals": [asdict(i) for i in intervals], "flat": verdict.flat, "reasons": verdict.reasons}, indent=2)
        )
    return 0 if verdict.flat else 1


def add_parser(sub) -> None:
    s = sub.add_parser("soak", help="fixed-rate mixed load for minutes; reports latency and server memory drift")
    s.add_argument("--target", default="127.0.0.1:50051")
    s.add_argument("--setup", default="bench/out/setup.json")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--rate", type=float, default=100.0, help="operations per second (open loop)")
    s.add_argument("--server-pid", type=int, default=0, help="sample this process's VmRSS (and its children's)")
    s.add_argument("--interval", type=float, default=10.0, help="seconds per sample line (default 10)")
    s.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the first interval")
    s.add_argument("--mix", default="50/30/20", help="earn/get-member/redeem weights (default 50/30/20)")
    s.add_argument("--max-in-flight", type=int, default=1000, help="calls beyond this are dropped and counted")
    s.add_argument("--max-p99-growth", type=float, default=2.0)
    s.add_argument("--max-rss-growth", type=float, default=0.20)
    s.add_argument("--max-error-rate", type=float, default=0.01)
    s.add_argument("--json", help="also write the intervals and the verdict as JSON")
    s.set_defaults(run=run)

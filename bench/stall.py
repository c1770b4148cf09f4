"""`python -m bench stall`: how Health and the till fare while the server is pressed.

Two pressures, each held for --duration seconds while a probe in a process of its own
sends a Health/Check every 50 ms (deadline 1 s) and an Earn on a random member every
0.5 s (deadline 5 s):

- `--unfinished N`: N calls that send their headers and never a request message (a
  client-streaming call on a unary method whose request iterator never yields), spread
  over --connections channels, with the key (`--with-key`) or without one. A server that
  gives each such call a worker thread freezes.
- `--hot-earns N`: N clients earning on one member (the hot member) as fast as they can.

It prints the probe's figures: Health answered SERVING within 1 s out of sent, p50/p99/max
latency and any refusals by code, Earns that succeeded; and what became of the
unfinished calls (cut off by the server, with which code, or still open at the end).

  python -m bench stall --target 127.0.0.1:50061 --unfinished 200 --connections 20 --duration 10
  python -m bench stall --target 127.0.0.1:50061 --hot-earns 160 --duration 15
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import scenarios
from bench.scenarios import Context
from loyalty.v1 import ledger_pb2, ledger_pb2_grpc

HEALTH_EVERY_S = 0.05
HEALTH_DEADLINE_S = 1.0
EARN_EVERY_S = 0.5
EARN_DEADLINE_S = 5.0
UNFINISHED_METHOD = "/loyalty.v1.Ledger/GetMember"
# Each channel its own TCP connection (channels to one target share one by default).
OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)


@dataclass
class ProbeResult:
    health_ms: list[float] = field(default_factory=list)  # latency of each SERVING answer
    health_sent: int = 0
    health_failures: Counter = field(default_factory=Counter)  # code (or NOT_SERVING) -> count
    earn_ok: int = 0
    earn_failures: Counter = field(default_factory=Counter)

    @property
    def health_within_deadline(self) -> int:
        return len(self.health_ms)

    def percentile(self, q: float) -> float:
        if not self.health_ms:
            return float("nan")
        ordered = sorted(self.health_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict:
        return {
            "health_sent": self.health_sent,
            "health_serving_within_1s": self.health_within_deadline,
            "health_p50_ms": round(self.percentile(0.50), 1),
            "health_p99_ms": round(self.percentile(0.99), 1),
            "health_max_ms": round(max(self.health_ms), 1) if self.health_ms else None,
            "health_median_ms": round(statistics.median(self.health_ms), 1) if self.health_ms else None,
            "health_failures": dict(self.health_failures),
            "earn_ok": self.earn_ok,
            "earn_failures": dict(self.earn_failures),
        }


async def _probe(target: str, ctx: Context, duration: float) -> ProbeResult:
    result = ProbeResult()
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        ledger = ledger_pb2_grpc.LedgerStub(channel)
        await channel.channel_ready()
        deadline = time.perf_counter() + duration

        async def check() -> None:
            result.health_sent += 1
            started = time.perf_counter()
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_DEADLINE_S)
            except grpc.aio.AioRpcError as error:
                result.health_failures[error.code().name] += 1
                return
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                result.health_ms.append((time.perf_counter() - started) * 1000)
            else:
                result.health_failures[health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)] += 1

        async def earn() -> None:
            try:
                await ledger.Earn(scenarios.earn_request(ctx), metadata=ctx.metadata, timeout=EARN_DEADLINE_S)
                result.earn_ok += 1
            except grpc.aio.AioRpcError as error:
                result.earn_failures[error.code().name] += 1

        async def every(interval: float, call) -> None:
            pending = set()
            while time.perf_counter() < deadline:
                pending.add(asyncio.ensure_future(call()))
                await asyncio.sleep(interval)
            await asyncio.gather(*pending)

        await asyncio.gather(every(HEALTH_EVERY_S, check), every(EARN_EVERY_S, earn))
    return result


def _probe_process(target: str, ctx: Context, duration: float, queue) -> None:
    queue.put(asyncio.run(_probe(target, ctx, duration)))


def start_probe(target: str, ctx: Context, duration: float):
    """The probe in a process of its own, so the pressure's client work does not delay it.
    Returns a function that waits for and returns its ProbeResult."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_probe_process, args=(target, ctx, duration, queue), daemon=True)
    process.start()

    def wait() -> ProbeResult:
        result = queue.get(timeout=duration + 60)
        process.join(timeout=30)
        return result

    return wait


async def _hold_unfinished(target: str, calls: int, connections: int, metadata, duration: float) -> Counter:
    """Opens `calls` calls that never send their request; returns how each ended by the time
    `duration` is up: a status code name the server answered with, or STILL_OPEN."""
    release = asyncio.Event()

    async def never_sends():
        await release.wait()
        if False:  # an async generator that yields nothing
            yield b""

    channels = [grpc.aio.insecure_channel(target, options=OWN_CONNECTION) for _ in range(connections)]
    outcomes: Counter = Counter()
    try:
        calls_open = [
            channels[i % connections].stream_unary(UNFINISHED_METHOD)(never_sends(), metadata=metadata)
            for i in range(calls)
        ]
        finished = asyncio.gather(*(_outcome(call) for call in calls_open))
        await asyncio.sleep(duration)
        for call in calls_open:
            if not call.done():
                outcomes["STILL_OPEN"] += 1
                call.cancel()
            else:
                outcomes[(await call.code()).name] += 1
        release.set()
        await finished
    finally:
        for channel in channels:
            await channel.close()
    return outcomes


async def _outcome(call) -> None:
    try:
        await call
    except (grpc.aio.AioRpcError, asyncio.CancelledError):
        pass


async def _hot_earns(target: str, ctx: Context, clients: int, duration: float) -> Counter:
    """`clients` loops earning on the hot member until `duration` is up; codes by count."""
    codes: Counter = Counter()
    channels = [grpc.aio.insecure_channel(target, options=OWN_CONNECTION) for _ in range(max(1, clients // 16))]
    deadline = time.perf_counter() + duration

    async def loop(index: int) -> None:
        stub = ledger_pb2_grpc.LedgerStub(channels[index % len(channels)])
        while time.perf_counter() < deadline:
            request = ledger_pb2.EarnRequest(
                member_id=ctx.hot_member, idempotency_key=secrets.token_hex(12), order=scenarios.random_order()
            )
            try:
                await stub.Earn(request, metadata=ctx.metadata, timeout=30)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                codes[error.code().name] += 1

    try:
        await asyncio.gather(*(loop(i) for i in range(clients)))
    finally:
        for channel in channels:
            await channel.close()
    return codes


def press(
    target: str,
    ctx: Context,
    *,
    duration: float,
    unfinished: int = 0,
    connections: int = 20,
    with_key: bool = False,
    hot_earns: int = 0,
) -> tuple[ProbeResult, Counter]:
    """Holds the chosen pressure for `duration` seconds while probing; returns the probe's
    result and the pressure's outcomes (codes by count)."""
    wait_probe = None
    outcomes: Counter = Counter()

    async def pressure() -> Counter:
        nonlocal wait_probe
        if unfinished:
            task = asyncio.ensure_future(
                _hold_unfinished(target, unfinished, connections, ctx.metadata if with_key else (), duration)
            )
        else:
            task = asyncio.ensure_future(_hot_earns(target, ctx, hot_earns, duration))
        await asyncio.sleep(0.5)  # the pressure is on before the probe starts
        wait_probe = start_probe(target, ctx, duration - 1.0)
        return await task

    outcomes = asyncio.run(pressure())
    return wait_probe(), outcomes


def add_parser(sub) -> None:
    parser = sub.add_parser("stall", help="Health and an Earn probe while unfinished calls or hot earns press the server")
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--setup", default="bench/out/setup.json")
    parser.add_argument("--duration", type=float, default=10.0)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--unfinished", type=int, help="calls that never send their request message")
    mode.add_argument("--hot-earns", type=int, help="clients earning on the hot member at once")
    parser.add_argument("--connections", type=int, default=20, help="channels the unfinished calls spread over")
    parser.add_argument("--with-key", action="store_true", help="the unfinished calls carry the setup's key")
    parser.set_defaults(run=run)


def run(args) -> int:
    ctx = Context.from_setup(json.loads(Path(args.setup).read_text()))
    probe, outcomes = press(
        args.target,
        ctx,
        duration=args.duration,
        unfinished=args.unfinished or 0,
        connections=args.connections,
        with_key=args.with_key,
        hot_earns=args.hot_earns or 0,
    )
    print(json.dumps({"probe": probe.summary(), "pressure": dict(outcomes)}, indent=2))
    return 0

"""`python -m bench watch`: WatchEvents followers and the earn load together (issue 18's target:
64 watchers, every one sees every event once after de-duplication, in commit order, within
1 s at p99 of its commit).

Each round runs the earn load (`bench run`'s: --concurrency clients over --processes load
processes, a new order for a random member each call) twice, first alone and then with
--watchers WatchEvents streams open, each on a connection of its own, all in one process
of their own. The load side notes when each Earn returned (wall clock) and its
transaction_id. After the load, the program's events since the round began are read back
with ListEvents (the ledger's account of what was committed), the watchers are given until
every one has reached the last of them (or --catch-up seconds), and for each watcher:

- exactly once: its events, de-duplicated by event_id, are exactly ListEvents' events, in
  the same (commit) order: nothing missing, nothing out of order, nothing it was never
  meant to see; duplicates (at-least-once delivery) are counted, not failed;
- delay: for each Earn of the load, the first receipt of its event (wall clock when the
  message arrived) less the time its Earn call returned on the load side. The commit came
  before that return, so this is the delay from commit to receipt less the response's way
  back (a few ms); and an upper bound: receipt less the event's create_time (set when the
  Earn's unit of work began, before its commit).

It prints, per round and in total: Earn ok/s and latency without and with the watchers and
their ratio, with --server-pid the server's, PostgreSQL's and the watcher process's CPU per
Earn; then the exactly-once verdict and the delay percentiles over every (watcher, Earn)
pair, and the worst watcher's p99. It exits 1 when a watcher missed an event or saw one out
of order.

  python -m bench watch --target 127.0.0.1:50061 --setup bench/out/setup.json --watchers 64 \\
      --concurrency 64 --processes 2 --duration 15 --rounds 2 --server-pid PID

The watchers read with an `events` key: the setup's (`bench seed` writes one), or one made
for the setup's program through LOYALTY_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench import runner, scenarios
from bench.scenarios import Context
from bench.stats import Sample
from ledger.domain.events import event_id, position_of
from loyalty.v1 import events_pb2, events_pb2_grpc, ledger_pb2_grpc

TARGET_P99_S = 1.0
# Each watcher on a TCP connection of its own, as separate consumers would be (channels to
# one target share one connection by default).
OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)
LIST_PAGE = 500


# ---------------------------------------------------------------------------- the earn load


async def _earn_worker(target: str, ctx: Context, concurrency: int, duration: float) -> tuple[Sample, dict]:
    """`bench run`'s earn loop, noting when each successful Earn returned (wall clock)."""
    sample, returned = Sample(), {}
    channels = [runner.open_channel(target) for _ in range(max(1, concurrency // 16))]
    deadline = time.perf_counter() + duration

    async def loop(index: int) -> None:
        stub = ledger_pb2_grpc.LedgerStub(channels[index % len(channels)])
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                answer = await stub.Earn(scenarios.earn_request(ctx), metadata=ctx.metadata, timeout=10)
                returned[answer.transaction.transaction_id] = time.time()
                code = "OK"
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            sample.latencies_ms.append((time.perf_counter() - started) * 1000)
            sample.codes[code] += 1

    started, cpu_before = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    sample.duration_s = time.perf_counter() - started
    sample.load_cpu_s = time.process_time() - cpu_before
    for channel in channels:
        await channel.close()
    return sample, returned


def _earn_process(target, ctx, concurrency, duration, queue) -> None:
    queue.put(asyncio.run(_earn_worker(target, ctx, concurrency, duration)))


def earn_load(target: str, ctx: Context, concurrency: int, duration: float, processes: int, server_pid):
    """The load from `processes` processes: (Sample with the server's CPU, transaction_id -> returned at)."""
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    share = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    workers = [
        spawn.Process(target=_earn_process, args=(target, ctx, n, duration, results), daemon=True) for n in share if n
    ]
    cpu_before = runner._server_and_database_cpu(server_pid) if server_pid else None
    for worker in workers:
        worker.start()
    total, returned = Sample(), {}
    for _ in workers:
        sample, times = results.get(timeout=duration + 120)
        total.merge(sample)
        returned.update(times)
    for worker in workers:
        worker.join(timeout=30)
    if cpu_before is not None:
        server, database = runner._server_and_database_cpu(server_pid)
        total.server_cpu_s, total.database_cpu_s = server - cpu_before[0], database - cpu_before[1]
    return total, returned


# ------------------------------------------------------------------------------ the watchers


@dataclass
class Watched:
    """What the watcher process saw: per watcher, each event's position as received (with any
    duplicates) and the wall clock when its message arrived."""

    positions: list[array] = field(default_factory=list)
    received_at: list[array] = field(default_factory=list)
    reconnects: list[int] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    cpu_s: float = 0.0  # the watcher process's CPU while the load ran
    caught_up: bool = False


async def _watch(target: str, key: str, count: int, after_event_id: str, control, results) -> None:
    metadata = (("authorization", f"Bearer {key}"),)
    channels = [grpc.aio.insecure_channel(target, options=OWN_CONNECTION) for _ in range(count)]
    watched = Watched([array("q") for _ in range(count)], [array("d") for _ in range(count)], [0] * count, Counter())
    last = [position_of(after_event_id) or 0 for _ in range(count)]

    async def follow(index: int) -> None:
        stub = events_pb2_grpc.EventsStub(channels[index])
        cursor = after_event_id
        while True:
            try:
                call = stub.WatchEvents(events_pb2.WatchEventsRequest(after_event_id=cursor), metadata=metadata)
                async for message in call:
                    now = time.time()
                    for event in message.events:
                        position = position_of(event.event_id) or -1
                        watched.positions[index].append(position)
                        watched.received_at[index].append(now)
                        last[index] = max(last[index], position)
                        cursor = event.event_id
            except grpc.aio.AioRpcError as error:  # resume from the last event received, as a consumer does
                watched.errors[error.code().name] += 1
            watched.reconnects[index] += 1
            await asyncio.sleep(0.1)

    await asyncio.gather(*(channel.channel_ready() for channel in channels))
    tasks = [asyncio.create_task(follow(i)) for i in range(count)]
    await asyncio.sleep(1.0)  # the streams open and reach the head before the load starts
    results.put("ready")
    loop = asyncio.get_running_loop()
    _go = await loop.run_in_executor(None, control.get)
    cpu_before = time.process_time()
    final, catch_up_s = await loop.run_in_executor(None, control.get)  # the load is over
    watched.cpu_s = time.process_time() - cpu_before
    deadline = time.monotonic() + catch_up_s
    while time.monotonic() < deadline and min(last) < final:
        await asyncio.sleep(0.05)
    watched.caught_up = min(last) >= final
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    results.put(watched)


def _watch_process(target, key, count, after_event_id, control, results) -> None:
    asyncio.run(_watch(target, key, count, after_event_id, control, results))


# --------------------------------------------------------------------------- the ledger's account


@dataclass(frozen=True)
class Listed:
    position: int
    transaction_id: str
    created_at: float  # seconds since the epoch


def list_events(target: str, key: str, after_event_id: str) -> list[Listed]:
    """Every event of the program after the cursor, through ListEvents."""
    metadata = (("authorization", f"Bearer {key}"),)
    found: list[Listed] = []
    with grpc.insecure_channel(target) as channel:
        stub = events_pb2_grpc.EventsStub(channel)
        token = ""
        while True:
            page = stub.ListEvents(
                events_pb2.ListEventsRequest(after_event_id=after_event_id, page_token=token, page_size=LIST_PAGE),
                metadata=metadata,
                timeout=30,
            )
            found += [
                Listed(position_of(e.event_id) or -1, e.transaction_id, e.create_time.ToNanoseconds() / 1e9)
                for e in page.events
            ]
            token = page.next_page_token
            if not token:
                return found


def event_id_after(listed: list[Listed], before: str) -> str:
    """The id of the last listed event (`before` when none was)."""
    return event_id(listed[-1].position) if listed else before


# ------------------------------------------------------------------------------------- a round


@dataclass
class Round:
    alone: Sample
    watched: Sample
    watcher_cpu_s: float
    events: int
    complete: int  # watchers that saw every event once (after de-duplication), in order
    duplicates: int
    missing: int
    out_of_order: int
    unexpected: int
    reconnects: int
    caught_up: bool
    delays_s: list[float]  # first receipt - Earn returned, every (watcher, Earn)
    delays_from_create_s: list[float]  # first receipt - the event's create_time
    worst_watcher_p99_s: float


def one_round(args, ctx: Context, key: str, cursor: str) -> tuple[Round, str]:
    alone, _ = earn_load(args.target, ctx, args.concurrency, args.duration, args.processes, args.server_pid)
    # the events of the load alone: the watchers start after them
    cursor = event_id_after(list_events(args.target, key, cursor), cursor)
    spawn = multiprocessing.get_context("spawn")
    control, results = spawn.Queue(), spawn.Queue()
    watchers = spawn.Process(
        target=_watch_process, args=(args.target, key, args.watchers, cursor, control, results), daemon=True
    )
    watchers.start()
    try:
        if results.get(timeout=120) != "ready":
            raise SystemExit("the watchers did not start")
        control.put("go")
        watched_load, returned = earn_load(
            args.target, ctx, args.concurrency, args.duration, args.processes, args.server_pid
        )
        listed = list_events(args.target, key, cursor)
        final = listed[-1].position if listed else (position_of(cursor) or 0)
        control.put((final, args.catch_up))
        seen: Watched = results.get(timeout=args.catch_up + 120)
    finally:
        watchers.join(timeout=30)
        if watchers.is_alive():
            watchers.kill()
    return judge(alone, watched_load, returned, listed, seen), event_id_after(listed, cursor)


def judge(alone: Sample, load: Sample, returned: dict, listed: list[Listed], seen: Watched) -> Round:
    expected = [e.position for e in listed]
    expected_set = set(expected)
    by_position = {e.position: e for e in listed}
    complete = duplicates = missing = out_of_order = unexpected = 0
    delays: list[float] = []
    from_create: list[float] = []
    worst_p99 = 0.0
    for positions, received_at in zip(seen.positions, seen.received_at):
        first: dict[int, float] = {}
        order: list[int] = []
        for position, when in zip(positions, received_at):
            if position in first:
                duplicates += 1
                continue
            first[position] = when
            order.append(position)
        unexpected += sum(1 for p in order if p not in expected_set)
        missing += sum(1 for p in expected if p not in first)
        out_of_order += sum(1 for a, b in zip(order, order[1:]) if b < a)
        if order == expected:
            complete += 1
        mine = []
        for position, when in first.items():
            event = by_position.get(position)
            if event is None:
                continue
            if event.transaction_id in returned:
                mine.append(when - returned[event.transaction_id])
                from_create.append(when - event.created_at)
        delays += mine
        if mine:
            worst_p99 = max(worst_p99, percentile(mine, 99))
    return Round(
        alone, load, seen.cpu_s, len(expected), complete, duplicates, missing, out_of_order, unexpected,
        sum(seen.reconnects), seen.caught_up, delays, from_create, worst_p99,
    )  # fmt: skip


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# -------------------------------------------------------------------------------------- report

HEADER = "| round | watchers | Earn ok | ok/s | x alone | p50 ms | p99 ms | errors |"
CPU_HEADER = " server CPU ms/Earn | database CPU ms/Earn | watchers CPU ms/Earn |"


def _row(name: str, watchers: int, sample: Sample, alone: Sample, watcher_cpu_s: float | None) -> str:
    errors = ", ".join(f"{code}: {n}" for code, n in sorted(sample.errors().items())) or "none"
    ratio = sample.throughput / alone.throughput if alone.throughput else 0.0
    line = (
        f"| {name} | {watchers} | {sample.ok} | {sample.throughput:.0f} | {ratio:.2f} | {sample.percentile(50):.1f} | "
        f"{sample.percentile(99):.1f} | {errors} |"
    )
    cpu = sample.cpu_ms_per_call()
    if cpu is None:
        return line
    watchers_ms = "-" if watcher_cpu_s is None else f"{1000 * watcher_cpu_s / max(1, sample.calls):.2f}"
    return line + f" {cpu[0]:.2f} | {cpu[1]:.2f} | {watchers_ms} |"


def report(rounds: list[Round], watchers: int) -> tuple[list[str], bool]:
    measured_cpu = rounds[0].alone.server_cpu_s is not None
    lines = [
        HEADER + (CPU_HEADER if measured_cpu else ""),
        "|---" * (HEADER + (CPU_HEADER if measured_cpu else "")).count(" |") + "|",
    ]
    alone_total, watched_total = Sample(), Sample()
    alone_total.server_cpu_s = watched_total.server_cpu_s = 0.0 if measured_cpu else None
    alone_total.database_cpu_s = watched_total.database_cpu_s = 0.0 if measured_cpu else None
    watcher_cpu = 0.0
    for number, r in enumerate(rounds, 1):
        lines.append(_row(str(number), 0, r.alone, r.alone, None))
        lines.append(_row(str(number), watchers, r.watched, r.alone, r.watcher_cpu_s))
        for total, sample in ((alone_total, r.alone), (watched_total, r.watched)):
            total.latencies_ms += sample.latencies_ms
            total.codes.update(sample.codes)
            total.duration_s += sample.duration_s
            total.load_cpu_s += sample.load_cpu_s
            if measured_cpu:
                total.server_cpu_s = (total.server_cpu_s or 0.0) + (sample.server_cpu_s or 0.0)
                total.database_cpu_s = (total.database_cpu_s or 0.0) + (sample.database_cpu_s or 0.0)
        watcher_cpu += r.watcher_cpu_s
    if len(rounds) > 1:
        lines.append(_row("all", 0, alone_total, alone_total, None))
        lines.append(_row("all", watchers, watched_total, alone_total, watcher_cpu))
    ratio = watched_total.throughput / alone_total.throughput if alone_total.throughput else 0.0
    delays = [d for r in rounds for d in r.delays_s]
    from_create = [d for r in rounds for d in r.delays_from_create_s]
    complete = sum(r.complete for r in rounds)
    exact = all(r.complete == watchers and r.unexpected == 0 for r in rounds)
    p99 = percentile(delays, 99)
    lines += [
        "",
        f"Earn ok/s with {watchers} watchers / without: {ratio:.2f}",
        f"exactly once, in commit order: {complete} of {watchers * len(rounds)} watcher-rounds saw every event of "
        f"ListEvents once after de-duplication, in order ({sum(r.events for r in rounds)} events; "
        f"missing {sum(r.missing for r in rounds)}, out of order {sum(r.out_of_order for r in rounds)}, "
        f"not in ListEvents {sum(r.unexpected for r in rounds)}, duplicates {sum(r.duplicates for r in rounds)}, "
        f"streams reopened {sum(r.reconnects for r in rounds)}, caught up {all(r.caught_up for r in rounds)})",
        f"delay, Earn returned -> watcher received ({len(delays)} watcher x Earn pairs): "
        f"p50 {1000 * percentile(delays, 50):.0f} ms, p99 {1000 * p99:.0f} ms, max {1000 * max(delays, default=0):.0f} ms; "
        f"worst watcher's p99 {1000 * max(r.worst_watcher_p99_s for r in rounds):.0f} ms",
        f"delay, event create_time -> watcher received: p50 {1000 * percentile(from_create, 50):.0f} ms, "
        f"p99 {1000 * percentile(from_create, 99):.0f} ms, max {1000 * max(from_create, default=0):.0f} ms",
        f"target (every watcher every event once, in order, p99 <= {TARGET_P99_S:.0f} s): "
        + ("MET" if exact and p99 <= TARGET_P99_S and delays else "NOT MET"),
    ]
    return lines, exact


# ------------------------------------------------------------------------------------- command


def events_key(setup: dict) -> str:
    """The setup's events key, or a new one for its program (LOYALTY_DATABASE_URL)."""
    if setup.get("events_key"):
        return setup["events_key"]
    url = os.environ.get("LOYALTY_DATABASE_URL")
    if not url:
        raise SystemExit("the setup has no events key: pass --events-key, or set LOYALTY_DATABASE_URL to make one")
    from ledger.domain.kinds import Role
    from ledger.service import keys
    from ledger.store.database import Database
    from ledger.store.engine import create_engine_for

    engine = create_engine_for(url, pool_size=1)
    try:
        return keys.create_key(Database(engine), setup["program_id"], Role.EVENTS)
    finally:
        engine.dispose()


def cmd_watch(args) -> int:
    setup = json.loads(Path(args.setup).read_text())
    ctx = Context.from_setup(setup)
    key = args.events_key or events_key(setup)
    cursor = event_id_after(list_events(args.target, key, ""), "")
    print(f"{args.watchers} watchers, earn at {args.concurrency} clients from {args.processes} processes, "
          f"{args.duration:.0f} s alone then {args.duration:.0f} s watched, {args.rounds} round(s)", flush=True)  # fmt: skip
    rounds = []
    for number in range(args.rounds):
        done, cursor = one_round(args, ctx, key, cursor)
        rounds.append(done)
        print(f"round {number + 1}: alone {done.alone.throughput:.0f} Earn/s, watched {done.watched.throughput:.0f} "
              f"Earn/s, {done.complete}/{args.watchers} watchers exact", flush=True)  # fmt: skip
    lines, exact = report(rounds, args.watchers)
    print("\n".join(lines), flush=True)
    return 0 if exact else 1


def add_parser(sub) -> None:
    w = sub.add_parser("watch", help="WatchEvents followers and the earn load together: exactly once, delay, cost")
    w.add_argument("--target", default="127.0.0.1:50051", help="HOST:PORT of the server")
    w.add_argument("--setup", default="bench/out/setup.json")
    w.add_argument("--watchers", type=int, default=64)
    w.add_argument("--concurrency", type=int, default=64, help="Earn clients")
    w.add_argument("--processes", type=int, default=2, help="load processes")
    w.add_argument("--duration", type=float, default=15.0, help="seconds of load, alone and then watched")
    w.add_argument("--rounds", type=int, default=1, help="alone-then-watched rounds")
    w.add_argument("--catch-up", type=float, default=30.0, help="seconds the watchers get after the load")
    w.add_argument("--events-key", help="an events (or admin) key of the setup's program")
    w.add_argument(
        "--server-pid", type=int, action="append", help="the server's process id: CPU per Earn (as bench run has)"
    )
    w.set_defaults(run=cmd_watch)

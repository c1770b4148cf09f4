"""Runs one scenario from several worker processes (grpc.aio inside each), so the load
generator is not the bottleneck on a small machine."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time

import grpc

from bench import procfs
from bench.scenarios import SCENARIOS, Context
from bench.stats import Sample


# Several servers ("IP:port,IP:port"): gRPC's round robin over them, each channel holding a
# connection to every server, as the SDK's several-target client does.
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})


def open_channel(target: str) -> grpc.aio.Channel:
    if "," in target:
        return grpc.aio.insecure_channel(f"ipv4:{target}", options=[("grpc.service_config", ROUND_ROBIN)])
    return grpc.aio.insecure_channel(target)


async def _worker(target: str, scenario: str, ctx: Context, concurrency: int, duration: float) -> Sample:
    sample = Sample()
    operation = SCENARIOS[scenario]
    channels = [open_channel(target) for _ in range(max(1, concurrency // 16))]
    deadline = time.perf_counter() + duration

    async def loop(index: int) -> None:
        channel = channels[index % len(channels)]
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await operation(channel, ctx)
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
    return sample


def _process(target, scenario, ctx, concurrency, duration, queue) -> None:
    queue.put(asyncio.run(_worker(target, scenario, ctx, concurrency, duration)))


def run(
    target: str,
    scenario: str,
    ctx: Context,
    concurrency: int,
    duration: float,
    processes: int,
    server_pid: int | list[int] | None = None,
) -> Sample:
    """server_pid: also measure the CPU that the server's processes and this machine's
    PostgreSQL processes spend while the scenario runs."""
    cpu_before = _server_and_database_cpu(server_pid) if server_pid else None
    queue = multiprocessing.get_context("spawn").Queue()
    share = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    workers = [
        multiprocessing.get_context("spawn").Process(
            target=_process, args=(target, scenario, ctx, n, duration, queue), daemon=True
        )
        for n in share
        if n > 0
    ]
    for worker in workers:
        worker.start()
    total = Sample()
    for _ in workers:
        total.merge(queue.get(timeout=duration + 120))
    for worker in workers:
        worker.join(timeout=30)
    if cpu_before is not None:
        server, database = _server_and_database_cpu(server_pid)
        total.server_cpu_s, total.database_cpu_s = server - cpu_before[0], database - cpu_before[1]
    return total


def _server_and_database_cpu(server_pid: int | list[int]) -> tuple[float, float]:
    """CPU seconds so far of the server(s) (every process of each tree) and of PostgreSQL."""
    server = 0.0
    for pid in server_pid if isinstance(server_pid, list) else [server_pid]:
        tree = procfs.process_tree(pid)
        if tree is None:
            raise SystemExit(f"no process {pid} (--server-pid)")
        server += procfs.cpu_seconds(tree)
    return server, procfs.cpu_seconds(procfs.postgres_pids())
